"""Inverted dropout with a counter-based mask that is never stored: the backward regenerates it from (seed, offset)."""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .arithmetic import mul


class DropoutApply(Function):
    """``x * mask(seed, offset)``, mask entries 0 or 1/(1-p) from ``backend.dropout_apply`` (Philox-4x32-10).

    Linear and diagonal in x, so its backward is the same operation on the gradient (same seed and offset), and
    derivatives of any order follow.
    """

    def __init__(self, p, seed, offset=0):
        self.p, self.seed, self.offset = p, seed, offset

    def forward(self, backend, x):
        return backend.dropout_apply(x, self.p, self.seed, self.offset)

    def backward(self, gy):
        return DropoutApply(self.p, self.seed, self.offset).apply(gy)


def dropout(x, p, seed, offset=0):
    """Inverted dropout of x with the mask of (seed, offset): ``x * backend.dropout_mask(x.shape, p, seed, offset)``."""
    return DropoutApply(p, seed, offset).apply(x)


def channel_dropout(x, p, seed, offset=0):
    """Dropout of whole channels of x (N, C, ...): ``x * mask`` with one mask entry per (sample, channel), the
    entries of ``backend.dropout_mask((N, C, 1, ...), p, seed, offset)``, broadcast over the other axes."""
    mask = x.backend.dropout_mask(tuple(x.shape[:2]) + (1,) * (x.ndim - 2), p, seed, offset, x.dtype)
    return mul(x, Tensor(mask, x.backend))
