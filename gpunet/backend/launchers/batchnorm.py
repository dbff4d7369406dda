"""CuPy launcher of ``kernels/batchnorm.cu``: per-channel mean and biased variance (batch-norm statistics).

float32 input reduced over every axis but one launches the kernel (one block per channel); other cases run the
xp reference (``gpunet.backend.references.batchnorm``).
"""
from __future__ import annotations

import numpy

from .. import cupy_backend as _cb  # its helpers (a module reference: cupy_backend imports this mixin)
from .softmax import _prod, _row_threads


class BatchNormKernels:
    """``batch_norm_stats`` on ``kernels/batchnorm.cu`` (mixin of ``CupyBackend``)."""

    def batch_norm_stats(self, x, axes):
        _cb._require_float("batch_norm_stats", "x", x)
        if x.ndim == 0:
            raise ValueError("batch_norm_stats: x must have at least one dimension (the channels)")
        axes = tuple(sorted({int(a) % x.ndim for a in axes}))
        kept = [i for i in range(x.ndim) if i not in axes]
        if x.dtype != numpy.float32 or len(kept) != 1 or x.size == 0:
            return _cb._references()["batch_norm_stats"](self.xp, x, axes)
        axis = kept[0]
        x = self.xp.ascontiguousarray(x)
        outer, channels, inner = _prod(x.shape[:axis]), x.shape[axis], _prod(x.shape[axis + 1:])
        mean = self.xp.empty((channels,), dtype=numpy.float32)
        var = self.xp.empty((channels,), dtype=numpy.float32)
        if channels:
            self._launch("batchnorm", "batch_norm_stats_f32", channels, _row_threads(outer * inner),
                         (x, mean, var, numpy.int64(outer), numpy.int64(channels), numpy.int64(inner)))
        return mean, var
