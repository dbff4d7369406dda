"""Physics-informed ODE networks (seed 001): initial value problems solved by a network trial solution.

A trial solution g_t(x) = A(x) + B(x) N(x) meets the initial conditions for any network N (seed 001's
g0 + x N(x) for a first-order equation). Training minimises the mean squared residual of the equation at
collocation points, so the loss holds derivatives of N with respect to its input, taken with
``gn.grad(..., create_graph=True)``, and its weight gradients are derivatives of derivatives.

Equations are registered by name in ``EQUATIONS`` (a config names one; it never names code): each gives its
order, its trial solution, its residual and its exact solution for checking.

(Seed 001 prints the cost as (g_t' - (-gamma g_t)^2); the bracket is misplaced: the cost is (g_t' + gamma g_t)^2.)
"""
from __future__ import annotations

import math

import numpy as np

from ..autograd.engine import grad
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..nn.module import Module
from ..ops.conversion import tensor

__all__ = ["EQUATIONS", "ExponentialDecay", "HarmonicOscillator", "InitialValueProblem", "TrialSolution",
           "input_derivatives", "max_abs_error", "residual_loss"]


class InitialValueProblem:
    """An ODE g^(order)(x) = f(x, g, g', ...) on [0, x_max] with its initial conditions at x = 0.

    Subclasses give ``order``, ``trial(x, n)`` (the trial solution from the network output ``n``),
    ``residual(x, derivatives)`` (``derivatives[k]`` is the k-th derivative of g, ``derivatives[0]`` g itself; zero
    for a solution) and ``exact(x)`` (the analytic solution, float64 NumPy).
    """
    order: int

    def trial(self, x: Tensor, n: Tensor) -> Tensor:
        raise NotImplementedError

    def residual(self, x: Tensor, derivatives: list) -> Tensor:
        raise NotImplementedError

    def exact(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class ExponentialDecay(InitialValueProblem):
    """Seed 001's g'(x) = -gamma g(x), g(0) = g0; trial solution g0 + x N(x); exact g0 exp(-gamma x)."""
    order = 1

    def __init__(self, gamma: float = 2.0, g0: float = 10.0):
        self.gamma, self.g0 = float(gamma), float(g0)

    def trial(self, x, n):
        return self.g0 + x * n

    def residual(self, x, derivatives):
        g, dg = derivatives
        return dg + self.gamma * g

    def exact(self, x):
        return self.g0 * np.exp(-self.gamma * np.asarray(x, dtype=np.float64))


class HarmonicOscillator(InitialValueProblem):
    """g''(x) = -omega^2 g(x), g(0) = g0, g'(0) = v0; trial solution g0 + v0 x + x^2 N(x) (meets both conditions:
    its value and slope at 0 do not depend on N); exact g0 cos(omega x) + (v0 / omega) sin(omega x)."""
    order = 2

    def __init__(self, omega: float = 2.0, g0: float = 1.0, v0: float = 0.0):
        if omega <= 0:
            raise ValueError(f"HarmonicOscillator: omega must be positive, got {omega}")
        self.omega, self.g0, self.v0 = float(omega), float(g0), float(v0)

    def trial(self, x, n):
        return self.g0 + self.v0 * x + (x * x) * n

    def residual(self, x, derivatives):
        g, _, d2g = derivatives
        return d2g + (self.omega ** 2) * g

    def exact(self, x):
        x = np.asarray(x, dtype=np.float64)
        return self.g0 * np.cos(self.omega * x) + (self.v0 / self.omega) * np.sin(self.omega * x)


EQUATIONS = {"exponential_decay": ExponentialDecay, "harmonic_oscillator": HarmonicOscillator}


class TrialSolution(Module):
    """g_t(x) = equation.trial(x, net(x)) for inputs x of shape (N, 1); ``net`` maps (N, 1) to (N, 1)."""

    def __init__(self, net: Module, equation: InitialValueProblem):
        super().__init__()
        self.net = net
        self.equation = equation

    def forward(self, x):
        return self.equation.trial(x, self.net(x))


def input_derivatives(g: Tensor, x: Tensor, order: int) -> list:
    """[g, dg/dx, ..., d^order g/dx^order] for a pointwise g (row i of g depends on row i of x only), each kept
    differentiable (``create_graph``) so a loss built from them can be differentiated in the weights."""
    derivatives = [g]
    for _ in range(order):
        (d,) = grad(derivatives[-1].sum(), [x], create_graph=True)
        derivatives.append(d)
    return derivatives


def residual_loss(solution: TrialSolution, x: Tensor) -> Tensor:
    """The mean over the collocation points x (N, 1) of the squared residual of ``solution.equation``."""
    if not x.requires_grad:
        x = x.detach().requires_grad_()
    g = solution(x)
    r = solution.equation.residual(x, input_derivatives(g, x, solution.equation.order))
    return (r * r).mean()


def max_abs_error(solution: TrialSolution, x_max: float, points: int = 1001, dtype=None):
    """(largest |g_t(x) - g(x)| over ``points`` evenly spaced x in [0, x_max], the grid, g_t, g) with g exact."""
    grid = np.linspace(0.0, float(x_max), points)
    param = next(solution.parameters())
    with no_grad():
        x = tensor(grid[:, None], dtype=dtype or param.dtype, device=param.device)
        approx = solution(x).numpy()[:, 0].astype(np.float64)
    exact = solution.equation.exact(grid)
    error = float(np.max(np.abs(approx - exact)))
    return (error if math.isfinite(error) else float("inf")), grid, approx, exact
