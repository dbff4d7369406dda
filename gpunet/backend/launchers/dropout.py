"""CuPy launchers of ``kernels/dropout.cu``: the counter-based (Philox-4x32-10) dropout mask, and dropout applied
to an array without storing the mask.

The kernels reproduce ``gpunet.backend.references.dropout`` bit for bit (the keep decision is an integer
comparison), so the same (seed, offset) gives the same mask on every backend.
"""
from __future__ import annotations

import numpy

from .. import cupy_backend as _cb  # its helpers (a module reference: cupy_backend imports this mixin)
from ..references.dropout import drop_threshold

_FLOATS = {numpy.dtype(numpy.float32): "f32", numpy.dtype(numpy.float64): "f64"}


def _check(op: str, p, seed, offset, dtype) -> str:
    """The kernel suffix for ``dtype``, after checking the arguments."""
    suffix = _FLOATS.get(numpy.dtype(dtype))
    if suffix is None:
        raise TypeError(f"{op}: dtype must be float32 or float64, got {numpy.dtype(dtype)}")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{op}: the drop probability p must be in [0, 1), got {p}")
    if not 0 <= int(seed) < 2**64 or int(offset) < 0:
        raise ValueError(f"{op}: seed must be in [0, 2**64) and offset >= 0, got seed={seed}, offset={offset}")
    return suffix


class DropoutKernels:
    """``dropout_mask`` and ``dropout_apply`` on ``kernels/dropout.cu`` (mixin of ``CupyBackend``)."""

    def _dropout_launch(self, kernel, arrays, n, p, seed, offset, dtype):
        if n:
            blocks = (int(offset) + n + 3) // 4 - int(offset) // 4  # Philox blocks: one thread each
            self._launch("dropout", kernel, _cb._ceil_div(blocks, _cb.BLOCK_SIZE), min(_cb.BLOCK_SIZE, blocks),
                         (*arrays, numpy.int64(n), numpy.uint64(seed), numpy.int64(offset),
                          numpy.uint32(drop_threshold(p)), dtype.type(1.0 / (1.0 - p))))

    def dropout_mask(self, shape, p, seed, offset, dtype):
        suffix = _check("dropout_mask", p, seed, offset, dtype)
        mask = self.xp.empty(tuple(int(d) for d in shape), dtype=dtype)
        self._dropout_launch(f"dropout_mask_{suffix}", (mask,), mask.size, p, seed, offset, mask.dtype)
        return mask

    def dropout_apply(self, x, p, seed, offset):
        suffix = _check("dropout_apply", p, seed, offset, x.dtype)
        x = self.xp.ascontiguousarray(x)
        y = self.xp.empty_like(x)
        self._dropout_launch(f"dropout_apply_{suffix}", (x, y), x.size, p, seed, offset, x.dtype)
        return y
