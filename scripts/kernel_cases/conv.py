"""Convolution support: im2col and its adjoint col2im (a gather); pure data movement, no FLOPs."""
from gpunet.backend.geometry import conv_output_size

from . import Case, normal


def _cols(n, c, h, w, k, s, p):
    return n * c * k * k * conv_output_size(h, k, s, p, 1) * conv_output_size(w, k, s, p, 1)


def _col2im(b, rng, n, c, h, w, k, s, p):
    return (normal(b, rng, (n, c * k * k, _cols(1, 1, h, w, k, s, p) // (k * k))), (n, c, h, w), (k, k), (s, s),
            (p, p), (1, 1))


SIZES = ({"n": 32, "c": 64, "h": 56, "w": 56, "k": 3, "s": 1, "p": 1},
         {"n": 32, "c": 3, "h": 224, "w": 224, "k": 7, "s": 2, "p": 3})
EMU = {"n": 2, "c": 3, "h": 7, "w": 9, "k": 3, "s": 2, "p": 1}

CASES = [
    Case("conv", "im2col", lambda b, rng, n, c, h, w, k, s, p: (normal(b, rng, (n, c, h, w)), (k, k), (s, s), (p, p),
                                                                (1, 1)),
         bytes=lambda n, c, h, w, k, s, p: 4 * n * c * h * w + 4 * _cols(n, c, h, w, k, s, p),
         flops=lambda **sizes: 0, sizes=SIZES, emulate=EMU),
    Case("conv", "col2im", _col2im,
         bytes=lambda n, c, h, w, k, s, p: 4 * n * c * h * w + 4 * _cols(n, c, h, w, k, s, p),
         flops=_cols, sizes=SIZES, emulate=EMU),
]
