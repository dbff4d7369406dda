"""Fused optimizer steps (in place): SGD with momentum, Adam and AdamW."""
from . import Case, normal

SIZES = ({"n": 1 << 20}, {"n": 1 << 24}, {"n": 1 << 26})
EMU = {"n": 1000}


def _sgd(b, rng, n):
    return (normal(b, rng, (n,)), normal(b, rng, (n,)), normal(b, rng, (n,)), 0.01, 0.9, 0.0, 1e-4, True, False, False)


def _adam(b, rng, n, decoupled):
    return (normal(b, rng, (n,)), normal(b, rng, (n,)), normal(b, rng, (n,), 0.1), b.xp.abs(normal(b, rng, (n,), 0.1)),
            None, 3, 1e-3, 0.9, 0.999, 1e-8, 1e-2, decoupled, False, False)


CASES = [  # param, buffers read and written, grad read: 4 bytes each per element
    Case("optimizers", "sgd_update", _sgd, bytes=lambda n: 20 * n, flops=lambda n: 6 * n, sizes=SIZES, emulate=EMU,
         outputs=lambda result, args: (args[0], args[2]), label="momentum,nesterov"),
    Case("optimizers", "adam_update", lambda b, rng, n: _adam(b, rng, n, False), bytes=lambda n: 28 * n,
         flops=lambda n: 14 * n, sizes=SIZES, emulate=EMU, outputs=lambda result, args: args[0:4:2] + (args[3],),
         label="adam"),
    Case("optimizers", "adam_update", lambda b, rng, n: _adam(b, rng, n, True), bytes=lambda n: 28 * n,
         flops=lambda n: 14 * n, sizes=SIZES, emulate=EMU, outputs=lambda result, args: args[0:4:2] + (args[3],),
         label="adamw"),
]
