"""Adadelta (Zeiler): step sizes from running averages of squared gradients and squared updates."""
from __future__ import annotations

from ..kinds import Arguments, Bool, Float
from .optimizer import LR, NON_NEGATIVE, Optimizer


class Adadelta(Optimizer):
    """``v = rho v + (1-rho) g^2``; ``d = sqrt(u + eps) / sqrt(v + eps) * g``; ``u = rho u + (1-rho) d^2``;
    ``p -= lr * d``."""

    arguments = Arguments(lr=LR, rho=Float(ge=0, le=1), eps=NON_NEGATIVE, weight_decay=NON_NEGATIVE, maximize=Bool())

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _update(self, group):
        for backend, params in self._with_grads(group):
            self._count_steps(params)
            backend.adadelta_update([p.data for p in params], [p.grad.data for p in params],
                                    self._buffers(params, "square_avg"), self._buffers(params, "acc_delta"),
                                    group["lr"], group["rho"], group["eps"], group["weight_decay"], group["maximize"])
