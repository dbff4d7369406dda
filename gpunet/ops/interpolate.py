"""Resampling of (N, C, L) and (N, C, H, W) inputs, PyTorch's ``F.interpolate``: modes nearest, nearest-exact,
linear and bilinear.

Each of these modes is separable: it resamples one spatial axis after the other. Along an axis, nearest is a
gather (``TakeAlongAxis``; a whole-number upscale is a broadcast instead) and linear the weighted sum of two
gathers. The gathers' indices are sorted, so their adjoint sums runs of outputs with a few gathers, no scatter. The source indices and weights follow PyTorch's CPU kernels (``UpSample.h``), including nearest's
float32 arithmetic, so the results match PyTorch's; the gradients, of any order, come from the gathers'.
"""
from __future__ import annotations

import math
import numbers

import numpy

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .arithmetic import add, mul
from .shape import broadcast_to, reshape

_MODES = {"nearest": (3, 4), "nearest-exact": (3, 4), "linear": (3,), "bilinear": (4,)}
_UNSUPPORTED = ("bicubic", "trilinear", "area")


def _per_axis(value, n, what, where, kind, kind_name):
    """``value`` (a number or a sequence of n numbers) as a tuple of n positive ``kind``s."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * n
    if len(values) != n or not all(isinstance(v, kind) and not isinstance(v, bool) and v > 0 for v in values):
        raise ValueError(f"{where}: {what} must be a positive {kind_name} or a sequence of {n} of them "
                         f"(one per spatial dimension), got {value!r}")
    return values


def _nearest_indices(in_size, out_size, scale, exact):
    """PyTorch's ``nearest_idx`` / ``nearest_neighbor_exact_compute_source_index`` (float32 arithmetic)."""
    dst = numpy.arange(out_size)
    if not exact and out_size == in_size:
        return dst
    if not exact and out_size == 2 * in_size:
        return dst >> 1
    ratio = numpy.float32(1.0 / scale) if scale else numpy.float32(in_size) / numpy.float32(out_size)
    offset = numpy.float32(0.5) if exact else numpy.float32(0.0)
    src = numpy.floor((dst.astype(numpy.float32) + offset) * ratio).astype(numpy.int64)
    return numpy.minimum(src, in_size - 1)


def _linear_indices(in_size, out_size, scale, align_corners):
    """(i0, i1, lambda1): output j = x[i0] (1 - lambda1) + x[i1] lambda1 (PyTorch's
    ``compute_indices_weights_linear``)."""
    dst = numpy.arange(out_size, dtype=numpy.float64)
    if align_corners:
        src = dst * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    else:
        ratio = 1.0 / scale if scale else in_size / out_size
        src = numpy.maximum(ratio * (dst + 0.5) - 0.5, 0.0)
    i0 = numpy.minimum(numpy.floor(src).astype(numpy.int64), in_size - 1)
    lam = numpy.clip(src - i0, 0.0, 1.0)
    return i0, numpy.minimum(i0 + 1, in_size - 1), lam


class TakeAlongAxis(Function):
    """``x[..., index, ...]`` along ``axis`` for a non-decreasing ``index`` (host int64) into an axis of ``size``;
    the backward is ``TakeAdjoint``."""

    def __init__(self, axis, index, size):
        self.axis, self.index, self.size = axis, index, size

    def forward(self, backend, x):
        return backend.xp.take(x, backend.asarray(self.index), axis=self.axis)

    def backward(self, gy):
        return TakeAdjoint(self.axis, self.index, self.size).apply(gy)


class TakeAdjoint(Function):
    """The adjoint of ``TakeAlongAxis``: input position i gets the sum of the outputs that took it. The index is
    sorted, so those outputs are a run [start_i, start_i + count_i): the sum is ``max(count)`` gathers, added in
    output order (no scatter, no atomics); the backward is ``TakeAlongAxis``."""

    def __init__(self, axis, index, size):
        self.axis, self.index, self.size = axis, index, size

    def forward(self, backend, gy):
        xp, positions = backend.xp, numpy.arange(self.size)
        starts = numpy.searchsorted(self.index, positions, "left")
        counts = numpy.searchsorted(self.index, positions, "right") - starts
        shape = (self.size,) + (1,) * (gy.ndim - self.axis - 1)
        gx = xp.zeros(gy.shape[:self.axis] + (self.size,) + gy.shape[self.axis + 1:], dtype=gy.dtype)
        for k in range(int(counts.max(initial=0))):
            taken = xp.take(gy, backend.asarray(numpy.minimum(starts + k, len(self.index) - 1)), axis=self.axis)
            if (counts > k).all():
                gx += taken
            else:
                gx += taken * backend.asarray((counts > k).reshape(shape), dtype=gy.dtype)
        return gx

    def backward(self, ggx):
        return TakeAlongAxis(self.axis, self.index, self.size).apply(ggx)


def _take(x, axis, index):
    """x's entries ``index`` (non-decreasing) along ``axis``; a whole-number repeat of every entry is a broadcast."""
    size, out_size = x.shape[axis], len(index)
    repeat = out_size // size
    if out_size == repeat * size and numpy.array_equal(index, numpy.arange(out_size) // repeat):
        if repeat == 1:
            return x
        shape = x.shape[:axis + 1] + (1,) + x.shape[axis + 1:]
        wide = broadcast_to(reshape(x, shape), shape[:axis + 1] + (repeat,) + shape[axis + 2:])
        return reshape(wide, x.shape[:axis] + (out_size,) + x.shape[axis + 1:])
    return TakeAlongAxis(axis, index, size).apply(x)


def _weights(x, axis, lam):
    """``lam`` as a constant of x's dtype that broadcasts along ``axis``."""
    shape = (len(lam),) + (1,) * (x.ndim - axis - 1)
    return Tensor(x.backend.asarray(lam.reshape(shape), dtype=x.dtype), x.backend)


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None,
                antialias=False):
    """Resample the spatial axes of ``input`` (N, C, L) or (N, C, H, W) to ``size`` or by ``scale_factor``
    (exactly one of them), PyTorch's ``F.interpolate``.

    ``mode``: 'nearest' (3-D, 4-D; PyTorch's legacy floor(j * in / out) rule), 'nearest-exact' (the pixel-centre
    rule), 'linear' (3-D), 'bilinear' (4-D). ``align_corners`` (linear modes only, default False): map the corner
    pixels' centres onto each other instead of the corners of the image. With ``scale_factor`` the output size is
    floor(in * scale_factor), and the sampling uses 1 / scale_factor unless ``recompute_scale_factor``.
    """
    return _interpolate(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias,
                        "interpolate")


def _interpolate(input, size, scale_factor, mode, align_corners, recompute_scale_factor, antialias, where):
    if not isinstance(input, Tensor):
        raise TypeError(f"{where}: input must be a gpunet Tensor, got {type(input).__name__}")
    if mode in _UNSUPPORTED:
        raise ValueError(f"{where}: mode {mode!r} is not supported by gpunet; use one of {', '.join(_MODES)}")
    if mode not in _MODES:
        raise ValueError(f"{where}: mode must be one of {', '.join(_MODES)}, got {mode!r}")
    if input.ndim not in _MODES[mode]:
        dims = " or ".join(f"{d}-D {'(N, C, L)' if d == 3 else '(N, C, H, W)'}" for d in _MODES[mode])
        raise ValueError(f"{where}: mode {mode!r} needs a {dims} input, got shape {tuple(input.shape)}")
    linear = mode in ("linear", "bilinear")
    if align_corners is not None and not linear:
        raise ValueError(f"{where}: align_corners can only be set with the interpolating modes linear and bilinear, "
                         f"not {mode!r}")
    if antialias:
        raise ValueError(f"{where}: antialias=True is not supported by gpunet")
    n = input.ndim - 2
    in_sizes = tuple(input.shape[2:])
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{where}: give exactly one of size and scale_factor (got size={size!r}, "
                         f"scale_factor={scale_factor!r})")
    if size is not None:
        out_sizes, scales = _per_axis(size, n, "size", where, numbers.Integral, "int"), (None,) * n
    else:
        scales = tuple(float(s) for s in _per_axis(scale_factor, n, "scale_factor", where, numbers.Real, "number"))
        out_sizes = tuple(int(math.floor(i * s)) for i, s in zip(in_sizes, scales))
        if min(out_sizes) < 1:
            raise ValueError(f"{where}: scale_factor {scale_factor!r} makes input {tuple(input.shape)} empty "
                             f"(output size {out_sizes}); use a larger scale_factor")
        if recompute_scale_factor:
            scales = (None,) * n
    if min(in_sizes) < 1:
        raise ValueError(f"{where}: input of shape {tuple(input.shape)} has an empty spatial dimension")
    y = input
    for a in range(n):
        axis, in_size, out_size = 2 + a, in_sizes[a], int(out_sizes[a])
        if linear:
            i0, i1, lam = _linear_indices(in_size, out_size, scales[a], bool(align_corners))
            y = add(mul(_take(y, axis, i0), _weights(y, axis, 1.0 - lam)),
                    mul(_take(y, axis, i1), _weights(y, axis, lam)))
        else:
            y = _take(y, axis, _nearest_indices(in_size, out_size, scales[a], mode == "nearest-exact"))
    return y
