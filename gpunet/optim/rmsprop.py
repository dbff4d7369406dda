"""RMSprop (Hinton), with momentum and the centered variant, as PyTorch computes it."""
from __future__ import annotations

from .optimizer import Optimizer


class RMSprop(Optimizer):
    """``v = alpha * v + (1 - alpha) * g^2``; ``p -= lr * g / (sqrt(v) + eps)``. ``centered`` subtracts the squared
    running mean of g from v; ``momentum`` accumulates ``g / (sqrt(v) + eps)`` in a buffer that is applied instead."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _check(self, group):
        self._check_nonnegative(group, "lr", "eps", "momentum", "weight_decay", "alpha")

    def _update(self, group):
        lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
        momentum, centered = group["momentum"], group["centered"]
        for p, g, state in self._gradients(group):
            xp = p.backend.xp
            square_avg = self._buffer(state, "square_avg", p)
            square_avg *= alpha
            square_avg += (1 - alpha) * g * g
            if centered:
                grad_avg = self._buffer(state, "grad_avg", p)
                grad_avg += (1 - alpha) * (g - grad_avg)
                avg = xp.sqrt(square_avg - grad_avg * grad_avg)
            else:
                avg = xp.sqrt(square_avg)
            avg += eps
            if momentum > 0:
                buf = self._buffer(state, "momentum_buffer", p)
                buf *= momentum
                buf += g / avg
                p.data -= lr * buf
            else:
                p.data -= lr * (g / avg)
