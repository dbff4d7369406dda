"""Pooling family reference (xp-generic): 2-D max pooling with argmax indices and average pooling, PyTorch's rules.

Mirrors ``kernels/pool.cu``. x is (N, C, H, W); ``kernel``, ``stride``, ``padding``, ``dilation`` are (h, w) pairs.
Work is vectorised over pixels: windows are strided views (``sliding_window_view``) of the padded input, and the
only Python loops run over the kh * kw positions of the window. Max pooling has fast paths with the same results
(values, argmax indices, gradients): windows that tile the input (stride == kernel, no padding, dilation 1) are
read through a reshape instead of a padded copy, and when no two windows share an input element the backward
writes each gy straight to its argmax. Average pooling over tiling windows is likewise a reshape and kh * kw - 1
adds forward, and a repeat of gy backward.
"""
from __future__ import annotations

import functools
import math

import numpy

from ..geometry import pool_output_size


def _out_shape(x_shape, kernel, stride, padding, dilation, ceil_mode):
    return tuple(pool_output_size(x_shape[2 + a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode)
                 for a in (0, 1))


def _padded(xp, x, out, kernel, stride, padding, dilation, fill):
    """x padded with ``fill`` on every side by ``padding``, and on the bottom/right as far as the last window runs."""
    pads = [(0, 0), (0, 0)]
    for a in (0, 1):
        reach = (out[a] - 1) * stride[a] + dilation[a] * (kernel[a] - 1) + 1  # padded rows the windows cover
        pads.append((padding[a], max(0, reach - x.shape[2 + a] - padding[a])))
    return xp.pad(x, pads, mode="constant", constant_values=fill)


def _windows(xp, padded, out, kernel, stride, dilation):
    """(N, C, OH, OW, kh, kw) strided view: window (oh, ow) of the padded input."""
    span = tuple(dilation[a] * (kernel[a] - 1) + 1 for a in (0, 1))
    view = xp.lib.stride_tricks.sliding_window_view(padded, span, axis=(2, 3))
    return view[:, :, ::stride[0], ::stride[1], ::dilation[0], ::dilation[1]][:, :, :out[0], :out[1]]


def _first_inside(xp, start, d):
    """First of start, start + d, ... that is >= 0 (elementwise)."""
    return xp.where(start >= 0, start, start + (-start + d - 1) // d * d)


def _tiles(x_shape, out, kernel, stride, padding, dilation) -> bool:
    """The windows tile (a crop of) the input: stride == kernel, no padding, dilation 1, no partial window."""
    return (tuple(stride) == tuple(kernel) and not any(padding) and tuple(dilation) == (1, 1)
            and all(out[a] * kernel[a] <= x_shape[2 + a] for a in (0, 1)))


def _window_planes(xp, x, out, kernel):
    """x's tiling windows as a contiguous (kh * kw, N * C * OH * OW) array: row i * kw + j holds element (i, j) of
    every window. NumPy copies a transposed view whose innermost run is short (kw elements) one run at a time, so
    there the copy is two with long runs: whole input rows moved as opaque items to (kh, N * C * OH, W), then the
    window columns split off with a stride."""
    n, c, h, w = x.shape
    (oh, ow), (kh, kw) = out, kernel
    if xp is not numpy:
        windows = x[:, :, :oh * kh, :ow * kw].reshape(n, c, oh, kh, ow, kw).transpose(3, 5, 0, 1, 2, 4)
        return xp.ascontiguousarray(windows).reshape(kh * kw, -1)
    x = xp.ascontiguousarray(x[:, :, :oh * kh, :ow * kw])
    rows = x.reshape(-1, ow * kw).view(numpy.dtype((numpy.void, ow * kw * x.itemsize))).reshape(-1, kh)
    rows = xp.ascontiguousarray(rows.T).view(x.dtype).reshape(kh, -1, kw)
    return xp.ascontiguousarray(rows.transpose(0, 2, 1)).reshape(kh * kw, -1)


def _reduced_maximum(planes):
    """NumPy: each column's maximum and its row (PyTorch's first maximum on ties, -0.0 equal to 0.0) by one
    reduction, the row the first that equals it (leading rows that differ counted by a running AND, in bytes); None
    when the sum of the maxima is NaN (a NaN in a window, or an inf - inf), which needs PyTorch's scan. Equal
    numbers have equal bits except 0.0 and -0.0, so with a -0.0 in the planes the values are taken from the rows."""
    best = planes.max(axis=0)
    if numpy.isnan(best.sum()):
        return None
    differ = planes != best
    leading = differ[0].copy()
    position = leading.view(numpy.uint8).copy()
    for k in range(1, len(planes) - 1):
        leading &= differ[k]
        position += leading.view(numpy.uint8)
    position = position.astype(numpy.intp)
    bits = planes.view(f"i{planes.itemsize}")
    if bits.size and int(bits.min()) == -1 << (8 * bits.itemsize - 1):  # a -0.0 (the sign bit alone: the least int)
        columns = planes.shape[1]
        best = planes.reshape(-1).take(position * columns + numpy.arange(columns))
    return best, position


def _scanned_maximum(xp, planes):
    """Each column's maximum and its row, by PyTorch's scan: the first maximum wins, and a NaN over any number
    (the last NaN). The choices are branch-free blends (the float bits through an integer mask, the rows by a
    multiply): in NumPy, ``where`` on a random mask is several times slower (its branches mispredicted)."""
    bits = xp.dtype(f"int{8 * planes.dtype.itemsize}")
    best = planes[0].copy()
    best_bits = best.view(bits)
    position = xp.zeros(best.shape, dtype=xp.intp)
    better, nan = xp.empty(best.shape, dtype=bool), xp.empty(best.shape, dtype=bool)
    mask, flip, step = xp.empty(best.shape, dtype=bits), xp.empty(best.shape, dtype=bits), xp.empty_like(position)
    for k in range(1, len(planes)):
        v = planes[k]
        xp.greater(v, best, out=better)
        xp.not_equal(v, v, out=nan)
        better |= nan
        xp.subtract(0, better, out=mask, dtype=bits)  # 0 or -1: all bits set where better
        xp.bitwise_xor(best_bits, v.view(bits), out=flip)
        flip &= mask
        best_bits ^= flip  # best = v where better
        xp.subtract(position, k, out=step)
        step *= better
        position -= step  # position = k where better
    return best, position


def _tiled_max_pool2d(xp, x, out, kernel):
    """``max_pool2d`` for tiling windows, over ``_window_planes``: in NumPy by a reduction when it can
    (``_reduced_maximum``), otherwise (a NaN, or CuPy) by PyTorch's scan."""
    n, c, _, w = x.shape
    oh, ow = out
    planes = _window_planes(xp, x, out, kernel)
    found = _reduced_maximum(planes) if xp is numpy else None
    best, position = found if found is not None else _scanned_maximum(xp, planes)
    within, corner = map(xp.asarray, _tiled_offsets(w, out, kernel))
    offset = within.take(position).reshape(n * c, oh * ow)
    offset += corner
    return best.reshape(n, c, oh, ow), offset.reshape(n, c, oh, ow)


@functools.lru_cache(maxsize=64)
def _tiled_offsets(w, out, kernel):
    """(within, corner), int64 NumPy arrays: window position i * kw + j's offset i * W + j from its window's corner,
    and each window's corner oh * kh * W + ow * kw in its input plane (flat over (OH, OW))."""
    (oh, ow), (kh, kw) = out, kernel
    within = numpy.add.outer(numpy.arange(kh, dtype=numpy.int64) * w, numpy.arange(kw)).reshape(-1)
    corner = numpy.add.outer(numpy.arange(oh, dtype=numpy.int64) * (kh * w), numpy.arange(ow) * kw).reshape(-1)
    for table in within, corner:
        table.setflags(write=False)  # shared by every call with this geometry
    return within, corner


def max_pool2d(xp, x, kernel, stride, padding, dilation, ceil_mode=False):
    """(y, argmax): the window maxima and their flat indices ih * W + iw in the input plane (int64).

    As PyTorch: the first maximum wins, a NaN wins over any number (the last NaN of the window), and a window
    holding only -inf (or padding) reports its first position inside the input."""
    out = _out_shape(x.shape, kernel, stride, padding, dilation, ceil_mode)
    if _tiles(x.shape, out, kernel, stride, padding, dilation):
        return _tiled_max_pool2d(xp, x, out, kernel)
    return _windowed_max_pool2d(xp, x, out, kernel, stride, padding, dilation)


def _windowed_max_pool2d(xp, x, out, kernel, stride, padding, dilation):
    """``max_pool2d`` for any geometry: a scan over the window positions of the padded input's strided windows."""
    n, c, h, w = x.shape
    win = _windows(xp, _padded(xp, x, out, kernel, stride, padding, dilation, -math.inf), out, kernel, stride, dilation)
    best = xp.full((n, c) + out, -math.inf, dtype=x.dtype)
    pick = xp.full((n, c) + out, -1, dtype=xp.int64)  # window position i * kw + j; -1: none beat -inf
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            v = win[..., i, j]
            better = (v > best) | (v != v)
            best = xp.where(better, v, best)
            pick = xp.where(better, i * kernel[1] + j, pick)
    rows = (xp.arange(out[0]) * stride[0] - padding[0])[:, None]
    cols = (xp.arange(out[1]) * stride[1] - padding[1])[None, :]
    none = pick < 0
    ih = xp.where(none, _first_inside(xp, rows, dilation[0]), rows + (pick // kernel[1]) * dilation[0])
    iw = xp.where(none, _first_inside(xp, cols, dilation[1]), cols + (pick % kernel[1]) * dilation[1])
    return best, (ih * w + iw).astype(xp.int64)


def _scatter_windows(xp, values, x_shape, kernel, stride, padding, dilation):
    """The adjoint of taking windows: each ``values[..., oh, ow, i, j]`` (a callable of (i, j) giving (N, C, OH, OW))
    added to the input position it came from; positions in the padding are dropped."""
    n, c, h, w = x_shape
    oh, ow = values(0, 0).shape[2:]
    ph = max(h + 2 * padding[0], (oh - 1) * stride[0] + dilation[0] * (kernel[0] - 1) + 1)
    pw = max(w + 2 * padding[1], (ow - 1) * stride[1] + dilation[1] * (kernel[1] - 1) + 1)
    acc = None
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            v = values(i, j)
            r, s = i * dilation[0], j * dilation[1]
            if acc is None:
                acc = xp.zeros((n, c, ph, pw), dtype=v.dtype)
            acc[:, :, r:r + (oh - 1) * stride[0] + 1:stride[0], s:s + (ow - 1) * stride[1] + 1:stride[1]] += v
    return acc[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w]


def max_pool2d_backward(xp, gy, argmax, x_shape, kernel, stride, padding, dilation):
    """gx: each gy[n, c, oh, ow] added to the input element argmax[n, c, oh, ow] of its window (a gather over the
    windows holding each input element, as the CUDA kernel; deterministic)."""
    if all(stride[a] > dilation[a] * (kernel[a] - 1) for a in (0, 1)):
        return _disjoint_max_pool2d_backward(xp, gy, argmax, x_shape)
    return _windowed_max_pool2d_backward(xp, gy, argmax, x_shape, kernel, stride, padding, dilation)


def _disjoint_max_pool2d_backward(xp, gy, argmax, x_shape):
    """``max_pool2d_backward`` when no two windows share an input element, so no index repeats within a plane:
    every gy written straight to its argmax (every window's argmax lies inside the input)."""
    n, c, h, w = x_shape
    gx = xp.zeros(n * c * h * w, dtype=gy.dtype)
    planes = xp.arange(0, n * c * h * w, h * w, dtype=xp.int64)[:, None]
    index = (argmax.reshape(n * c, -1) + planes).reshape(-1)
    gx[index] = gy.reshape(-1) + xp.zeros((), dtype=gy.dtype)  # + 0: -0.0 becomes 0.0, as when accumulating
    return gx.reshape(x_shape)


def _windowed_max_pool2d_backward(xp, gy, argmax, x_shape, kernel, stride, padding, dilation):
    """``max_pool2d_backward`` for any geometry: per window position, the gy whose argmax it is, summed back."""
    h, w = x_shape[2:]
    oh, ow = gy.shape[2:]
    rows = (xp.arange(oh) * stride[0] - padding[0])[:, None]
    cols = (xp.arange(ow) * stride[1] - padding[1])[None, :]
    zero = xp.zeros((), dtype=gy.dtype)

    def chosen(i, j):  # gy where window position (i, j) is the argmax
        ih, iw = rows + i * dilation[0], cols + j * dilation[1]
        inside = (ih >= 0) & (ih < h) & (iw >= 0) & (iw < w)
        return xp.where((argmax == ih * w + iw) & inside, gy, zero)

    return xp.ascontiguousarray(_scatter_windows(xp, chosen, x_shape, kernel, stride, padding, dilation))


def max_pool2d_gather(xp, gx, argmax):
    """gy[n, c, oh, ow] = gx[n, c, argmax[n, c, oh, ow]]: the adjoint of ``max_pool2d_backward`` (0 where the
    index is outside the plane)."""
    n, c, h, w = gx.shape
    flat = gx.reshape(n, c, h * w)
    index = argmax.reshape(n, c, -1)
    inside = (index >= 0) & (index < h * w)
    picked = xp.take_along_axis(flat, xp.where(inside, index, 0), axis=2)
    return xp.where(inside, picked, xp.zeros((), dtype=gx.dtype)).reshape(argmax.shape)


def _avg_divisors(xp, x_shape, out, kernel, stride, padding, count_include_pad, divisor_override, dtype):
    """(OH, OW) divisors of average pooling, PyTorch's rule, and the mask of windows with no input element."""
    counts, empty = [], []
    for a in (0, 1):
        size = x_shape[2 + a]
        start = xp.arange(out[a]) * stride[a] - padding[a]
        end = xp.minimum(start + kernel[a], size + padding[a])
        inside = xp.minimum(end, size) - xp.maximum(start, 0)
        counts.append(end - start if count_include_pad else inside)
        empty.append(inside <= 0)
    empty = empty[0][:, None] | empty[1][None, :]
    divisor = xp.where(empty, 1, counts[0][:, None] * counts[1][None, :]).astype(dtype)  # empty windows give 0
    if divisor_override:
        divisor = xp.full(tuple(out), divisor_override, dtype=dtype)
    return divisor, empty


def avg_pool2d(xp, x, kernel, stride, padding, count_include_pad=True, ceil_mode=False, divisor_override=None):
    """Window means: the sum over the window divided by its size (padding counted when ``count_include_pad``, the
    window clipped to the padded input) or by ``divisor_override``; 0 for a window with no input element."""
    out = _out_shape(x.shape, kernel, stride, padding, (1, 1), ceil_mode)
    if _tiles(x.shape, out, kernel, stride, padding, (1, 1)):
        return _tiled_avg_pool2d(xp, x, out, kernel, divisor_override or kernel[0] * kernel[1])
    return _windowed_avg_pool2d(xp, x, out, kernel, stride, padding, count_include_pad, divisor_override)


def _windowed_avg_pool2d(xp, x, out, kernel, stride, padding, count_include_pad, divisor_override):
    """``avg_pool2d`` for any geometry: a sum over the padded input's strided windows."""
    win = _windows(xp, _padded(xp, x, out, kernel, stride, padding, (1, 1), 0), out, kernel, stride, (1, 1))
    divisor, empty = _avg_divisors(xp, x.shape, out, kernel, stride, padding, count_include_pad, divisor_override,
                                   x.dtype)
    return xp.where(empty, xp.zeros((), dtype=x.dtype), win.sum(axis=(4, 5)) / divisor)


def avg_pool2d_backward(xp, gy, x_shape, kernel, stride, padding, count_include_pad=True, divisor_override=None):
    """gx: the adjoint of ``avg_pool2d``, each gy[oh, ow] / divisor spread over its window's input elements."""
    if _tiles(x_shape, gy.shape[2:], kernel, stride, padding, (1, 1)):
        return _tiled_avg_pool2d_backward(xp, gy, x_shape, kernel, divisor_override or kernel[0] * kernel[1])
    return _windowed_avg_pool2d_backward(xp, gy, x_shape, kernel, stride, padding, count_include_pad, divisor_override)


def _windowed_avg_pool2d_backward(xp, gy, x_shape, kernel, stride, padding, count_include_pad, divisor_override):
    """``avg_pool2d_backward`` for any geometry: the scaled gy added back window position by window position."""
    divisor, empty = _avg_divisors(xp, x_shape, gy.shape[2:], kernel, stride, padding, count_include_pad,
                                   divisor_override, gy.dtype)
    g = xp.where(empty, xp.zeros((), dtype=gy.dtype), gy / divisor)
    return xp.ascontiguousarray(_scatter_windows(xp, lambda i, j: g, x_shape, kernel, stride, padding, (1, 1)))


def _tiled_avg_pool2d(xp, x, out, kernel, divisor):
    """``avg_pool2d`` for tiling windows: x viewed as (N, C, OH, kh, OW, kw) and the kh * kw window positions added
    in (i, j) order (PyTorch's summation order), then divided (every window lies inside the input)."""
    n, c = x.shape[:2]
    (oh, ow), (kh, kw) = out, kernel
    tiles = x[:, :, :oh * kh, :ow * kw].reshape(n, c, oh, kh, ow, kw)
    total = tiles[:, :, :, 0, :, 0].copy()
    for i in range(kh):
        for j in range(kw):
            if i or j:
                total += tiles[:, :, :, i, :, j]
    total /= total.dtype.type(divisor)
    return total


def _tiled_avg_pool2d_backward(xp, gy, x_shape, kernel, divisor):
    """``avg_pool2d_backward`` for tiling windows: gy / divisor repeated over each window, zeros in the rows and
    columns no window covers. Two ``repeat`` calls: about 5x faster in NumPy than one copy of a broadcast view,
    whose innermost run is kw elements."""
    h, w = x_shape[2:]
    (oh, ow), (kh, kw) = gy.shape[2:], kernel
    g = gy / gy.dtype.type(divisor)
    g += 0  # -0.0 becomes 0.0, as when accumulating into zeros
    tiled = xp.repeat(xp.repeat(g, kw, axis=3), kh, axis=2)
    if (oh * kh, ow * kw) == (h, w):
        return tiled
    gx = xp.zeros(x_shape, dtype=gy.dtype)
    gx[:, :, :oh * kh, :ow * kw] = tiled
    return gx
