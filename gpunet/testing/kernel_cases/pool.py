"""Pooling family: max pooling with argmax and average pooling, forward and backward (gathers)."""
from gpunet.backend.geometry import pool_output_size
from gpunet.backend.launchers.common import index32_bound

from . import ODD, Case, normal


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


def _odd(n):
    """x (1, 2, 3, n), a (2, k) window with stride (1, 2) and padding (1, k // 2), its ceil-mode output shape."""
    k = min(3, n)
    kernel, stride, padding = (2, k), (1, 2), (1, k // 2)
    out = tuple(pool_output_size(size, kernel[a], stride[a], padding[a], 1, True) for a, size in enumerate((3, n)))
    return (1, 2, 3, n), kernel, stride, padding, out


def _odd_max_backward(b, rng, n):
    x_shape, kernel, stride, padding, out = _odd(n)
    _, argmax = b.max_pool2d(normal(b, rng, x_shape), kernel, stride, padding, (1, 1), True)
    return normal(b, rng, (1, 2, *out)), argmax, x_shape, kernel, stride, padding, (1, 1)


ODD_CHECKS = tuple({"n": n} for n in ODD)

CASES = [
    Case("max_pool2d", _max_forward, bytes=_bytes_in_out(12), flops=_window_flops, sizes=SIZES, checks=EMU),
    Case("max_pool2d_backward", _max_backward, bytes=_bytes_in_out(12), flops=_window_flops, sizes=SIZES,
         checks=EMU),
    Case("avg_pool2d", lambda b, rng, n, c, h, w, k, s, p: (normal(b, rng, (n, c, h, w)), *_geometry(k, s, p)),
         bytes=_bytes_in_out(4), flops=_window_flops, sizes=SIZES, checks=EMU),
    Case("avg_pool2d_backward", _avg_backward, bytes=_bytes_in_out(4), flops=_window_flops, sizes=SIZES,
         checks=EMU),
]
# the sizes above launch the 32-bit index kernels; the same checks with the 64-bit ones (tensors beyond 2**31)
CASES += [Case(case.kernel, case.args, checks=EMU, label="index64", within=lambda: index32_bound(0))
          for case in CASES[:4]]
CASES += [
    Case("max_pool2d", lambda b, rng, n: (normal(b, rng, _odd(n)[0]), *_odd(n)[1:4], (1, 1), True), checks=ODD_CHECKS,
         label="odd"),
    Case("max_pool2d_backward", _odd_max_backward, checks=ODD_CHECKS, label="odd"),
    Case("avg_pool2d", lambda b, rng, n: (normal(b, rng, _odd(n)[0]), *_odd(n)[1:4], False, True), checks=ODD_CHECKS,
         label="odd"),
    Case("avg_pool2d_backward", lambda b, rng, n: (normal(b, rng, (1, 2, *_odd(n)[4])), *_odd(n)[:4], False),
         checks=ODD_CHECKS, label="odd"),
]
