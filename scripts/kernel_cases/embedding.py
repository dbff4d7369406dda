"""Embedding backward: the weight gradient as a gather over a CSR of sorted positions (no atomics)."""
from . import Case, normal


def _args(b, rng, tokens, vocab, dim):
    idx = b.asarray(rng.integers(0, vocab, tokens))
    return normal(b, rng, (tokens, dim)), idx, vocab


CASES = [  # gy read once, indices and CSR (~3 x 8 bytes per token), the gradient table written once
    Case("embedding", "embedding_backward", _args,
         bytes=lambda tokens, vocab, dim: 4 * tokens * dim + 24 * tokens + 4 * vocab * dim,
         flops=lambda tokens, vocab, dim: tokens * dim,
         sizes=({"tokens": 32 * 512, "vocab": 32000, "dim": 512}, {"tokens": 64 * 128, "vocab": 1000, "dim": 256}),
         emulate={"tokens": 300, "vocab": 50, "dim": 7}),
]
