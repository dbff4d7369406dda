"""CuPy launchers of ``kernels/conv.cu``: im2col and its adjoint col2im (a gather, no atomics).

float32 launches the kernels, one thread per (n, c, oh, ow) for im2col and one per input pixel for col2im;
float64 runs the xp reference (``gpunet.backend.references.conv``). cols are (N, C*kh*kw, OH*OW) views of
batch-innermost (C*kh*kw, OH*OW, N) storage, as the reference returns them.
"""
from __future__ import annotations

import numpy

from ..geometry import conv_output_shape
from .common import launch_per_element, require_float


def geometry_args(x_shape, out_shape, kernel, stride, padding, dilation) -> tuple:
    """(N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW): the kernels' long long arguments after the arrays."""
    return tuple(numpy.int64(v) for v in (*x_shape, *kernel, *stride, *padding, *dilation, *out_shape))


def check_im2col(x, kernel, stride, padding, dilation, batch_major=False):
    require_float("im2col", "x", x)
    if x.ndim != 4:
        raise ValueError(f"im2col: x must be (N, C, H, W), got shape {tuple(x.shape)}")


def im2col(backend, x, kernel, stride, padding, dilation, batch_major=False):
    out = conv_output_shape(x.shape, kernel, stride, padding, dilation)
    n, c = x.shape[:2]
    x = backend.xp.ascontiguousarray(x)
    rows, length = c * kernel[0] * kernel[1], out[0] * out[1]
    cols = backend.xp.empty((n, rows, length) if batch_major else (rows, length, n), dtype=x.dtype)
    launch_per_element(backend, "conv", "im2col_f32", n * c * length,
                       (x, cols, *geometry_args(x.shape, out, kernel, stride, padding, dilation),
                        numpy.int64(bool(batch_major))))
    return cols if batch_major else cols.transpose(2, 0, 1)


def check_col2im(cols, x_shape, kernel, stride, padding, dilation):
    require_float("col2im", "cols", cols)
    x_shape = tuple(int(v) for v in x_shape)
    if len(x_shape) != 4:
        raise ValueError(f"col2im: x_shape must be (N, C, H, W), got {x_shape}")
    out = conv_output_shape(x_shape, kernel, stride, padding, dilation)
    expected = (x_shape[0], x_shape[1] * kernel[0] * kernel[1], out[0] * out[1])
    if tuple(cols.shape) != expected:
        raise ValueError(f"col2im: cols of shape {tuple(cols.shape)} do not fit x_shape {x_shape} with kernel "
                         f"{tuple(kernel)}: expected {expected}")


def col2im(backend, cols, x_shape, kernel, stride, padding, dilation):
    x_shape = tuple(int(v) for v in x_shape)
    out = conv_output_shape(x_shape, kernel, stride, padding, dilation)
    cols = backend.xp.ascontiguousarray(cols.transpose(1, 2, 0))  # batch-innermost; free for im2col's own output
    x = backend.xp.empty(x_shape, dtype=cols.dtype)
    launch_per_element(backend, "conv", "col2im_f32", x.size,
                       (cols, x, *geometry_args(x_shape, out, kernel, stride, padding, dilation)))
    return x
