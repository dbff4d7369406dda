"""CuPy launcher of ``kernels/dropout.cu``: the counter-based (Philox-4x32-10) dropout mask.

The kernel reproduces ``gpunet.backend.numpy_kernels.dropout`` bit for bit (the keep decision is an integer
comparison), so the same (seed, offset) gives the same mask on every backend.
"""
from __future__ import annotations

import numpy

from .. import cupy_backend as _cb  # its helpers (a module reference: cupy_backend imports this mixin)
from ..numpy_kernels.dropout import drop_threshold

_KERNELS = {numpy.dtype(numpy.float32): "dropout_mask_f32", numpy.dtype(numpy.float64): "dropout_mask_f64"}


class DropoutKernels:
    """``dropout_mask`` on ``kernels/dropout.cu`` (mixin of ``CupyBackend``)."""

    def dropout_mask(self, shape, p, seed, offset, dtype):
        dtype = numpy.dtype(dtype)
        kernel = _KERNELS.get(dtype)
        if kernel is None:
            raise TypeError(f"dropout_mask: dtype must be float32 or float64, got {dtype}")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout_mask: the drop probability p must be in [0, 1), got {p}")
        if not 0 <= int(seed) < 2**64 or int(offset) < 0:
            raise ValueError(f"dropout_mask: seed must be in [0, 2**64) and offset >= 0, got seed={seed}, "
                             f"offset={offset}")
        shape = tuple(int(d) for d in shape)
        mask = self.xp.empty(shape, dtype=dtype)
        n = mask.size
        if n:
            blocks = (int(offset) + n + 3) // 4 - int(offset) // 4  # Philox blocks: one thread each
            self._launch("dropout", kernel, _cb._ceil_div(blocks, _cb.BLOCK_SIZE), min(_cb.BLOCK_SIZE, blocks),
                         (mask, numpy.int64(n), numpy.uint64(seed), numpy.int64(offset),
                          numpy.uint32(drop_threshold(p)), dtype.type(1.0 / (1.0 - p))))
        return mask
