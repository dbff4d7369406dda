"""Reference of the softmax family (softmax, log-softmax, fused softmax cross-entropy), written against ``xp``."""
from __future__ import annotations


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
