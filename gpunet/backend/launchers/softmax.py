"""CuPy launchers of ``kernels/softmax.cu``: softmax, log-softmax, fused softmax cross-entropy forward and backward.

float32 launches the kernels (a row kernel when the reduced axis is the last one, with the launch shape of
``row_groups``: a warp per narrow row, several rows per block; a lane kernel when it is strided, so no transpose is
needed); float64 runs the xp reference (``gpunet.backend.references.softmax``).
"""
from __future__ import annotations

import numpy

from .common import BLOCK_SIZE, RUN_REFERENCE, ceil_div, launch_per_element, prod, require_float, row_groups


def check_softmax(x, axis):
    require_float("softmax", "x", x)


def check_log_softmax(x, axis):
    require_float("log_softmax", "x", x)


def softmax(backend, x, axis):
    return _softmax(backend, "softmax", x, axis)


def log_softmax(backend, x, axis):
    return _softmax(backend, "log_softmax", x, axis)


def _softmax(backend, op: str, x, axis: int):
    if x.ndim == 0:
        return RUN_REFERENCE
    x = backend.xp.ascontiguousarray(x)
    axis = axis % x.ndim
    outer, dim, inner = prod(x.shape[:axis]), x.shape[axis], prod(x.shape[axis + 1:])
    y = backend.xp.empty_like(x)
    if y.size == 0:
        return y
    if inner == 1:  # reduced axis contiguous: a group of threads per row
        blocks, threads, group = row_groups(outer, dim)
        backend.launch("softmax", f"{op}_rows_f32", blocks, threads,
                       (x, y, numpy.int64(outer), numpy.int64(dim), numpy.int64(group)))
    else:  # reduced axis strided: one thread per (outer, inner) lane, coalesced over inner
        lanes = outer * inner
        backend.launch("softmax", f"{op}_cols_f32", ceil_div(lanes, BLOCK_SIZE), min(BLOCK_SIZE, lanes),
                       (x, y, numpy.int64(outer), numpy.int64(dim), numpy.int64(inner)))
    return y


def check_masked_softmax(x, keep=None, bias=None, causal=False):
    require_float("masked_softmax", "x", x)
    for name, mask in (("keep", keep), ("bias", bias)):
        if mask is None:
            continue
        try:
            fits = mask.ndim <= x.ndim and numpy.broadcast_shapes(mask.shape, x.shape) == tuple(x.shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"masked_softmax: {name} of shape {tuple(mask.shape)} does not broadcast to the scores' "
                             f"shape {tuple(x.shape)}")
    if keep is not None and keep.dtype != numpy.bool_:
        raise TypeError(f"masked_softmax: keep must be a bool mask (True = the key takes part), got {keep.dtype}")
    if causal and x.ndim < 2:
        raise ValueError(f"masked_softmax: a causal mask needs scores of shape (..., queries, keys), got "
                         f"{tuple(x.shape)}")


def _mask_view(xp, mask, shape, dtype) -> tuple:
    """``mask`` (broadcasting to ``shape``, ndim >= 2) as a contiguous array and its element strides over the
    kernel's (outer, heads, queries, keys) view of ``shape`` (0 along broadcast dimensions); a one-element array and
    zero strides for None. Leading dimensions that do not collapse into one stride are broadcast out first."""
    if mask is None:
        return xp.zeros((1,), dtype=dtype), (0, 0, 0, 0)
    shape = (1,) * max(0, 3 - len(shape)) + tuple(shape)
    full = (1,) * (len(shape) - mask.ndim) + tuple(mask.shape)
    mask = xp.ascontiguousarray(mask.astype(dtype, copy=False)).reshape(full)
    strides, step = [], 1
    for size in reversed(full):
        strides.append(step if size > 1 else 0)
        step *= size
    strides.reverse()
    lead = [(size, stride) for size, stride in zip(shape[:-3], strides[:-3]) if size > 1]
    outer_stride = lead[-1][1] if lead else 0
    expected = outer_stride
    for size, stride in reversed(lead):  # one stride for the flat outer index: each dimension's = the next's * size
        if stride != expected:
            mask = xp.ascontiguousarray(xp.broadcast_to(mask, shape[:-3] + full[-3:]))
            return _mask_view(xp, mask, shape, dtype)
        expected = stride * size
    return mask, (outer_stride, *strides[-3:])


def masked_softmax(backend, x, keep=None, bias=None, causal=False):
    """The attention weights in one pass over the scores (``masked_softmax_rows_f32``): the masks are read with
    broadcast strides, never expanded to the scores' shape."""
    if x.ndim < 2 or (bias is not None and bias.dtype != x.dtype):
        return RUN_REFERENCE
    xp = backend.xp
    x = xp.ascontiguousarray(x)
    y = xp.empty_like(x)
    if y.size == 0:
        return y
    *lead, queries, keys = x.shape
    heads = lead[-1] if lead else 1
    rows = prod(x.shape[:-1])
    keep_array, keep_strides = _mask_view(xp, keep, x.shape, numpy.bool_)
    bias_array, bias_strides = _mask_view(xp, bias, x.shape, x.dtype)
    blocks, threads, group = row_groups(rows, keys)
    backend.launch("softmax", "masked_softmax_rows_f32", blocks, threads,
                   (x, keep_array, bias_array, y, *map(numpy.int64, (rows, keys, heads, queries, *keep_strides,
                                                                    *bias_strides, keep is not None,
                                                                    bias is not None, bool(causal), group))))
    return y


def check_softmax_cross_entropy(logits, target_idx, ignore_index):
    require_float("softmax_cross_entropy", "logits", logits)
    if logits.ndim != 2 or target_idx.ndim != 1 or target_idx.shape[0] != logits.shape[0]:
        raise ValueError(f"softmax_cross_entropy: logits must be (rows, classes) and targets (rows,), got "
                         f"{tuple(logits.shape)} and {tuple(target_idx.shape)}")
    if target_idx.dtype.kind not in "iu":
        raise TypeError(f"softmax_cross_entropy: targets must be integer class indices, got {target_idx.dtype}")


def softmax_cross_entropy(backend, logits, target_idx, ignore_index):
    """Per-row loss and log-probabilities of logits (rows, classes) against int targets (rows,).

    A target outside [0, classes) (and not ignore_index) gives a NaN loss: a kernel cannot raise, so callers
    validate targets first (gpunet.nn's losses do)."""
    rows, classes = logits.shape
    logits = backend.xp.ascontiguousarray(logits)
    target = backend.xp.ascontiguousarray(target_idx.astype(numpy.int64, copy=False))
    if rows and not classes:
        raise ValueError("softmax_cross_entropy: logits have 0 classes; there is no class to pick")
    loss = backend.xp.empty((rows,), dtype=logits.dtype)
    log_probs = backend.xp.empty_like(logits)
    if rows:
        blocks, threads, group = row_groups(rows, classes)
        backend.launch("softmax", "softmax_xent_forward_f32", blocks, threads,
                       (logits, target, loss, log_probs, numpy.int64(rows), numpy.int64(classes),
                        numpy.int64(ignore_index), numpy.int64(group)))
    return loss, log_probs


def check_softmax_cross_entropy_backward(log_probs, target_idx, grad_loss, ignore_index):
    require_float("softmax_cross_entropy_backward", "log_probs", log_probs)


def softmax_cross_entropy_backward(backend, log_probs, target_idx, grad_loss, ignore_index):
    """``(softmax - onehot(target)) * grad_loss[row]`` (0 in ignored rows), one thread per element."""
    rows, classes = log_probs.shape
    xp = backend.xp
    log_probs = xp.ascontiguousarray(log_probs)
    target = xp.ascontiguousarray(target_idx.astype(numpy.int64, copy=False))
    grad_loss = xp.ascontiguousarray(xp.broadcast_to(xp.asarray(grad_loss, dtype=numpy.float32), (rows,)))
    grad_logits = xp.empty_like(log_probs)
    launch_per_element(backend, "softmax", "softmax_xent_backward_f32", rows * classes,
                       (log_probs, target, grad_loss, grad_logits, numpy.int64(rows), numpy.int64(classes),
                        numpy.int64(ignore_index)))
    return grad_logits
