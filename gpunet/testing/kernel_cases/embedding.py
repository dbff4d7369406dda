"""Embedding backward: the weight gradient as a gather over a CSR of sorted positions (no atomics)."""
import numpy

from . import ODD, Case, normal


def _args(b, rng, tokens, vocab, dim, padding_idx=None, dtype=numpy.float32):
    idx = b.asarray(rng.integers(0, vocab, tokens))
    return normal(b, rng, (tokens, dim), dtype=dtype), idx, vocab, padding_idx


CASES = [  # gy read once, indices and CSR (~3 x 8 bytes per token), the gradient table written once
    Case("embedding_backward", _args,
         bytes=lambda tokens, vocab, dim: 4 * tokens * dim + 24 * tokens + 4 * vocab * dim,
         flops=lambda tokens, vocab, dim: tokens * dim,
         sizes=({"tokens": 32 * 512, "vocab": 32000, "dim": 512}, {"tokens": 64 * 128, "vocab": 1000, "dim": 256}),
         checks=({"tokens": 300, "vocab": 50, "dim": 7}, *({"tokens": n, "vocab": 9, "dim": 5} for n in ODD),
                 *({"tokens": 3, "vocab": 4, "dim": n} for n in ODD))),
    Case("embedding_backward", lambda b, rng, n: _args(b, rng, n, 9, 5, padding_idx=2),
         checks=[{"n": n} for n in ODD], label="padding_idx"),
    Case("embedding_backward", lambda b, rng, n: _args(b, rng, n, 9, 5, dtype=numpy.float64),
         checks=({"n": 33},), label="float64"),
]
