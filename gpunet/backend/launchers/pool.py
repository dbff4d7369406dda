"""CuPy launchers of ``kernels/pool.cu``: max pooling with argmax and average pooling, forward and backward.

float32 launches the kernels (one thread per output element forward, one per input element backward: gathers,
no atomics); float64 runs the xp reference (``gpunet.backend.references.pool``).
"""
from __future__ import annotations

import numpy

from .. import cupy_backend as _cb  # its helpers (a module reference: cupy_backend imports this mixin)
from ..geometry import pool_output_size

_i64 = numpy.int64


def _check(op: str, x, what: str = "x") -> None:
    _cb._require_float(op, what, x)
    if x.ndim != 4:
        raise ValueError(f"{op}: {what} must be (N, C, H, W), got shape {tuple(x.shape)}")


def _geometry(x_shape, out_shape, kernel, stride, padding) -> tuple:
    """(planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw) as the kernels' long long arguments."""
    n, c, h, w = x_shape
    return tuple(_i64(v) for v in (n * c, h, w, *out_shape, *kernel, *stride, *padding))


class PoolKernels:
    """``max_pool2d``, ``max_pool2d_backward``, ``avg_pool2d``, ``avg_pool2d_backward`` (mixin of ``CupyBackend``)."""

    def _pool_launch(self, kernel: str, n: int, args: tuple) -> None:
        if n:
            self._launch("pool", kernel, _cb._ceil_div(n, _cb.BLOCK_SIZE), min(_cb.BLOCK_SIZE, n), args)

    def max_pool2d(self, x, kernel, stride, padding, dilation, ceil_mode=False):
        _check("max_pool2d", x)
        if x.dtype != numpy.float32:
            return _cb._references()["max_pool2d"](self.xp, x, kernel, stride, padding, dilation, ceil_mode)
        out = tuple(pool_output_size(x.shape[2 + a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode)
                    for a in (0, 1))
        x = self.xp.ascontiguousarray(x)
        y = self.xp.empty(x.shape[:2] + out, dtype=x.dtype)
        argmax = self.xp.empty(y.shape, dtype=numpy.int64)
        self._pool_launch("max_pool2d_forward_f32", y.size,
                          (x, y, argmax, *_geometry(x.shape, out, kernel, stride, padding), *map(_i64, dilation)))
        return y, argmax

    def max_pool2d_backward(self, gy, argmax, x_shape, kernel, stride, padding, dilation):
        _check("max_pool2d_backward", gy, "gy")
        if argmax.shape != gy.shape:
            raise ValueError(f"max_pool2d_backward: argmax has shape {tuple(argmax.shape)} but gy has "
                             f"{tuple(gy.shape)}; pass the indices max_pool2d returned with this output")
        if gy.dtype != numpy.float32:
            return _cb._references()["max_pool2d_backward"](self.xp, gy, argmax, x_shape, kernel, stride, padding,
                                                            dilation)
        gy = self.xp.ascontiguousarray(gy)
        argmax = self.xp.ascontiguousarray(argmax.astype(numpy.int64, copy=False))
        gx = self.xp.empty(tuple(x_shape), dtype=gy.dtype)
        self._pool_launch("max_pool2d_backward_f32", gx.size,
                          (gy, argmax, gx, *_geometry(x_shape, gy.shape[2:], kernel, stride, padding),
                           *map(_i64, dilation)))
        return gx

    def avg_pool2d(self, x, kernel, stride, padding, count_include_pad=True, ceil_mode=False, divisor_override=None):
        _check("avg_pool2d", x)
        if x.dtype != numpy.float32:
            return _cb._references()["avg_pool2d"](self.xp, x, kernel, stride, padding, count_include_pad, ceil_mode,
                                                   divisor_override)
        out = tuple(pool_output_size(x.shape[2 + a], kernel[a], stride[a], padding[a], 1, ceil_mode) for a in (0, 1))
        x = self.xp.ascontiguousarray(x)
        y = self.xp.empty(x.shape[:2] + out, dtype=x.dtype)
        self._pool_launch("avg_pool2d_forward_f32", y.size,
                          (x, y, *_geometry(x.shape, out, kernel, stride, padding), _i64(bool(count_include_pad)),
                           _i64(divisor_override or 0)))
        return y

    def avg_pool2d_backward(self, gy, x_shape, kernel, stride, padding, count_include_pad=True,
                            divisor_override=None):
        _check("avg_pool2d_backward", gy, "gy")
        if gy.dtype != numpy.float32:
            return _cb._references()["avg_pool2d_backward"](self.xp, gy, x_shape, kernel, stride, padding,
                                                            count_include_pad, divisor_override)
        gy = self.xp.ascontiguousarray(gy)
        gx = self.xp.empty(tuple(x_shape), dtype=gy.dtype)
        self._pool_launch("avg_pool2d_backward_f32", gx.size,
                          (gy, gx, *_geometry(x_shape, gy.shape[2:], kernel, stride, padding),
                           _i64(bool(count_include_pad)), _i64(divisor_override or 0)))
        return gx
