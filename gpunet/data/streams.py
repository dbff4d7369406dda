"""``StreamLoader``: stateful batching for truncated backpropagation through time.

The samples of a split are consecutive chunks of one long sequence (e.g. the ``shakespeare`` windows: chunk ``i``
continues chunk ``i - 1``). The loader cuts them into ``batch_size`` parallel streams of ``len(dataset) //
batch_size`` chunks each (the remainder is dropped), and batch ``k`` holds chunk ``k`` of every stream, in stream
order: row ``b`` of batch ``k + 1`` continues row ``b`` of batch ``k``, so a model may carry its hidden state from
one batch to the next. The order is the same every epoch (never shuffled); the position (epoch, batch) is the
``DataLoader``'s, so a loader restored from a mid-epoch checkpoint yields exactly the batches that were next.
Data parallel: each rank gets a contiguous share of the streams, the same share in every batch.
"""
from __future__ import annotations

import numpy as np

from .loader import DataLoader

__all__ = ["StreamLoader", "stream_order"]


def stream_order(num_samples: int, batch_size: int) -> np.ndarray:
    """Sample indices batched as ``batch_size`` streams of consecutive samples: stream ``b`` is samples
    ``b * K .. (b + 1) * K - 1`` (K = num_samples // batch_size) and batch ``k`` is ``[k, K + k, 2K + k, ...]``."""
    per_stream = num_samples // batch_size
    return np.arange(per_stream * batch_size).reshape(batch_size, per_stream).T.ravel()


class StreamLoader(DataLoader):
    """A ``DataLoader`` whose batches are ``batch_size`` parallel streams of consecutive samples (module docstring).
    Needs at least ``batch_size`` samples; ``len(loader)`` is ``len(dataset) // batch_size``."""

    def __init__(self, dataset_or_arrays, batch_size: int = 1, seed: int = 0, transform=None, num_replicas: int = 1,
                 rank: int = 0):
        super().__init__(dataset_or_arrays, batch_size, shuffle=False, drop_last=True, seed=seed,
                         transform=transform, num_replicas=num_replicas, rank=rank)
        if self.num_samples < self.batch_size:
            raise ValueError(f"StreamLoader: {self.num_samples} samples cannot make {self.batch_size} streams "
                             f"(batch_size); use a batch_size of at most {self.num_samples}")

    def order(self, epoch: int) -> np.ndarray:
        return stream_order(self.num_samples, self.batch_size)

    def __repr__(self) -> str:
        return "Stream" + super().__repr__()
