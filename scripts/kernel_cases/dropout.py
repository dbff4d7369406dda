"""Dropout masks from the counter-based Philox-4x32-10 generator (integer work only: FLOPs reported as 0)."""
import numpy

from . import Case, normal

CASES = [
    Case("dropout", "dropout_mask", lambda b, rng, n: ((n,), 0.3, 1234, 8, numpy.float32),
         bytes=lambda n: 4 * n, flops=lambda n: 0, sizes=({"n": 1 << 24}, {"n": 1 << 28}), emulate={"n": 1001},
         tolerance={"rtol": 0, "atol": 0}),
    Case("dropout", "dropout_apply", lambda b, rng, n: (normal(b, rng, (n,)), 0.3, 1234, 8),
         bytes=lambda n: 8 * n, flops=lambda n: n, sizes=({"n": 1 << 24}, {"n": 1 << 28}), emulate={"n": 1001},
         tolerance={"rtol": 0, "atol": 0}),
]
