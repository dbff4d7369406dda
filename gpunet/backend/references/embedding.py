"""Reference of the embedding backward kernel, written against ``xp``."""
from __future__ import annotations

import numpy


def embedding_csr(xp, idx, num_embeddings):
    """``(positions, offsets)``: the flat positions sorted by (index, position), and where each row's run starts.

    Row ``r``'s positions are ``positions[offsets[r]:offsets[r + 1]]``, increasing. Sorting the unique keys
    ``index * n + position`` makes the order independent of the sort's stability. The offsets come from a binary
    search of the sorted indices, not ``bincount``: CuPy's bincount copies the indices' minimum and maximum to the
    host (two waits for the device), while argsort (Thrust, ``par_nosync``) and searchsorted wait for nothing.
    Indices outside [0, num_embeddings) fall outside every row's run.
    """
    flat = idx.reshape(-1).astype(numpy.int64, copy=False)
    n = flat.shape[0]
    if not n:
        return xp.zeros(0, dtype=numpy.int64), xp.zeros(num_embeddings + 1, dtype=numpy.int64)
    positions = xp.argsort(flat * n + xp.arange(n, dtype=numpy.int64)).astype(numpy.int64, copy=False)
    offsets = xp.searchsorted(flat[positions], xp.arange(num_embeddings + 1, dtype=numpy.int64), side="left")
    return positions, offsets.astype(numpy.int64, copy=False)


def embedding_backward(xp, gy, idx, num_embeddings, padding_idx=None):
    """Gradient of ``weight[idx]`` with respect to ``weight`` (num_embeddings, D): row r sums the rows of ``gy``
    (idx.shape + (D,)) whose index is r, in increasing position order (the kernel's order, bit for bit); row
    ``padding_idx`` is 0. One unbuffered add over flat element indices: NumPy's fast path for ``ufunc.at`` is 1-D
    (several times faster than adding whole rows; a sort with ``add.reduceat`` would not keep the order)."""
    dim = gy.shape[-1]
    grad = xp.zeros(num_embeddings * dim, dtype=gy.dtype)
    elements = idx.reshape(-1, 1).astype(numpy.int64, copy=False) * dim + xp.arange(dim, dtype=numpy.int64)
    xp.add.at(grad, elements.reshape(-1), gy.reshape(-1))
    grad = grad.reshape(num_embeddings, dim)
    if padding_idx is not None:
        grad[padding_idx] = 0
    return grad
