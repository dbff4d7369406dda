"""Batch-norm statistics: per-channel mean and biased variance of (N, C, H, W) over (N, H, W)."""
from . import ODD, Case, normal

CASES = [
    Case("batch_norm_stats", lambda b, rng, n, c, hw: (normal(b, rng, (n, c, hw, hw), 2.0), (0, 2, 3)),
         bytes=lambda n, c, hw: 4 * n * c * hw * hw + 8 * c, flops=lambda n, c, hw: 4 * n * c * hw * hw,
         sizes=({"n": 64, "c": 64, "hw": 112}, {"n": 256, "c": 512, "hw": 7}), checks={"n": 3, "c": 5, "hw": 6}),
    Case("batch_norm_stats", lambda b, rng, n: (normal(b, rng, (n, 5)), (0,)), checks=[{"n": n} for n in ODD],
         label="rows"),
    Case("batch_norm_stats", lambda b, rng, n: (normal(b, rng, (1, 3, n), 3.0) + 1, (0, 2)),
         checks=[{"n": n} for n in ODD], label="3-d"),
]
