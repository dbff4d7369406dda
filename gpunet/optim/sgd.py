"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay (PyTorch's rule)."""
from __future__ import annotations

from ..kinds import ArgumentError, Arguments, Bool, Float
from .optimizer import LR, NON_NEGATIVE, Optimizer


def _nesterov_needs_momentum(group):
    if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
        raise ArgumentError("nesterov", "needs momentum > 0 and dampening = 0 (momentum is "
                            f"{group['momentum']:g}, dampening {group['dampening']:g})", True,
                            "false, or set momentum > 0 and dampening: 0")


class SGD(Optimizer):
    """``p -= lr * d`` where d is the gradient (plus ``weight_decay * p``), or its momentum buffer
    ``b = momentum * b + (1 - dampening) * d`` (``b = d`` at the first step), or ``d + momentum * b`` (Nesterov)."""

    arguments = Arguments(lr=LR, momentum=NON_NEGATIVE, dampening=Float(), weight_decay=NON_NEGATIVE, nesterov=Bool(),
                          maximize=Bool(), rules=(_nesterov_needs_momentum,))

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _update(self, group):
        momentum = group["momentum"]
        for backend, params in self._with_grads(group):
            buffers = first_steps = None
            if momentum != 0:
                first_steps = ["momentum_buffer" not in self.state[p] for p in params]
                buffers = self._buffers(params, "momentum_buffer")
            backend.sgd_update([p.data for p in params], [p.grad.data for p in params], buffers, group["lr"], momentum,
                               group["dampening"], group["weight_decay"], group["nesterov"], group["maximize"],
                               first_steps)
