"""Pooling: max pooling (with PyTorch's return_indices), average pooling and adaptive average pooling, 1-D and 2-D.

Forward and backward run the backend's fused pooling kernels (``kernels/pool.cu`` on CUDA). Every backward is
itself a differentiable op, so derivatives of any order work: the max-pool backward (a gather of gy by argmax into
the input) has as its own backward the gather of the incoming gradient at argmax, and the average-pool backward's
backward is average pooling again. 1-D pooling is 2-D pooling of height 1.
"""
from __future__ import annotations

import collections

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from ..backend.geometry import pool_output_size
from ..kinds import integral
from .arithmetic import matmul
from .shape import reshape

_Geometry = collections.namedtuple("_Geometry", "kernel stride padding dilation ceil_mode")


class MaxPool2d(Function):
    def __init__(self, geometry: _Geometry):
        self.geometry = geometry

    def forward(self, backend, x):
        g = self.geometry
        y, self.argmax = backend.max_pool2d(x, g.kernel, g.stride, g.padding, g.dilation, g.ceil_mode)
        return y

    def backward(self, gy):
        return MaxPool2dBackward(self.geometry, self.argmax, self.inputs[0].shape).apply(gy)


class MaxPool2dBackward(Function):
    """gx: each gy added to the input element its window's argmax names (linear in gy)."""

    def __init__(self, geometry, argmax, x_shape):
        self.geometry, self.argmax, self.x_shape = geometry, argmax, tuple(x_shape)

    def forward(self, backend, gy):
        g = self.geometry
        return backend.max_pool2d_backward(gy, self.argmax, self.x_shape, g.kernel, g.stride, g.padding, g.dilation)

    def backward(self, ggx):
        return MaxPoolGather(self.geometry, self.argmax, self.x_shape).apply(ggx)


class MaxPoolGather(Function):
    """gy[n, c, oh, ow] = gx[n, c, argmax[n, c, oh, ow]]: the adjoint of MaxPool2dBackward."""

    def __init__(self, geometry, argmax, x_shape):
        self.geometry, self.argmax, self.x_shape = geometry, argmax, x_shape

    def forward(self, backend, gx):
        return backend.max_pool2d_gather(gx, self.argmax)

    def backward(self, g):
        return MaxPool2dBackward(self.geometry, self.argmax, self.x_shape).apply(g)


class AvgPool2d(Function):
    def __init__(self, geometry: _Geometry, count_include_pad: bool, divisor_override):
        self.geometry, self.count_include_pad, self.divisor_override = geometry, count_include_pad, divisor_override

    def forward(self, backend, x):
        g = self.geometry
        return backend.avg_pool2d(x, g.kernel, g.stride, g.padding, self.count_include_pad, g.ceil_mode,
                                  self.divisor_override)

    def backward(self, gy):
        return AvgPool2dBackward(self, self.inputs[0].shape).apply(gy)


class AvgPool2dBackward(Function):
    """gx: each gy divided by its window's divisor and spread over the window (the adjoint of AvgPool2d)."""

    def __init__(self, pool: AvgPool2d, x_shape):
        self.pool, self.x_shape = pool, tuple(x_shape)

    def forward(self, backend, gy):
        g = self.pool.geometry
        return backend.avg_pool2d_backward(gy, self.x_shape, g.kernel, g.stride, g.padding,
                                           self.pool.count_include_pad, self.pool.divisor_override)

    def backward(self, ggx):
        return AvgPool2d(self.pool.geometry, self.pool.count_include_pad, self.pool.divisor_override).apply(ggx)


# ----- argument checking (PyTorch's rules and messages) -------------------------------------------------------------
def _tuple(value, n: int, op: str, name: str) -> tuple:
    values = (value,) * n if integral(value) else tuple(value)
    if len(values) != n or not all(integral(v) for v in values):
        raise ValueError(f"{op}: {name} must be an int or a tuple of {n} ints, got {value!r}")
    return tuple(int(v) for v in values)


def _geometry(op: str, x: Tensor, dims: int, kernel_size, stride, padding, dilation, ceil_mode) -> _Geometry:
    if x.ndim not in (dims + 1, dims + 2):
        layout = "(N, C, L) or (C, L)" if dims == 1 else "(N, C, H, W) or (C, H, W)"
        raise ValueError(f"{op}: input must be {layout}, got shape {tuple(x.shape)}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got {x.dtype}; convert with .float()")
    kernel = _tuple(kernel_size, dims, op, "kernel_size")
    stride = kernel if stride is None or (not integral(stride) and len(stride) == 0) \
        else _tuple(stride, dims, op, "stride")
    padding = _tuple(padding, dims, op, "padding")
    dilation = _tuple(dilation, dims, op, "dilation")
    for name, values, low in (("kernel_size", kernel, 1), ("stride", stride, 1), ("padding", padding, 0),
                              ("dilation", dilation, 1)):
        if min(values) < low:
            raise ValueError(f"{op}: {name} must be >= {low}, got {values if dims > 1 else values[0]}")
    for k, p in zip(kernel, padding):
        if p > k // 2:  # PyTorch's rule (dilation does not widen it)
            raise ValueError(f"{op}: padding should be at most half of kernel size, but got padding={p} and "
                             f"kernel_size={k}; lower the padding")
    size = x.shape[-dims:]
    out = [pool_output_size(n, k, s, p, d, ceil_mode) for n, k, s, p, d in zip(size, kernel, stride, padding, dilation)]
    if min(out) < 1:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} gives an output of size {tuple(out)}, too small for "
                         f"kernel_size {kernel}, stride {stride}, padding {padding}, dilation {dilation}; use a "
                         "smaller kernel_size or dilation, or more padding")
    if dims == 1:  # 1-D is 2-D of height 1
        kernel, stride, padding, dilation = (1, *kernel), (1, *stride), (0, *padding), (1, *dilation)
    return _Geometry(kernel, stride, padding, dilation, bool(ceil_mode))


def _as_planes(x: Tensor, dims: int) -> Tensor:
    """x as (N, C, H, W): a batch dimension added when missing, height 1 for 1-D."""
    n_c = x.shape[:-dims] if x.ndim == dims + 2 else (1,) + x.shape[:-dims]
    return reshape(x, n_c + ((1,) if dims == 1 else ()) + x.shape[-dims:])


def _restore(y: Tensor, x: Tensor, dims: int) -> Tensor:
    return reshape(y, x.shape[:-dims] + y.shape[-dims:])


# ----- public functions ---------------------------------------------------------------------------------------------
def _max_pool(op, dims, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    geometry = _geometry(op, x, dims, kernel_size, stride, padding, dilation, ceil_mode)
    node = MaxPool2d(geometry)
    y = _restore(node.apply(_as_planes(x, dims)), x, dims)
    if not return_indices:
        return y
    return y, Tensor(node.argmax.reshape(y.shape), x.backend)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Maximum over each kernel_size window of (N, C, H, W) or (C, H, W); with ``return_indices`` also the flat
    index ih * W + iw of each maximum in its input plane (int64), as PyTorch's."""
    return _max_pool("max_pool2d", 2, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool1d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Maximum over each kernel_size window of (N, C, L) or (C, L); indices are positions in L."""
    return _max_pool("max_pool1d", 1, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over each kernel_size window of (N, C, H, W) or (C, H, W); padding counts in the divisor when
    ``count_include_pad``; ``divisor_override`` replaces the divisor."""
    if divisor_override is not None and (not integral(divisor_override) or divisor_override < 1):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int or None, got {divisor_override!r}")
    geometry = _geometry("avg_pool2d", x, 2, kernel_size, stride, padding, 1, ceil_mode)
    return _restore(AvgPool2d(geometry, bool(count_include_pad), divisor_override).apply(_as_planes(x, 2)), x, 2)


def avg_pool1d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over each kernel_size window of (N, C, L) or (C, L)."""
    geometry = _geometry("avg_pool1d", x, 1, kernel_size, stride, padding, 1, ceil_mode)
    return _restore(AvgPool2d(geometry, bool(count_include_pad), None).apply(_as_planes(x, 1)), x, 1)


def _adaptive_matrix(x: Tensor, size: int, out: int, transposed: bool = False) -> Tensor:
    """(out, size) matrix averaging input range [floor(i * size / out), ceil((i + 1) * size / out)) into output i
    (its transpose when ``transposed``), a constant on x's device."""
    import numpy

    matrix = numpy.zeros((out, size))
    for i in range(out):  # one row per output position (not per pixel)
        start, end = (i * size) // out, -(-(i + 1) * size // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return Tensor(x.backend.asarray(matrix.T if transposed else matrix, dtype=x.dtype), x.backend)


def _adaptive_avg_pool(op, dims, x, output_size):
    if x.ndim not in (dims + 1, dims + 2) or min(x.shape[-dims:], default=0) < 1:
        layout = "(N, C, L) or (C, L)" if dims == 1 else "(N, C, H, W) or (C, H, W)"
        raise ValueError(f"{op}: input must be {layout} with non-empty spatial sizes, got shape {tuple(x.shape)}")
    sizes = (output_size,) * dims if output_size is None or integral(output_size) \
        else tuple(output_size)
    if len(sizes) != dims or any(s is not None and (not integral(s) or s < 1) for s in sizes):
        raise ValueError(f"{op}: output_size must be a positive int (or None to keep a size) or a tuple of {dims}, "
                         f"got {output_size!r}")
    sizes = tuple(n if s is None else int(s) for s, n in zip(sizes, x.shape[-dims:]))
    y = matmul(x, _adaptive_matrix(x, x.shape[-1], sizes[-1], transposed=True)) if sizes[-1] != x.shape[-1] else x
    if dims == 2 and sizes[0] != x.shape[-2]:
        y = matmul(_adaptive_matrix(x, x.shape[-2], sizes[0]), y)
    return y


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed (OH, OW) output (PyTorch's windows: floor(i*H/OH) to ceil((i+1)*H/OH)); 1 gives
    the global average."""
    return _adaptive_avg_pool("adaptive_avg_pool2d", 2, x, output_size)


def adaptive_avg_pool1d(x, output_size):
    """Average pooling of (N, C, L) or (C, L) to a fixed output length."""
    return _adaptive_avg_pool("adaptive_avg_pool1d", 1, x, output_size)
