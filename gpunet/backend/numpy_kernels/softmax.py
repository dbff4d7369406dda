"""NumPy reference of the softmax family: softmax, log-softmax and fused softmax cross-entropy."""
from __future__ import annotations

import numpy


def log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - numpy.log(numpy.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x, axis):
    e = numpy.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def softmax_cross_entropy(logits, target_idx, ignore_index):
    """Per-row -log softmax(logits)[target] (0 where target == ignore_index), and the log-probabilities."""
    log_probs = log_softmax(logits, 1)
    keep = target_idx != ignore_index
    safe = numpy.where(keep, target_idx, 0)
    picked = numpy.take_along_axis(log_probs, safe[:, None], axis=1)[:, 0]
    return numpy.where(keep, -picked, 0).astype(logits.dtype, copy=False), log_probs
