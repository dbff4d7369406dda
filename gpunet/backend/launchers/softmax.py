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
