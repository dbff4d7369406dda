"""Reference of the softmax family (softmax, log-softmax, the attention's masked softmax, fused softmax
cross-entropy), written against ``xp``."""
from __future__ import annotations

import math


def log_softmax(xp, x, axis):
    if x.size == 0:
        return xp.empty_like(x)  # nothing to normalise (a max over an empty axis has no value)
    shifted = x - x.max(axis=axis, keepdims=True)
    log_sum = xp.exp(shifted).sum(axis=axis, keepdims=True)
    shifted -= xp.log(log_sum, out=log_sum)
    return shifted


def softmax(xp, x, axis):
    if x.size == 0:
        return xp.empty_like(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def masked_softmax(xp, x, keep=None, bias=None, causal=False):
    """The attention weights: softmax over the last axis of ``x + bias`` where ``keep`` holds and, if ``causal``, the
    key (last axis) is not after the query (axis -2; top-left aligned, PyTorch's ``ones(L, S).tril()``). Masked
    positions are 0, and a row with no finite value left is all 0 (PyTorch's ``scaled_dot_product_attention``; a
    plain softmax would give NaN). ``keep`` (bool) and ``bias`` (x's dtype) broadcast to x; either may be None."""
    if x.size == 0:
        return xp.zeros_like(x)
    if bias is not None:
        x = (x + bias).astype(x.dtype, copy=False)
    if causal:
        tri = xp.tri(x.shape[-2], x.shape[-1], dtype=bool)
        keep = tri if keep is None else keep & tri
    if keep is not None:
        x = xp.where(keep, x, -math.inf).astype(x.dtype, copy=False)
    empty = x.max(axis=-1, keepdims=True) == -math.inf  # (..., 1): small next to the scores
    if not empty.any():
        return softmax(xp, x, -1)
    x = xp.where(empty, 0, x).astype(x.dtype, copy=False)  # softmax of all -inf would be NaN (and a warning)
    return xp.where(empty, 0, softmax(xp, x, -1)).astype(x.dtype, copy=False)


def softmax_cross_entropy(xp, logits, target_idx, ignore_index):
    """Per-row -log softmax(logits)[target] (0 where target == ignore_index), and the log-probabilities."""
    log_probs = log_softmax(xp, logits, 1)
    keep = target_idx != ignore_index
    picked = log_probs[xp.arange(logits.shape[0]), xp.where(keep, target_idx, 0)]
    return xp.where(keep, -picked, 0).astype(logits.dtype, copy=False), log_probs


def softmax_cross_entropy_backward(xp, log_probs, target_idx, grad_loss, ignore_index):
    """Gradient of the per-row losses with respect to the logits: ``(softmax - onehot(target)) * grad_loss[row]``,
    0 in rows whose target is ``ignore_index``; ``log_probs`` is the forward's second output."""
    keep = target_idx != ignore_index
    g = xp.exp(log_probs)
    g[xp.arange(log_probs.shape[0]), xp.where(keep, target_idx, 0)] -= 1
    g *= xp.where(keep, grad_loss, 0).astype(g.dtype, copy=False)[:, None]
    return g
