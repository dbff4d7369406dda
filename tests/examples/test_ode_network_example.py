"""scripts/ode_network.py: its loss (gpunet.models.ode.residual_loss, through gn.grad with create_graph) and its weight
gradients equal a hand-derived float64 NumPy computation, and a short training run solves g' = -2 g, g(0) = 10 on
[0, 1].

Measured on the CPU with Adam, step 0.1, 2000 iterations: max error 7.7e-3..9.4e-3 for seeds 0..4 (1e-2 relative
to g0 = 10 is 1e-3), the loss falling from about 4e2 to at most 2.4e-3 (1.8e5-fold or more); the test allows
2e-2 and a 1e4-fold fall.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
from gpunet.models.ode import ExponentialDecay, TrialSolution, residual_loss

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import ode_network  # noqa: E402

GAMMA, G0 = 2.0, 10.0


def _numpy_loss(w1, b1, w2, b2, x):
    """The loss with N'(x) written out by hand: N = w2 s(w1 x + b1) + b2, N' = w2 (s'(z) * w1), s' = s (1 - s)."""
    s = 1.0 / (1.0 + np.exp(-(x @ w1.T + b1)))
    n = s @ w2.T + b2
    dn = (s * (1.0 - s) * w1[:, 0]) @ w2.T
    g, dg = G0 + x * n, n + x * dn
    return np.mean((dg + GAMMA * g) ** 2)


def test_loss_and_its_weight_gradients_match_a_hand_derivation():
    gn.set_device("cpu")
    gn.manual_seed(3)
    net = gn.nn.Sequential(gn.nn.Linear(1, 10), gn.nn.Sigmoid(), gn.nn.Linear(10, 1)).double()
    x_np = np.linspace(0.0, 1.0, 10)[:, None]
    x = gn.tensor(x_np, requires_grad=True)
    loss = residual_loss(TrialSolution(net, ExponentialDecay(GAMMA, G0)), x)
    loss.backward()  # through the graph of the input derivative: second-order autodiff

    params = {name: p.numpy().astype(np.float64) for name, p in net.named_parameters()}
    order = ("0.weight", "0.bias", "2.weight", "2.bias")
    assert loss.item() == pytest.approx(_numpy_loss(*(params[k] for k in order), x_np), rel=1e-12)
    step = 1e-6
    for name, p in net.named_parameters():
        expected = np.zeros_like(params[name])
        for index in np.ndindex(expected.shape):  # central differences of the NumPy loss
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[name][index] += step
            minus[name][index] -= step
            expected[index] = (_numpy_loss(*(plus[k] for k in order), x_np)
                               - _numpy_loss(*(minus[k] for k in order), x_np)) / (2 * step)
        np.testing.assert_allclose(p.grad.numpy(), expected, rtol=1e-6, atol=1e-6, err_msg=name)


def test_short_training_matches_the_exact_solution(capsys):
    result = ode_network.main(["--iterations", "2000", "--lr", "0.1", "--quiet"])
    losses = result["losses"]
    assert len(losses) == 2000
    assert losses[-1] < losses[0] * 1e-4
    assert result["max_error"] < 2e-2
    assert "max |g_t(x) - g0 exp(-gamma x)| on [0, 1]" in capsys.readouterr().out

    grid = np.linspace(0.0, 1.0, 7)
    with gn.no_grad():
        g = result["solution"](gn.tensor(grid[:, None])).numpy()[:, 0]
    assert g[0] == G0  # the trial solution meets the initial condition exactly
    np.testing.assert_allclose(g, G0 * np.exp(-GAMMA * grid), atol=2e-2)
