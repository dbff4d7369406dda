"""Seed 001's ODE solver: a network trial solution of g'(x) = -gamma g(x), g(0) = g0, on [0, 1].

The trial solution g_t(x) = g0 + x N(x) meets the initial condition for any network N (here seed 001's
1 -> 10 sigmoid -> 1 MLP, evaluated at 10 evenly spaced points). Training minimises the mean over those points of
(g_t'(x) + gamma g_t(x))^2, where g_t'(x) = N(x) + x N'(x) and N'(x) is gpunet's derivative of the network with
respect to its input (``gn.grad(..., create_graph=True)``), so the loss is differentiated twice: once in x, then
in the weights. The script prints the loss and the largest absolute error on a fine grid of [0, 1] against the
exact solution g0 exp(-gamma x).

The notes use gamma = 2, g0 = 10 and plain gradient descent with step 0.001 (``--optimizer sgd --lr 0.001``,
which needs very many iterations); the default here is Adam with step 0.05, whose 5000 iterations (a few
seconds on a CPU) bring the error below 1e-2.

    python scripts/ode_network.py [--iterations 5000] [--optimizer adam|sgd] [--lr 0.05] [--device cpu]
"""
from __future__ import annotations

import argparse

import numpy as np

import gpunet as gn

from example_device import add_device_argument, use_device

OPTIMIZERS = {"adam": gn.optim.Adam, "sgd": gn.optim.SGD}


def trial_solution(net, x, g0):
    """g_t(x) = g0 + x N(x): equal to g0 at x = 0 whatever the weights."""
    return g0 + x * net(x)


def ode_loss(net, x, gamma, g0):
    """Mean over the points x of (g_t'(x) + gamma g_t(x))^2, differentiable in the network's weights."""
    g = trial_solution(net, x, g0)
    (dg_dx,) = gn.grad(g.sum(), [x], create_graph=True)  # each g_t(x_i) depends on x_i only
    return ((dg_dx + gamma * g) ** 2).mean()


def max_error(net, gamma, g0, points=101):
    """The largest |g_t(x) - g0 exp(-gamma x)| on ``points`` evenly spaced x in [0, 1]."""
    grid = np.linspace(0.0, 1.0, points)
    with gn.no_grad():
        g = trial_solution(net, gn.tensor(grid[:, None]), g0).numpy()[:, 0]
    return float(np.max(np.abs(g - g0 * np.exp(-gamma * grid))))


def main(argv=None):
    """Train the trial solution; return a dict with the losses per iteration, the final max error and the net."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gamma", type=float, default=2.0, help="decay rate (the notes: 2)")
    parser.add_argument("--g0", type=float, default=10.0, help="initial value g(0) (the notes: 10)")
    parser.add_argument("--points", type=int, default=10, help="collocation points in [0, 1] (the notes: 10)")
    parser.add_argument("--hidden", type=int, nargs="+", default=[10],
                        help="sigmoid hidden layer sizes (the notes: 10; several give the deep variant)")
    parser.add_argument("--iterations", type=int, default=5000, help="full-batch optimizer steps")
    parser.add_argument("--optimizer", choices=sorted(OPTIMIZERS), default="adam")
    parser.add_argument("--lr", type=float, default=0.05, help="learning rate (the notes: 0.001 with sgd)")
    parser.add_argument("--seed", type=int, default=0)
    add_device_argument(parser)
    parser.add_argument("--quiet", action="store_true", help="print only the final result")
    args = parser.parse_args(argv)
    if args.points < 2 or args.iterations < 1 or min(args.hidden) < 1:
        parser.error("--points needs at least 2, --iterations and every --hidden size at least 1")

    use_device(parser, args.device)
    gn.manual_seed(args.seed)
    layers, width = [], 1
    for size in args.hidden:
        layers += [gn.nn.Linear(width, size), gn.nn.Sigmoid()]
        width = size
    net = gn.nn.Sequential(*layers, gn.nn.Linear(width, 1)).double()
    x = gn.tensor(np.linspace(0.0, 1.0, args.points)[:, None], requires_grad=True)
    optimizer = OPTIMIZERS[args.optimizer](net.parameters(), lr=args.lr)

    losses = []
    for step in range(args.iterations):
        loss = ode_loss(net, x, args.gamma, args.g0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if not args.quiet and (step % max(1, args.iterations // 10) == 0 or step == args.iterations - 1):
            print(f"iteration {step:6d}  loss {losses[-1]:.3e}")
    error = max_error(net, args.gamma, args.g0)
    print(f"max |g_t(x) - g0 exp(-gamma x)| on [0, 1]: {error:.3e} (g0 = {args.g0:g}, gamma = {args.gamma:g})")
    return {"losses": losses, "max_error": error, "net": net}


if __name__ == "__main__":
    main()
