"""Seed 001's ODE solver with gpunet's Python API: a network trial solution of g'(x) = -gamma g(x), g(0) = g0, on [0, 1].

The trial solution g_t(x) = g0 + x N(x) (``gpunet.models.ode.TrialSolution``) meets the initial condition for any
network N (here seed 001's 1 -> 10 sigmoid -> 1 MLP at 10 evenly spaced points). Training minimises the mean over
those points of (g_t'(x) + gamma g_t(x))^2 (``residual_loss``), where g_t' comes from ``gn.grad(...,
create_graph=True)``, so the loss is differentiated twice: once in x, then in the weights. The script prints the
largest absolute error on a fine grid of [0, 1] against the exact solution g0 exp(-gamma x).

The notes use gamma = 2, g0 = 10 and plain gradient descent with step 0.001 (``--optimizer sgd --lr 0.001``,
which needs very many iterations); the default here is Adam with step 0.05: error 4.1e-3 after 5000 iterations
(~3 s on a CPU). The same from YAML, with random collocation points in mini-batches, a cosine schedule and a
1-20-1 network (error 1.9e-4): ``gpunet train configs/ode_decay.yaml`` (and ``configs/ode_oscillator.yaml`` for a
second-order equation).

    python scripts/ode_network.py [--iterations 5000] [--optimizer adam|sgd] [--lr 0.05] [--device cpu]
"""
from __future__ import annotations

import argparse

import numpy as np

import gpunet as gn
from gpunet.models.ode import ExponentialDecay, TrialSolution, max_abs_error, residual_loss

from example_device import add_device_argument, use_device

OPTIMIZERS = {"adam": gn.optim.Adam, "sgd": gn.optim.SGD}


def main(argv=None):
    """Train the trial solution; return a dict with the losses per iteration, the final max error and the solution."""
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
    solution = TrialSolution(net, ExponentialDecay(gamma=args.gamma, g0=args.g0))
    x = gn.tensor(np.linspace(0.0, 1.0, args.points)[:, None], requires_grad=True)
    optimizer = OPTIMIZERS[args.optimizer](solution.parameters(), lr=args.lr)

    losses = []
    for step in range(args.iterations):
        loss = residual_loss(solution, x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if not args.quiet and (step % max(1, args.iterations // 10) == 0 or step == args.iterations - 1):
            print(f"iteration {step:6d}  loss {losses[-1]:.3e}")
    error = max_abs_error(solution, 1.0, points=101)[0]
    print(f"max |g_t(x) - g0 exp(-gamma x)| on [0, 1]: {error:.3e} (g0 = {args.g0:g}, gamma = {args.gamma:g})")
    return {"losses": losses, "max_error": error, "solution": solution}


if __name__ == "__main__":
    main()
