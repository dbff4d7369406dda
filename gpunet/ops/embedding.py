"""Embedding lookup ``weight[indices]`` and its gradient (the backend's atomic-free ``embedding_backward``).

Indices are checked against the table on the host: a host array or a CPU tensor raises IndexError for one out of
range. Checking a CUDA tensor's indices would wait for the device (two copies, its minimum and maximum), so there
the lookup reads row 0 for them instead and their output rows are NaN (the loss is NaN, and the Trainer stops);
the backward pass leaves them out.
"""
from __future__ import annotations

import numpy

from ..autograd.function import DeviceMismatchError, Function
from ..autograd.tensor import Tensor


class EmbeddingLookup(Function):
    """``weight[idx]`` (idx an integer array); with ``mask_padding`` the rows looked up at ``padding_idx`` are 0
    (that is the adjoint of EmbeddingGrad, which gives the padding row no gradient). ``unchecked``: the indices were
    not checked (a CUDA tensor's): out-of-range ones read row 0 and give NaN rows."""

    def __init__(self, idx, padding_idx, mask_padding=False, unchecked=False):
        self.idx, self.padding_idx, self.mask_padding, self.unchecked = idx, padding_idx, mask_padding, unchecked

    def forward(self, backend, weight):
        xp, idx = backend.xp, self.idx
        if self.unchecked:
            outside = (idx < 0) | (idx >= weight.shape[0])
            y = xp.where(outside[..., None], xp.nan, xp.take(weight, xp.where(outside, 0, idx), axis=0))
        else:
            y = xp.take(weight, idx, axis=0)
        if self.mask_padding and self.padding_idx is not None:
            y *= (idx != self.padding_idx)[..., None].astype(y.dtype)
        return y

    def backward(self, gy):
        return EmbeddingGrad(self.idx, self.inputs[0].shape[0], self.padding_idx, self.unchecked).apply(gy)


class EmbeddingGrad(Function):
    """The weight gradient of a lookup: row r sums the ``gy`` rows whose index is r (0 for ``padding_idx``)."""

    def __init__(self, idx, num_embeddings, padding_idx, unchecked=False):
        self.idx, self.num_embeddings, self.padding_idx, self.unchecked = idx, num_embeddings, padding_idx, unchecked

    def forward(self, backend, gy):
        return backend.embedding_backward(gy, self.idx, self.num_embeddings, self.padding_idx)

    def backward(self, g_weight):
        return EmbeddingLookup(self.idx, self.padding_idx, mask_padding=True, unchecked=self.unchecked).apply(g_weight)


def _indices(input, weight):
    """``(indices, unchecked)``: the backend array of integer indices in ``input`` (a tensor, or array-like data
    moved to the weight's device) and whether they went unchecked (a CUDA tensor's); host ones are checked against
    [0, num_embeddings)."""
    num_embeddings = weight.shape[0]
    on_host = not isinstance(input, Tensor) or input.device.kind == "cpu"
    data = input.data if isinstance(input, Tensor) else numpy.asarray(input)
    dtype = getattr(data, "dtype", None)
    if dtype is None or numpy.dtype(dtype).kind not in "iu":
        raise TypeError(f"embedding: the indices must be an integer tensor (int64 or int32), got "
                        f"{dtype if dtype is not None else type(input).__name__}; convert with .long()")
    if on_host and data.size:
        low, high = int(data.min()), int(data.max())
        if low < 0 or high >= num_embeddings:
            bad = low if low < 0 else high
            raise IndexError(f"embedding: index {bad} is out of range for a table of {num_embeddings} rows "
                             f"(indices must be in [0, {num_embeddings}))")
    if not isinstance(input, Tensor):
        data = weight.backend.asarray(data)
    return data, not on_host


def embedding(input, weight, padding_idx=None):
    """``weight[input]``: rows of the (num_embeddings, embedding_dim) table; the ``padding_idx`` row gets no
    gradient. ``input`` is an integer tensor of any shape; the result has shape input.shape + (embedding_dim,)."""
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be a 2-D (num_embeddings, embedding_dim) table, got shape "
                         f"{tuple(weight.shape)}")
    num_embeddings = weight.shape[0]
    if padding_idx is not None:
        if not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"embedding: padding_idx must be within num_embeddings ({num_embeddings}), got "
                             f"{padding_idx}")
        padding_idx %= num_embeddings
    if isinstance(input, Tensor) and input.backend is not weight.backend:
        raise DeviceMismatchError(f"embedding: the indices are on {input.backend.device} and the weight on "
                           f"{weight.backend.device}; move them to one device with .to(device)")
    idx, unchecked = _indices(input, weight)
    return EmbeddingLookup(idx, padding_idx, unchecked=unchecked).apply(weight)
