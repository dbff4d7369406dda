"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay (PyTorch's rule)."""
from __future__ import annotations

from .optimizer import Optimizer


class SGD(Optimizer):
    """``p -= lr * d`` where d is the gradient (plus ``weight_decay * p``), or its momentum buffer
    ``b = momentum * b + (1 - dampening) * d`` (``b = d`` at the first step), or ``d + momentum * b`` (Nesterov)."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *, maximize=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, maximize=maximize))

    def _check(self, group):
        self._check_nonnegative(group, "lr", "momentum", "weight_decay")
        self._require(not group["nesterov"] or (group["momentum"] > 0 and group["dampening"] == 0),
                      f"nesterov=True needs momentum > 0 and dampening = 0 "
                      f"(got momentum={group['momentum']}, dampening={group['dampening']})")

    def _update(self, group):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            buf, first = None, False
            if momentum != 0:
                state = self.state[p]
                first = "momentum_buffer" not in state
                buf = self._buffer(state, "momentum_buffer", p)
            p.backend.sgd_update(p.data, g.data, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first)
