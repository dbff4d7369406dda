"""CuPy launcher of ``kernels/batchnorm.cu``: per-channel mean and biased variance (batch-norm statistics).

float32 input reduced over every axis but one launches the kernel (one block per channel); other cases run the
xp reference (``gpunet.backend.references.batchnorm``).
"""
from __future__ import annotations

import numpy

from .common import RUN_REFERENCE, prod, require_float, row_threads


def check_batch_norm_stats(x, axes):
    require_float("batch_norm_stats", "x", x)
    if x.ndim == 0:
        raise ValueError("batch_norm_stats: x must have at least one dimension (the channels)")


def batch_norm_stats(backend, x, axes):
    axes = tuple(sorted({int(a) % x.ndim for a in axes}))
    kept = [i for i in range(x.ndim) if i not in axes]
    if len(kept) != 1 or x.size == 0:
        return RUN_REFERENCE
    axis = kept[0]
    x = backend.xp.ascontiguousarray(x)
    outer, channels, inner = prod(x.shape[:axis]), x.shape[axis], prod(x.shape[axis + 1:])
    mean = backend.xp.empty((channels,), dtype=numpy.float32)
    var = backend.xp.empty((channels,), dtype=numpy.float32)
    if channels:
        backend.launch("batchnorm", "batch_norm_stats_f32", channels, row_threads(outer * inner),
                       (x, mean, var, numpy.int64(outer), numpy.int64(channels), numpy.int64(inner)))
    return mean, var
