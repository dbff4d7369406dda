"""Adagrad: per-element learning rates from the sum of squared gradients, with PyTorch's learning-rate decay."""
from __future__ import annotations

from ..kinds import Arguments, Bool
from .optimizer import LR, NON_NEGATIVE, Optimizer


class Adagrad(Optimizer):
    """``s += g^2``; ``p -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(s) + eps)``; s starts at
    ``initial_accumulator_value``."""

    arguments = Arguments(lr=LR, lr_decay=NON_NEGATIVE, weight_decay=NON_NEGATIVE,
                          initial_accumulator_value=NON_NEGATIVE, eps=NON_NEGATIVE, maximize=Bool())

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize))
        for group in self.param_groups:  # PyTorch creates the state up front
            for p in group["params"]:
                state = self.state[p]
                state["step"] = 0
                self._buffer(state, "sum", p, group["initial_accumulator_value"])

    def _update(self, group):
        for backend, params in self._with_grads(group):
            steps = self._count_steps(params)
            backend.adagrad_update([p.data for p in params], [p.grad.data for p in params],
                                   self._buffers(params, "sum", group["initial_accumulator_value"]), steps, group["lr"],
                                   group["lr_decay"], group["weight_decay"], group["eps"], group["maximize"])
