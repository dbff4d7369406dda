"""LayerNorm family: the fused forward (normalised rows, mean, 1/std) and backward (input, weight, bias gradients)."""
from . import Case, normal

SIZES = ({"rows": 8192, "cols": 768}, {"rows": 4096, "cols": 4096}, {"rows": 1 << 16, "cols": 64})
# several rows per block with an idle tail; 16 threads per row; wide rows, three chunks of the weight gradient
CHECKS = ({"rows": 37, "cols": 48}, {"rows": 9, "cols": 10}, {"rows": 130, "cols": 1030})


def _forward(b, rng, rows, cols):
    return normal(b, rng, (rows, cols), 2.0), normal(b, rng, (cols,)), normal(b, rng, (cols,)), 1e-5


def _backward(b, rng, rows, cols):
    x, weight, bias, eps = _forward(b, rng, rows, cols)
    _, mean, rstd = b.layer_norm(x, weight, bias, eps)
    return normal(b, rng, (rows, cols)), x, weight, mean, rstd


CASES = [
    Case("layer_norm", _forward, bytes=lambda rows, cols: 8 * rows * cols + 8 * cols + 8 * rows,
         flops=lambda rows, cols: 8 * rows * cols, sizes=SIZES, checks=CHECKS),
    Case("layer_norm_backward", _backward, bytes=lambda rows, cols: 12 * rows * cols + 12 * cols + 8 * rows,
         flops=lambda rows, cols: 14 * rows * cols, sizes=SIZES, checks=CHECKS, tolerance={"rtol": 1e-4, "atol": 1e-4}),
]
