"""CuPy launchers of ``kernels/pool.cu``: max pooling with argmax and average pooling, forward and backward.

float32 launches the kernels (one thread per output element forward, one per input element backward: gathers,
no atomics); float64 runs the xp reference (``gpunet.backend.references.pool``). Each launch picks the kernel's
32-bit index variant (``*_i32_f32``, int sizes) when every index it forms fits in an int, else the 64-bit one.
"""
from __future__ import annotations

import numpy

from ..geometry import pool_output_size
from .common import BLOCK_SIZE, ceil_div, fits_int32, prod, require_float


def _check(op: str, x, what: str = "x") -> None:
    require_float(op, what, x)
    if x.ndim != 4:
        raise ValueError(f"{op}: {what} must be (N, C, H, W), got shape {tuple(x.shape)}")


def _window_args(x_shape, out_shape, kernel, stride, padding) -> tuple:
    """(planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw)."""
    n, c, h, w = x_shape
    return (n * c, h, w, *out_shape, *kernel, *stride, *padding)


def max_pool_args(x_shape, out_shape, kernel, stride, padding, dilation, ctype=numpy.int64) -> tuple:
    """The scalar arguments of the max-pooling kernels, after their arrays, as ``ctype`` (int64 for the ``_f32``
    entry points, int32 for ``_i32_f32``)."""
    return tuple(map(ctype, (*_window_args(x_shape, out_shape, kernel, stride, padding), *dilation)))


def avg_pool_args(x_shape, out_shape, kernel, stride, padding, count_include_pad, divisor_override,
                  ctype=numpy.int64) -> tuple:
    """The scalar arguments of the average-pooling kernels, after their arrays, as ``ctype``."""
    return tuple(map(ctype, (*_window_args(x_shape, out_shape, kernel, stride, padding), bool(count_include_pad),
                             divisor_override or 0)))


def _launch(backend, kernel: str, x_shape, y_shape, arrays: tuple, scalars) -> None:
    """One thread per element of the larger of x and y (``kernel`` is ``<op>_forward`` or ``<op>_backward``),
    with the 32-bit variant when the indices of both fit. ``scalars(ctype)`` gives the scalar arguments."""
    n = prod(y_shape) if kernel.endswith("forward") else prod(x_shape)
    if not n:
        return
    blocks, threads = ceil_div(n, BLOCK_SIZE), min(BLOCK_SIZE, n)
    narrow = fits_int32(backend, max(prod(x_shape), prod(y_shape)), blocks, threads)
    entry = f"{kernel}_i32_f32" if narrow else f"{kernel}_f32"
    backend.launch("pool", entry, blocks, threads, (*arrays, *scalars(numpy.int32 if narrow else numpy.int64)))


def check_max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=False):
    _check("max_pool2d", x)


def max_pool2d(backend, x, kernel, stride, padding, dilation, ceil_mode=False):
    out = tuple(pool_output_size(x.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode)
                for a in (0, 1))
    x = backend.xp.ascontiguousarray(x)
    y = backend.xp.empty(x.shape[:2] + out, dtype=x.dtype)
    argmax = backend.xp.empty(y.shape, dtype=numpy.int64)
    _launch(backend, "max_pool2d_forward", x.shape, y.shape, (x, y, argmax),
            lambda ctype: max_pool_args(x.shape, out, kernel, stride, padding, dilation, ctype))
    return y, argmax


def check_max_pool2d_backward(gy, argmax, x_shape, kernel, stride, padding, dilation):
    _check("max_pool2d_backward", gy, "gy")
    if argmax.shape != gy.shape:
        raise ValueError(f"max_pool2d_backward: argmax has shape {tuple(argmax.shape)} but gy has "
                         f"{tuple(gy.shape)}; pass the indices max_pool2d returned with this output")


def max_pool2d_backward(backend, gy, argmax, x_shape, kernel, stride, padding, dilation):
    gy = backend.xp.ascontiguousarray(gy)
    argmax = backend.xp.ascontiguousarray(argmax.astype(numpy.int64, copy=False))
    gx = backend.xp.empty(tuple(x_shape), dtype=gy.dtype)
    _launch(backend, "max_pool2d_backward", gx.shape, gy.shape, (gy, argmax, gx),
            lambda ctype: max_pool_args(x_shape, gy.shape[2:], kernel, stride, padding, dilation, ctype))
    return gx


def check_avg_pool2d(x, kernel, stride, padding, count_include_pad=True, ceil_mode=False, divisor_override=None):
    _check("avg_pool2d", x)


def avg_pool2d(backend, x, kernel, stride, padding, count_include_pad=True, ceil_mode=False, divisor_override=None):
    out = tuple(pool_output_size(x.shape[2 + a], kernel[a], stride[a], padding[a], 1, ceil_mode) for a in (0, 1))
    x = backend.xp.ascontiguousarray(x)
    y = backend.xp.empty(x.shape[:2] + out, dtype=x.dtype)
    _launch(backend, "avg_pool2d_forward", x.shape, y.shape, (x, y),
            lambda ctype: avg_pool_args(x.shape, out, kernel, stride, padding, count_include_pad, divisor_override,
                                        ctype))
    return y


def check_avg_pool2d_backward(gy, x_shape, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    _check("avg_pool2d_backward", gy, "gy")


def avg_pool2d_backward(backend, gy, x_shape, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    gy = backend.xp.ascontiguousarray(gy)
    gx = backend.xp.empty(tuple(x_shape), dtype=gy.dtype)
    _launch(backend, "avg_pool2d_backward", gx.shape, gy.shape, (gy, gx),
            lambda ctype: avg_pool_args(x_shape, gy.shape[2:], kernel, stride, padding, count_include_pad,
                                        divisor_override, ctype))
    return gx
