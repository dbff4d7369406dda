"""gpunet.models.ode: trial solutions meet their initial conditions, the residual losses and their weight gradients
(derivatives of input derivatives, up to third order for the oscillator) equal PyTorch's float64 autograd, and the
exact solutions solve their equations."""
import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.models.ode import (EQUATIONS, ExponentialDecay, HarmonicOscillator, TrialSolution, input_derivatives,
                               max_abs_error, residual_loss)


def _net(activation):
    return gn.nn.Sequential(gn.nn.Linear(1, 6), activation(), gn.nn.Linear(6, 4), activation(), gn.nn.Linear(4, 1))


def _torch_loss(params, x, equation, activation):
    """The residual loss written independently in PyTorch (float64), input derivatives by torch.autograd."""
    x = torch.tensor(x, requires_grad=True)
    h = activation(x @ params["net.0.weight"].T + params["net.0.bias"])
    h = activation(h @ params["net.2.weight"].T + params["net.2.bias"])
    n = h @ params["net.4.weight"].T + params["net.4.bias"]
    if isinstance(equation, ExponentialDecay):
        g = equation.g0 + x * n
        (dg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
        r = dg + equation.gamma * g
    else:
        g = equation.g0 + equation.v0 * x + x * x * n
        (dg,) = torch.autograd.grad(g.sum(), x, create_graph=True)
        (d2g,) = torch.autograd.grad(dg.sum(), x, create_graph=True)
        r = d2g + equation.omega ** 2 * g
    return (r * r).mean()


@pytest.mark.parametrize("equation", [ExponentialDecay(gamma=2.0, g0=10.0),
                                      HarmonicOscillator(omega=3.0, g0=1.0, v0=0.5)], ids=repr)
@pytest.mark.parametrize("activation", ["Sigmoid", "Tanh"])
def test_residual_loss_and_weight_gradients_match_pytorch(device, equation, activation):
    gn.manual_seed(4)
    solution = TrialSolution(_net(getattr(gn.nn, activation)), equation).double()
    x_np = np.linspace(0.0, 1.0, 9)[:, None]
    loss = residual_loss(solution, gn.tensor(x_np))
    loss.backward()

    params = {k: torch.tensor(v, requires_grad=True) for k, v in solution.state_dict().items()}
    expected = _torch_loss(params, x_np, equation, getattr(torch, activation.lower()))
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    for name, p in solution.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), params[name].grad.numpy(), rtol=1e-10, atol=1e-12, err_msg=name)


def test_trial_solutions_meet_the_initial_conditions_whatever_the_weights():
    gn.manual_seed(1)
    x = gn.tensor(np.array([[0.0], [0.3]]), requires_grad=True)
    decay = TrialSolution(_net(gn.nn.Tanh), ExponentialDecay(gamma=1.5, g0=-3.0)).double()
    assert decay(x).numpy()[0, 0] == -3.0
    oscillator = TrialSolution(_net(gn.nn.Tanh), HarmonicOscillator(omega=2.0, g0=0.7, v0=-1.25)).double()
    g, dg = input_derivatives(oscillator(x), x, 1)
    assert g.numpy()[0, 0] == 0.7
    assert dg.numpy()[0, 0] == pytest.approx(-1.25, abs=1e-15)


@pytest.mark.parametrize("name", sorted(EQUATIONS))
def test_exact_solutions_solve_their_equations(name):
    equation = EQUATIONS[name]()
    x, h = np.linspace(0.1, 0.9, 9), 1e-4
    g = lambda t: equation.exact(t)  # noqa: E731
    derivatives = [gn.tensor(g(x)), gn.tensor((g(x + h) - g(x - h)) / (2 * h))]
    if equation.order == 2:
        derivatives.append(gn.tensor((g(x + h) - 2 * g(x) + g(x - h)) / h ** 2))
    residual = equation.residual(gn.tensor(x), derivatives).numpy()
    np.testing.assert_allclose(residual, 0.0, atol=1e-5 * np.max(np.abs(g(x))))
    assert equation.exact(np.array([0.0]))[0] == equation.g0


def test_max_abs_error_compares_with_the_exact_solution_on_a_grid():
    gn.manual_seed(0)
    solution = TrialSolution(_net(gn.nn.Sigmoid), ExponentialDecay(gamma=2.0, g0=10.0)).double()
    error, grid, approx, exact = max_abs_error(solution, 1.0, points=11)
    np.testing.assert_array_equal(grid, np.linspace(0.0, 1.0, 11))
    with gn.no_grad():
        expected = solution(gn.tensor(grid[:, None])).numpy()[:, 0]
    np.testing.assert_array_equal(approx, expected)
    assert error == np.max(np.abs(expected - 10.0 * np.exp(-2.0 * grid)))


def test_bad_equation_arguments_are_refused():
    with pytest.raises(ValueError, match="omega must be positive"):
        HarmonicOscillator(omega=0.0)
