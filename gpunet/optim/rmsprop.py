"""RMSprop (Hinton), with momentum and the centered variant, as PyTorch computes it."""
from __future__ import annotations

from ..kinds import Arguments, Bool
from .optimizer import LR, NON_NEGATIVE, Optimizer


class RMSprop(Optimizer):
    """``v = alpha * v + (1 - alpha) * g^2``; ``p -= lr * g / (sqrt(v) + eps)``. ``centered`` subtracts the squared
    running mean of g from v; ``momentum`` accumulates ``g / (sqrt(v) + eps)`` in a buffer that is applied instead."""

    arguments = Arguments(lr=LR, alpha=NON_NEGATIVE, eps=NON_NEGATIVE, weight_decay=NON_NEGATIVE, momentum=NON_NEGATIVE,
                          centered=Bool(), maximize=Bool())

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize))

    def _update(self, group):
        momentum, centered = group["momentum"], group["centered"]
        for backend, params in self._with_grads(group):
            self._count_steps(params)
            backend.rmsprop_update([p.data for p in params], [p.grad.data for p in params],
                                   self._buffers(params, "square_avg"),
                                   self._buffers(params, "grad_avg") if centered else None,
                                   self._buffers(params, "momentum_buffer") if momentum > 0 else None, group["lr"],
                                   group["alpha"], group["eps"], group["weight_decay"], momentum, centered,
                                   group["maximize"])
