"""``ode``: a physics-informed network (seed 001) trained on the residual of an equation at collocation points.

The model is the network N(x); the solution is the equation's trial solution built on it (``gpunet.models.ode``:
g0 + x N(x) for seed 001's decay), which meets the initial conditions by construction. A step's loss is the mean
squared residual at a batch of collocation points (the ``collocation`` dataset); it holds input derivatives of N,
so its weight gradients are second- (or third-) order derivatives. Every epoch logs ``max_abs_error``, the largest
distance to the exact solution on an evenly spaced grid of [0, x_max]; the end of a run writes it to summary.json
and plots both curves (``solution.png``).
"""
from __future__ import annotations

import inspect
import os

import numpy as np

from ...autograd.grad_mode import enable_grad
from ...data import DatasetError
from ...models.ode import EQUATIONS, TrialSolution, max_abs_error, residual_loss
from ...nn import activation as activations
from ...nn.containers import Sequential
from ...nn.linear import Linear
from ..atomic import atomic_write
from ..plots import pyplot_or_hint
from .base import Key, Task, check_keys, register_task

ACTIVATIONS = ("Sigmoid", "Tanh", "GELU", "Softplus", "ELU")
EQUATION_PARAMETERS = ("gamma", "omega", "g0", "v0")


def _parameters(equation: str) -> dict:
    """The parameters of ``EQUATIONS[equation]`` with their defaults."""
    signature = inspect.signature(EQUATIONS[equation].__init__)
    return {name: p.default for name, p in list(signature.parameters.items())[1:]}


@register_task("ode")
class ODE(Task):
    """Solve an initial value problem with a network trial solution (seed 001), on [0, x_max]; the data are
    collocation points (``data: {name: collocation}``). Examples: configs/ode_decay.yaml, configs/ode_oscillator.yaml."""

    data = "generated"
    uses_loss = False
    own_models = ("model",)
    keys = {
        "equation": Key("the equation, by name: exponential_decay (g' = -gamma g, g(0) = g0; seed 001), "
                        "harmonic_oscillator (g'' = -omega^2 g, g(0) = g0, g'(0) = v0)", choices=tuple(EQUATIONS)),
        "gamma": Key("exponential_decay: the decay rate (null: 2)"),
        "omega": Key("harmonic_oscillator: the angular frequency (null: 2)", gt=0),
        "g0": Key("the initial value g(0) (null: 10 for exponential_decay, 1 for harmonic_oscillator)"),
        "v0": Key("harmonic_oscillator: the initial slope g'(0) (null: 0)"),
        "x_max": Key("the solution is sought on [0, x_max]: the collocation points must lie in it, and "
                     "max_abs_error is measured on an evenly spaced grid of it", gt=0),
        "error_points": Key("points of that grid", ge=2),
        "hidden": Key("hidden layer widths of the network N(x) built when the config has no model:", ge=1),
        "activation": Key("activation after each hidden layer of that network", choices=ACTIVATIONS),
    }

    def __init__(self, equation: str = "exponential_decay", gamma: float | None = None, omega: float | None = None,
                 g0: float | None = None, v0: float | None = None, x_max: float = 1.0, error_points: int = 1001,
                 hidden: list[int] = (20,), activation: str = "Sigmoid"):
        check_keys(self, equation=equation, gamma=gamma, omega=omega, g0=g0, v0=v0, x_max=x_max,
                   error_points=error_points, hidden=hidden, activation=activation)
        self.equation, self.gamma, self.omega, self.g0, self.v0 = equation, gamma, omega, g0, v0
        self.x_max, self.error_points, self.hidden, self.activation = x_max, error_points, list(hidden), activation
        takes = _parameters(equation)
        for name in EQUATION_PARAMETERS:
            if getattr(self, name) is not None and name not in takes:
                raise ValueError(f"{name}: the equation {equation} has no parameter {name} (it takes "
                                 f"{', '.join(takes)}); remove it")
        self.problem()  # the equation's own checks (omega > 0)

    def problem(self):
        """The equation object with the given parameters (the others at its defaults)."""
        given = {k: getattr(self, k) for k in _parameters(self.equation) if getattr(self, k) is not None}
        return EQUATIONS[self.equation](**given)

    def build_model(self, name, info):
        if tuple(info.input_shape) != (1,):
            raise ValueError(f"task ode needs one input per sample (points x of shape (n, 1), the collocation "
                             f"dataset), got samples of shape {tuple(info.input_shape)}")
        layers, width = [], 1
        for size in self.hidden:
            layers += [Linear(width, size), getattr(activations, self.activation)()]
            width = size
        return Sequential(*layers, Linear(width, 1))

    def bind(self, trainer, models, optimizers, loss_fn):
        super().bind(trainer, models, optimizers, loss_fn)
        self.solution = TrialSolution(self.model, self.problem())

    def _loss(self, x):
        # host batches are checked; a Tensor batch (gpunet warmup's zeros) stays on the device unchecked
        low, high = (float(np.min(x)), float(np.max(x))) if isinstance(x, np.ndarray) else (0.0, 0.0)
        if low < 0 or high > self.x_max:
            raise DatasetError(f"task ode: collocation points span [{low:g}, {high:g}], outside [0, x_max] = "
                               f"[0, {self.x_max:g}]; make data.low, data.high and task.x_max agree")
        return residual_loss(self.solution, self.input(x).requires_grad_())

    def train_step(self, x, y):
        if not len(x):
            self.update("model", None)
            return {}
        loss = self._loss(x)
        self.update("model", loss)
        return {"loss": loss.detach()}

    def eval_step(self, x, y):
        with enable_grad():  # the residual needs input derivatives
            return {"loss": self._loss(x).detach()}

    def predict_step(self, x):
        return self.solution(self.input(x))

    def _error(self):
        return max_abs_error(self.solution, self.x_max, self.error_points)

    def end_epoch(self, epoch):
        return {"max_abs_error": self._error()[0]}

    def summary(self, splits):
        return {"max_abs_error": self._error()[0]}

    def final_artifacts(self, directory, splits):
        plt = pyplot_or_hint()
        if plt is None:
            return []
        error, grid, approx, exact = self._error()
        figure, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
        top.plot(grid, exact, label="exact", linewidth=3, alpha=0.5)
        top.plot(grid, approx, "--", label="network trial solution")
        top.set_ylabel("g(x)")
        top.set_title(f"{self.equation}: max |error| = {error:.2e}")
        top.legend()
        bottom.plot(grid, approx - exact)
        bottom.set_xlabel("x")
        bottom.set_ylabel("trial - exact")
        for axes in (top, bottom):
            axes.grid(alpha=0.3)
        figure.tight_layout()
        path = os.path.join(os.fspath(directory), "solution.png")
        atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100))
        plt.close(figure)
        return [path]
