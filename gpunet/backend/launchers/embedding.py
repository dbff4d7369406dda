"""CuPy launcher of ``kernels/embedding.cu``: the embedding gradient as a gather over a CSR of positions (no atomics).

The CSR (positions sorted by (index, position), row offsets) is built with CuPy's argsort and searchsorted,
neither of which waits for the device (``gpunet.backend.references.embedding.embedding_csr``); the kernel then sums,
for each gradient element, the ``gy`` rows of its positions in increasing order: deterministic, and bit for bit the
reference's ``add.at``.
"""
from __future__ import annotations

import numpy

from ..references.embedding import embedding_csr
from .common import launch_per_element, require_float

_KERNELS = {numpy.dtype(numpy.float32): "embedding_backward_f32", numpy.dtype(numpy.float64): "embedding_backward_f64"}


def check_embedding_backward(gy, idx, num_embeddings, padding_idx=None):
    require_float("embedding_backward", "gy", gy)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding_backward: indices must be integers, got {idx.dtype}")
    if gy.ndim != idx.ndim + 1 or tuple(gy.shape[:-1]) != tuple(idx.shape):
        raise ValueError(f"embedding_backward: gy must have shape indices.shape + (embedding_dim,), got "
                         f"{tuple(gy.shape)} for indices of shape {tuple(idx.shape)}")


def embedding_backward(backend, gy, idx, num_embeddings, padding_idx=None):
    xp = backend.xp
    num_embeddings, dim = int(num_embeddings), int(gy.shape[-1])
    grad = xp.empty((num_embeddings, dim), dtype=gy.dtype)
    total = num_embeddings * dim
    if total:
        positions, offsets = embedding_csr(xp, xp.ascontiguousarray(idx), num_embeddings)
        launch_per_element(backend, "embedding", _KERNELS[numpy.dtype(gy.dtype)], total,
                           (xp.ascontiguousarray(gy), positions, offsets, grad, numpy.int64(num_embeddings),
                            numpy.int64(dim), numpy.int64(-1 if padding_idx is None else padding_idx)))
    return grad
