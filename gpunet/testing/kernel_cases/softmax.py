"""Softmax family: row and strided softmax / log-softmax, fused cross-entropy forward and backward."""
import numpy

from . import Case, normal


def _targets(backend, rng, rows, cols):
    return backend.asarray(rng.integers(0, cols, rows).astype(numpy.int64))


ROWS = ({"rows": 4096, "cols": 1000}, {"rows": 4096, "cols": 32000}, {"rows": 1 << 16, "cols": 128},
        {"rows": 1 << 20, "cols": 10})
# a warp per row, several rows per block (the last block partly idle); 16 threads per row; 256 per row
EMU_ROWS = ({"rows": 5, "cols": 300}, {"rows": 37, "cols": 10}, {"rows": 3, "cols": 1025})

CASES = [
    Case("softmax", lambda b, rng, rows, cols: (normal(b, rng, (rows, cols), 3.0), -1),
         bytes=lambda rows, cols: 8 * rows * cols, flops=lambda rows, cols: 8 * rows * cols,
         sizes=ROWS, checks=EMU_ROWS, label="rows"),
    Case("log_softmax", lambda b, rng, rows, cols: (normal(b, rng, (rows, cols), 3.0), -1),
         bytes=lambda rows, cols: 8 * rows * cols, flops=lambda rows, cols: 7 * rows * cols,
         sizes=ROWS, checks=EMU_ROWS, label="rows"),
    Case("softmax", lambda b, rng, outer, dim, inner: (normal(b, rng, (outer, dim, inner), 3.0), 1),
         bytes=lambda outer, dim, inner: 8 * outer * dim * inner, flops=lambda outer, dim, inner: 8 * outer * dim * inner,
         sizes=({"outer": 64, "dim": 21, "inner": 512 * 512},), checks={"outer": 2, "dim": 7, "inner": 33},
         label="cols"),
    Case("log_softmax", lambda b, rng, outer, dim, inner: (normal(b, rng, (outer, dim, inner), 3.0), 1),
         checks={"outer": 2, "dim": 7, "inner": 33}, label="cols"),
    Case("softmax_cross_entropy", lambda b, rng, rows, cols: (normal(b, rng, (rows, cols), 3.0), _targets(b, rng, rows, cols), -100),
         bytes=lambda rows, cols: 8 * rows * cols + 12 * rows, flops=lambda rows, cols: 6 * rows * cols,
         sizes=ROWS, checks=EMU_ROWS),
    Case("softmax_cross_entropy_backward", lambda b, rng, rows, cols: (b.log_softmax(normal(b, rng, (rows, cols), 3.0), -1), _targets(b, rng, rows, cols),
                                     normal(b, rng, (rows,)), -100),
         bytes=lambda rows, cols: 8 * rows * cols + 12 * rows, flops=lambda rows, cols: 3 * rows * cols,
         sizes=ROWS, checks=EMU_ROWS),
]


def _attention_masks(b, rng, n, h, q, k, causal):
    """Scores (n, h, q, k) with MultiheadAttention's masks: a key-padding keep (n, 1, 1, k), an (q, k) float mask."""
    keep = rng.random((n, 1, 1, k)) > 0.2
    return normal(b, rng, (n, h, q, k), 3.0), b.asarray(keep), normal(b, rng, (q, k)), causal


def _attention_bytes(n, h, q, k, causal):
    return 8 * n * h * q * k + n * k + 4 * q * k


CASES.append(Case("masked_softmax", _attention_masks, bytes=_attention_bytes,
                  flops=lambda n, h, q, k, causal: 9 * n * h * q * k,
                  sizes=({"n": 32, "h": 16, "q": 512, "k": 512, "causal": True},
                         {"n": 256, "h": 8, "q": 64, "k": 64, "causal": False}),
                  checks=({"n": 2, "h": 3, "q": 5, "k": 7, "causal": True},
                          {"n": 3, "h": 2, "q": 4, "k": 1030, "causal": False}), label="attention"))
