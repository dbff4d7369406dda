"""CuPy launchers of ``kernels/pool.cu``: max pooling with argmax and average pooling, forward and backward.

float32 launches the kernels (one thread per output element forward, one per input element backward: gathers,
no atomics); float64 runs the xp reference (``gpunet.backend.references.pool``).
"""
from __future__ import annotations

import numpy

from ..geometry import pool_output_size
from .common import launch_per_element, require_float

_i64 = numpy.int64


def _check(op: str, x, what: str = "x") -> None:
    require_float(op, what, x)
    if x.ndim != 4:
        raise ValueError(f"{op}: {what} must be (N, C, H, W), got shape {tuple(x.shape)}")


def _window_args(x_shape, out_shape, kernel, stride, padding) -> tuple:
    """(planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw) as the kernels' long long arguments."""
    n, c, h, w = x_shape
    return tuple(_i64(v) for v in (n * c, h, w, *out_shape, *kernel, *stride, *padding))


def max_pool_args(x_shape, out_shape, kernel, stride, padding, dilation) -> tuple:
    """The scalar arguments of the max-pooling kernels, after their arrays."""
    return (*_window_args(x_shape, out_shape, kernel, stride, padding), *map(_i64, dilation))


def avg_pool_args(x_shape, out_shape, kernel, stride, padding, count_include_pad, divisor_override) -> tuple:
    """The scalar arguments of the average-pooling kernels, after their arrays."""
    return (*_window_args(x_shape, out_shape, kernel, stride, padding), _i64(bool(count_include_pad)),
            _i64(divisor_override or 0))


def check_max_pool2d(x, kernel, stride, padding, dilation, ceil_mode=False):
    _check("max_pool2d", x)


def max_pool2d(backend, x, kernel, stride, padding, dilation, ceil_mode=False):
    out = tuple(pool_output_size(x.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode)
                for a in (0, 1))
    x = backend.xp.ascontiguousarray(x)
    y = backend.xp.empty(x.shape[:2] + out, dtype=x.dtype)
    argmax = backend.xp.empty(y.shape, dtype=numpy.int64)
    launch_per_element(backend, "pool", "max_pool2d_forward_f32", y.size,
                       (x, y, argmax, *max_pool_args(x.shape, out, kernel, stride, padding, dilation)))
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
    launch_per_element(backend, "pool", "max_pool2d_backward_f32", gx.size,
                       (gy, argmax, gx, *max_pool_args(x_shape, gy.shape[2:], kernel, stride, padding, dilation)))
    return gx


def check_avg_pool2d(x, kernel, stride, padding, count_include_pad=True, ceil_mode=False, divisor_override=None):
    _check("avg_pool2d", x)


def avg_pool2d(backend, x, kernel, stride, padding, count_include_pad=True, ceil_mode=False, divisor_override=None):
    out = tuple(pool_output_size(x.shape[2 + a], kernel[a], stride[a], padding[a], 1, ceil_mode) for a in (0, 1))
    x = backend.xp.ascontiguousarray(x)
    y = backend.xp.empty(x.shape[:2] + out, dtype=x.dtype)
    launch_per_element(backend, "pool", "avg_pool2d_forward_f32", y.size,
                       (x, y, *avg_pool_args(x.shape, out, kernel, stride, padding, count_include_pad,
                                             divisor_override)))
    return y


def check_avg_pool2d_backward(gy, x_shape, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    _check("avg_pool2d_backward", gy, "gy")


def avg_pool2d_backward(backend, gy, x_shape, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    gy = backend.xp.ascontiguousarray(gy)
    gx = backend.xp.empty(tuple(x_shape), dtype=gy.dtype)
    launch_per_element(backend, "pool", "avg_pool2d_backward_f32", gx.size,
                       (gy, gx, *avg_pool_args(x_shape, gy.shape[2:], kernel, stride, padding, count_include_pad,
                                               divisor_override)))
    return gx
