"""Pooling family: max pooling with argmax and average pooling, forward and backward (gathers)."""
from gpunet.backend.geometry import pool_output_size

from . import Case, normal


def _out(h, w, k, s, p):
    return pool_output_size(h, k, s, p, 1, False) * pool_output_size(w, k, s, p, 1, False)


def _geometry(k, s, p):
    return (k, k), (s, s), (p, p)


def _max_forward(b, rng, n, c, h, w, k, s, p):
    return (normal(b, rng, (n, c, h, w)), *_geometry(k, s, p), (1, 1))


def _max_backward(b, rng, n, c, h, w, k, s, p):
    x = normal(b, rng, (n, c, h, w))
    y, argmax = b.max_pool2d(x, *_geometry(k, s, p), (1, 1))
    return (normal(b, rng, tuple(y.shape)), argmax, (n, c, h, w), *_geometry(k, s, p), (1, 1))


def _avg_backward(b, rng, n, c, h, w, k, s, p):
    oh, ow = pool_output_size(h, k, s, p, 1, False), pool_output_size(w, k, s, p, 1, False)
    return (normal(b, rng, (n, c, oh, ow)), (n, c, h, w), *_geometry(k, s, p))


def _bytes_in_out(per_out):
    return lambda n, c, h, w, k, s, p: 4 * n * c * h * w + per_out * n * c * _out(h, w, k, s, p)


def _window_flops(n, c, h, w, k, s, p):
    return k * k * n * c * _out(h, w, k, s, p)


# the ResNet stem's 3x3/2 pooling and a VGG-style 2x2/2 one
SIZES = ({"n": 64, "c": 64, "h": 112, "w": 112, "k": 3, "s": 2, "p": 1},
         {"n": 64, "c": 128, "h": 56, "w": 56, "k": 2, "s": 2, "p": 0})
EMU = {"n": 2, "c": 3, "h": 9, "w": 11, "k": 3, "s": 2, "p": 1}

CASES = [
    Case("pool", "max_pool2d", _max_forward, bytes=_bytes_in_out(12), flops=_window_flops, sizes=SIZES, emulate=EMU),
    Case("pool", "max_pool2d_backward", _max_backward, bytes=_bytes_in_out(12), flops=_window_flops, sizes=SIZES,
         emulate=EMU),
    Case("pool", "avg_pool2d", lambda b, rng, n, c, h, w, k, s, p: (normal(b, rng, (n, c, h, w)), *_geometry(k, s, p)),
         bytes=_bytes_in_out(4), flops=_window_flops, sizes=SIZES, emulate=EMU),
    Case("pool", "avg_pool2d_backward", _avg_backward, bytes=_bytes_in_out(4), flops=_window_flops, sizes=SIZES,
         emulate=EMU),
]
