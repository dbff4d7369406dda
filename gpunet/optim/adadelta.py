"""Adadelta (Zeiler): step sizes from running averages of squared gradients and squared updates."""
from __future__ import annotations

from .optimizer import Optimizer


class Adadelta(Optimizer):
    """``v = rho v + (1-rho) g^2``; ``d = sqrt(u + eps) / sqrt(v + eps) * g``; ``u = rho u + (1-rho) d^2``;
    ``p -= lr * d``."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize))

    def _check(self, group):
        self._check_nonnegative(group, "lr", "eps", "weight_decay")
        self._require(0.0 <= group["rho"] <= 1.0, f"rho must be in [0, 1], got {group['rho']!r}")

    def _update(self, group):
        lr, rho, eps = group["lr"], group["rho"], group["eps"]
        for p, g, state in self._gradients(group):
            xp = p.backend.xp
            square_avg = self._buffer(state, "square_avg", p)
            acc_delta = self._buffer(state, "acc_delta", p)
            square_avg *= rho
            square_avg += (1 - rho) * g * g
            delta = xp.sqrt(acc_delta + eps) / xp.sqrt(square_avg + eps) * g
            acc_delta *= rho
            acc_delta += (1 - rho) * delta * delta
            p.data -= lr * delta
