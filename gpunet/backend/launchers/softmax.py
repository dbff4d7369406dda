"""CuPy launchers of ``kernels/softmax.cu``: softmax, log-softmax, fused softmax cross-entropy forward and backward.

float32 launches the kernels (a row kernel when the reduced axis is the last one, a lane kernel when it is strided,
so no transpose is needed); float64 runs the xp reference (``gpunet.backend.references.softmax``).
"""
from __future__ import annotations

import numpy

from .. import cupy_backend as _cb  # its helpers (a module reference: cupy_backend imports this mixin)


def _prod(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def _row_threads(length: int) -> int:
    """Threads for one row: whole warps covering the row, at most a full block (1024)."""
    return min(1024, 32 * _cb._ceil_div(max(int(length), 1), 32))


class SoftmaxKernels:
    """The softmax family on ``kernels/softmax.cu`` (mixin of ``CupyBackend``)."""

    def softmax(self, x, axis):
        return self._softmax("softmax", x, axis)

    def log_softmax(self, x, axis):
        return self._softmax("log_softmax", x, axis)

    def _softmax(self, op: str, x, axis: int):
        _cb._require_float(op, "x", x)
        if x.dtype != numpy.float32 or x.ndim == 0:
            return _cb._references()[op](self.xp, x, axis)
        x = self.xp.ascontiguousarray(x)
        axis = axis % x.ndim
        outer, dim, inner = _prod(x.shape[:axis]), x.shape[axis], _prod(x.shape[axis + 1:])
        y = self.xp.empty_like(x)
        if y.size == 0:
            return y
        if inner == 1:  # reduced axis contiguous: one block per row
            self._launch("softmax", f"{op}_rows_f32", outer, _row_threads(dim),
                         (x, y, numpy.int64(outer), numpy.int64(dim)))
        else:  # reduced axis strided: one thread per (outer, inner) lane, coalesced over inner
            lanes = outer * inner
            self._launch("softmax", f"{op}_cols_f32", _cb._ceil_div(lanes, _cb.BLOCK_SIZE), min(_cb.BLOCK_SIZE, lanes),
                         (x, y, numpy.int64(outer), numpy.int64(dim), numpy.int64(inner)))
        return y

    def softmax_cross_entropy(self, logits, target_idx, ignore_index):
        """Per-row loss and log-probabilities of logits (rows, classes) against int targets (rows,).

        A target outside [0, classes) (and not ignore_index) gives a NaN loss: a kernel cannot raise, so callers
        validate targets first (gpunet.nn's losses do)."""
        _cb._require_float("softmax_cross_entropy", "logits", logits)
        if logits.ndim != 2 or target_idx.ndim != 1 or target_idx.shape[0] != logits.shape[0]:
            raise ValueError(f"softmax_cross_entropy: logits must be (rows, classes) and targets (rows,), got "
                             f"{tuple(logits.shape)} and {tuple(target_idx.shape)}")
        if target_idx.dtype.kind not in "iu":
            raise TypeError(f"softmax_cross_entropy: targets must be integer class indices, got {target_idx.dtype}")
        if logits.dtype != numpy.float32:
            return _cb._references()["softmax_cross_entropy"](self.xp, logits, target_idx, ignore_index)
        rows, classes = logits.shape
        logits = self.xp.ascontiguousarray(logits)
        target = self.xp.ascontiguousarray(target_idx.astype(numpy.int64, copy=False))
        if rows and not classes:
            raise ValueError("softmax_cross_entropy: logits have 0 classes; there is no class to pick")
        loss = self.xp.empty((rows,), dtype=logits.dtype)
        log_probs = self.xp.empty_like(logits)
        if rows:
            self._launch("softmax", "softmax_xent_forward_f32", rows, _row_threads(classes),
                         (logits, target, loss, log_probs, numpy.int64(rows), numpy.int64(classes),
                          numpy.int64(ignore_index)))
        return loss, log_probs

    def softmax_cross_entropy_backward(self, log_probs, target_idx, grad_loss, ignore_index):
        """``(softmax - onehot(target)) * grad_loss[row]`` (0 in ignored rows), one thread per element."""
        _cb._require_float("softmax_cross_entropy_backward", "log_probs", log_probs)
        if log_probs.dtype != numpy.float32:
            return _cb._references()["softmax_cross_entropy_backward"](self.xp, log_probs, target_idx, grad_loss,
                                                                   ignore_index)
        rows, classes = log_probs.shape
        xp = self.xp
        log_probs = xp.ascontiguousarray(log_probs)
        target = xp.ascontiguousarray(target_idx.astype(numpy.int64, copy=False))
        grad_loss = xp.ascontiguousarray(xp.broadcast_to(xp.asarray(grad_loss, dtype=numpy.float32), (rows,)))
        grad_logits = xp.empty_like(log_probs)
        total = rows * classes
        if total:
            self._launch("softmax", "softmax_xent_backward_f32", _cb._ceil_div(total, _cb.BLOCK_SIZE), min(_cb.BLOCK_SIZE, total),
                         (log_probs, target, grad_loss, grad_logits, numpy.int64(rows), numpy.int64(classes),
                          numpy.int64(ignore_index)))
        return grad_logits
