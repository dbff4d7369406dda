"""Convolution support: im2col and its adjoint col2im (a gather); pure data movement, no FLOPs."""
from gpunet.backend.geometry import conv_output_shape, conv_output_size

from . import ODD, Case, normal


def _cols(n, c, h, w, k, s, p):
    return n * c * k * k * conv_output_size(h, k, s, p, 1) * conv_output_size(w, k, s, p, 1)


def _col2im(b, rng, n, c, h, w, k, s, p):
    return (normal(b, rng, (n, c * k * k, _cols(1, 1, h, w, k, s, p) // (k * k))), (n, c, h, w), (k, k), (s, s),
            (p, p), (1, 1))


SIZES = ({"n": 32, "c": 64, "h": 56, "w": 56, "k": 3, "s": 1, "p": 1},
         {"n": 32, "c": 3, "h": 224, "w": 224, "k": 7, "s": 2, "p": 3})
EMU = {"n": 2, "c": 3, "h": 7, "w": 9, "k": 3, "s": 2, "p": 1}


def _odd_geometry(n):
    """x (1, 2, 3, n), a (2, k) kernel with stride (1, 2), padding 1, dilation (1, 2 when it fits)."""
    k = min(3, n)
    return (1, 2, 3, n), (2, k), (1, 2), (1, 1), (1, 2 if n >= 5 else 1)


def _odd_col2im(b, rng, n):
    x_shape, kernel, stride, padding, dilation = _odd_geometry(n)
    oh, ow = conv_output_shape(x_shape, kernel, stride, padding, dilation)
    return normal(b, rng, (1, 2 * kernel[0] * kernel[1], oh * ow)), x_shape, kernel, stride, padding, dilation


ODD_CHECKS = tuple({"n": n} for n in ODD)

CASES = [
    Case("im2col", lambda b, rng, n, c, h, w, k, s, p: (normal(b, rng, (n, c, h, w)), (k, k), (s, s), (p, p),
                                                                (1, 1)),
         bytes=lambda n, c, h, w, k, s, p: 4 * n * c * h * w + 4 * _cols(n, c, h, w, k, s, p),
         flops=lambda **sizes: 0, sizes=SIZES, checks=EMU),
    Case("col2im", _col2im,
         bytes=lambda n, c, h, w, k, s, p: 4 * n * c * h * w + 4 * _cols(n, c, h, w, k, s, p),
         flops=_cols, sizes=SIZES, checks=EMU),
    Case("im2col", lambda b, rng, n: (normal(b, rng, _odd_geometry(n)[0]), *_odd_geometry(n)[1:]), checks=ODD_CHECKS,
         label="odd"),
    Case("col2im", _odd_col2im, checks=ODD_CHECKS, label="odd"),
    Case("im2col", lambda b, rng, n, c, h, w, k, s, p: (normal(b, rng, (n, c, h, w)), (k, k), (s, s), (p, p),
                                                                (1, 1), True),
         bytes=lambda n, c, h, w, k, s, p: 4 * n * c * h * w + 4 * _cols(n, c, h, w, k, s, p),
         flops=lambda **sizes: 0, sizes=SIZES, checks=EMU, label="batch_major"),
]
