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
