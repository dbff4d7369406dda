"""Fused optimizer steps (in place): SGD with and without momentum, Adam, AdamW and AMSGrad."""
from . import ODD, Case, normal

SIZES = ({"n": 1 << 20}, {"n": 1 << 24}, {"n": 1 << 26})
CHECKS = ({"n": 1000}, *({"n": n} for n in ODD))


def _sgd(b, rng, n, momentum=0.9):
    return (normal(b, rng, (n,)), normal(b, rng, (n,)), normal(b, rng, (n,)), 0.01, momentum, 0.0, 1e-4, True, False,
            False)


def _adam(b, rng, n, decoupled, amsgrad=False):
    return (normal(b, rng, (n,)), normal(b, rng, (n,)), normal(b, rng, (n,), 0.1), b.xp.abs(normal(b, rng, (n,), 0.1)),
            b.xp.abs(normal(b, rng, (n,), 0.2)), 3, 1e-3, 0.9, 0.999, 1e-8, 1e-2, decoupled, amsgrad, False)


def _updated(*positions):
    """The arguments an in-place kernel updates: they are its outputs."""
    return lambda result, args: tuple(args[i] for i in positions)


CASES = [  # param, buffers read and written, grad read: 4 bytes each per element
    Case("sgd_update", _sgd, bytes=lambda n: 20 * n, flops=lambda n: 6 * n, sizes=SIZES, checks=CHECKS,
         outputs=_updated(0, 2), label="momentum,nesterov"),
    Case("sgd_update", lambda b, rng, n: _sgd(b, rng, n, momentum=0.0), checks=CHECKS, outputs=_updated(0),
         label="plain"),
    Case("adam_update", lambda b, rng, n: _adam(b, rng, n, False), bytes=lambda n: 28 * n,
         flops=lambda n: 14 * n, sizes=SIZES, checks=CHECKS, outputs=_updated(0, 2, 3), label="adam"),
    Case("adam_update", lambda b, rng, n: _adam(b, rng, n, True), bytes=lambda n: 28 * n,
         flops=lambda n: 14 * n, sizes=SIZES, checks=CHECKS, outputs=_updated(0, 2, 3), label="adamw"),
    Case("adam_update", lambda b, rng, n: _adam(b, rng, n, True, amsgrad=True), checks=CHECKS,
         outputs=_updated(0, 2, 3, 4), label="amsgrad"),
]
