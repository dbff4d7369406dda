"""Fused multi-tensor optimizer steps (in place): SGD with and without momentum, Adam, AdamW, AMSGrad, RMSprop
(plain, centered with momentum), Adagrad and Adadelta. ``n`` elements in three tensors of about n/2, n/3 and n/6
(a parameter group of one launch); the 10000-element check crosses the launcher's chunks."""
from . import ODD, Case, normal

SIZES = ({"n": 1 << 20}, {"n": 1 << 24}, {"n": 1 << 26})
CHECKS = ({"n": 1000}, {"n": 10000}, *({"n": n} for n in ODD))


def _split(n):
    """The tensor sizes of an n-element group: n // 2, n // 3 and the rest (empty ones left out)."""
    parts = [n // 2, n // 3]
    return [s for s in parts + [n - sum(parts)] if s]


def _tensors(b, rng, n, scale=1.0, positive=False):
    arrays = [normal(b, rng, (s,), scale) for s in _split(n)]
    return [b.xp.abs(a) for a in arrays] if positive else arrays


def _sgd(b, rng, n, momentum=0.9):
    return (_tensors(b, rng, n), _tensors(b, rng, n), _tensors(b, rng, n), 0.01, momentum, 0.0, 1e-4, True, False,
            [False] * len(_split(n)))


def _adam(b, rng, n, decoupled, amsgrad=False):
    return (_tensors(b, rng, n), _tensors(b, rng, n), _tensors(b, rng, n, 0.1), _tensors(b, rng, n, 0.1, True),
            _tensors(b, rng, n, 0.2, True), [3] * len(_split(n)), 1e-3, 0.9, 0.999, 1e-8, 1e-2, decoupled, amsgrad,
            False)


def _rmsprop(b, rng, n, centered, momentum):
    square_avgs = [a + 0.01 for a in _tensors(b, rng, n, 1.0, True)]  # above grad_avg^2: no sqrt of a negative
    return (_tensors(b, rng, n), _tensors(b, rng, n), square_avgs, _tensors(b, rng, n, 0.01), _tensors(b, rng, n, 0.1),
            1e-2, 0.99, 1e-8, 1e-3, momentum, centered, False)


def _adagrad(b, rng, n):
    return (_tensors(b, rng, n), _tensors(b, rng, n), _tensors(b, rng, n, 1.0, True), [4] * len(_split(n)), 1e-2, 0.1,
            1e-3, 1e-10, True)


def _adadelta(b, rng, n):
    return (_tensors(b, rng, n), _tensors(b, rng, n), _tensors(b, rng, n, 1.0, True), _tensors(b, rng, n, 0.1, True),
            1.0, 0.9, 1e-6, 1e-3, False)


def _updated(*positions):
    """The arguments an in-place kernel updates (lists of arrays): they are its outputs."""
    return lambda result, args: tuple(a for i in positions for a in args[i])


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
    Case("rmsprop_update", lambda b, rng, n: _rmsprop(b, rng, n, False, 0.0), bytes=lambda n: 20 * n,
         flops=lambda n: 9 * n, sizes=SIZES, checks=CHECKS, outputs=_updated(0, 2), label="plain"),
    Case("rmsprop_update", lambda b, rng, n: _rmsprop(b, rng, n, True, 0.9), bytes=lambda n: 36 * n,
         flops=lambda n: 15 * n, sizes=SIZES, checks=CHECKS, outputs=_updated(0, 2, 3, 4),
         label="centered,momentum"),
    Case("adagrad_update", _adagrad, bytes=lambda n: 20 * n, flops=lambda n: 8 * n, sizes=SIZES, checks=CHECKS,
         outputs=_updated(0, 2)),
    Case("adadelta_update", _adadelta, bytes=lambda n: 28 * n, flops=lambda n: 16 * n, sizes=SIZES, checks=CHECKS,
         outputs=_updated(0, 2, 3)),
]
