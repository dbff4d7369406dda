"""Reference of the batch-norm statistics kernel, written against ``xp``."""
from __future__ import annotations

import numpy


def batch_norm_stats(xp, x, axes):
    """Mean and biased variance of ``x`` over ``axes`` (two passes: the variance of the centred values)."""
    axes = tuple(int(a) % x.ndim for a in axes)
    kept = tuple(n for i, n in enumerate(x.shape) if i not in axes)
    if x.size == 0:
        return xp.full(kept, numpy.nan, dtype=x.dtype), xp.full(kept, numpy.nan, dtype=x.dtype)
    mean = x.mean(axis=axes, keepdims=True)
    d = x - mean
    d *= d
    return mean.reshape(kept), d.mean(axis=axes)
