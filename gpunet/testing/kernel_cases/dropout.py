"""Dropout masks from the counter-based Philox-4x32-10 generator (integer work only: FLOPs reported as 0)."""
import numpy

from . import ODD, Case, normal

CASES = [
    Case("dropout_mask", lambda b, rng, n: ((n,), 0.3, 1234, 8, numpy.float32),
         bytes=lambda n: 4 * n, flops=lambda n: 0, sizes=({"n": 1 << 24}, {"n": 1 << 28}),
         checks=({"n": 1001}, *({"n": n} for n in ODD)), tolerance={"rtol": 0, "atol": 0}),
    Case("dropout_apply", lambda b, rng, n: (normal(b, rng, (n,)), 0.3, 1234, 8),
         bytes=lambda n: 8 * n, flops=lambda n: n, sizes=({"n": 1 << 24}, {"n": 1 << 28}),
         checks=({"n": 1001}, *({"n": n} for n in ODD)), tolerance={"rtol": 0, "atol": 0}),
    Case("dropout_mask", lambda b, rng, n: ((1, n), 0.3, 2**40 + 17, 5, numpy.float64), checks=({"n": 999},),
         tolerance={"rtol": 0, "atol": 0}, label="float64"),
    Case("dropout_apply", lambda b, rng, n: (normal(b, rng, (1, n), dtype=numpy.float64), 0.3, 2**40 + 17, 5),
         checks=({"n": 999},), tolerance={"rtol": 0, "atol": 0}, label="float64"),
]
