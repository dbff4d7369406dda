"""``DataLoader``: mini-batches of NumPy arrays in an order fixed by the seed and the epoch number.

The loader keeps its position (epoch, batch). ``iter(loader)`` yields the rest of the current epoch from
that position and then moves to the next epoch, so a loader restored with ``load_state_dict`` from a
checkpoint taken mid-epoch yields exactly the batches an uninterrupted run would have seen next.

Data-parallel training (``num_replicas`` ranks): ``batch_size`` stays the global batch, and rank ``rank`` gets its
contiguous share of every batch (``numpy.array_split``: sizes differ by at most one, a share may be empty). The
position is the global batch's, the same on every rank, so it resumes exactly with any number of ranks.
"""
from __future__ import annotations

import numpy as np

__all__ = ["DataLoader"]

_TRANSFORM_STREAM = 0x7A5F  # tells the transforms' random streams apart from the shuffling order's


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"DataLoader: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class DataLoader:
    """Batches of ``dataset_or_arrays``: an ``ArrayDataset`` (batches are ``(x, y)``), a tuple of
    equal-length arrays (batches are tuples) or a single array (batches are arrays).

    With ``shuffle`` the order of epoch ``e`` is a permutation drawn from ``(seed, e)`` alone. ``drop_last``
    drops a final batch smaller than ``batch_size``. ``len(loader)`` is the number of batches per epoch.
    ``transform`` (``gpunet.data.transforms``) augments each batch ``(x, y)`` (or ``x``) with a generator drawn from
    ``(seed, epoch, batch index)`` alone (``batch_generator``).
    ``num_replicas``/``rank``: yield only share ``rank`` of each batch split ``num_replicas`` ways (see above); the
    transform sees the whole batch first, so every share is augmented as one process would augment it.
    """

    def __init__(self, dataset_or_arrays, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: int = 0, transform=None, num_replicas: int = 1, rank: int = 0):
        if hasattr(dataset_or_arrays, "x") and hasattr(dataset_or_arrays, "y"):
            arrays, self._single = (dataset_or_arrays.x, dataset_or_arrays.y), False
        elif isinstance(dataset_or_arrays, (tuple, list)):
            arrays, self._single = tuple(dataset_or_arrays), False
        else:
            arrays, self._single = (dataset_or_arrays,), True
        if not arrays or not all(isinstance(a, np.ndarray) and a.ndim >= 1 for a in arrays):
            raise TypeError("DataLoader needs an ArrayDataset, a NumPy array or a tuple of NumPy arrays, got "
                            f"{type(dataset_or_arrays).__name__}")
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError(f"DataLoader: arrays differ in length along axis 0: {[len(a) for a in arrays]}")
        if transform is not None and (not callable(transform) or len(arrays) > 2):
            raise TypeError("DataLoader: transform must be a callable (x, y, generator) -> (x, y), for batches of "
                            f"(x, y) or x alone; got {type(transform).__name__} for {len(arrays)} arrays")
        self.transform = transform
        self.arrays = arrays
        self.num_samples = lengths.pop()
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = _check_int("seed", seed, 0)
        self.num_replicas = _check_int("num_replicas", num_replicas, 1)
        self.rank = _check_int("rank", rank, 0)
        if self.rank >= self.num_replicas:
            raise ValueError(f"DataLoader: rank {rank} is not below num_replicas {num_replicas}")
        self.epoch = 0
        self.batch = 0  # index of the next batch within self.epoch

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """Sample indices of ``epoch`` in the order they are batched."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, _check_int("epoch", epoch, 0)]).permutation(self.num_samples)

    def batch_generator(self, epoch: int, batch: int) -> np.random.Generator:
        """The random stream ``transform`` gets for batch ``batch`` of ``epoch``: from (seed, epoch, batch) alone."""
        return np.random.default_rng([self.seed, epoch, batch, _TRANSFORM_STREAM])

    def set_epoch(self, epoch: int, batch: int = 0) -> None:
        """Move to batch ``batch`` of epoch ``epoch``; the next iteration starts there."""
        self.epoch = _check_int("epoch", epoch, 0)
        self.batch = _check_int("batch", batch, 0)
        if self.batch > len(self):
            raise ValueError(f"DataLoader: batch {batch} is past the end of an epoch of {len(self)} batches")

    def __iter__(self):
        if self.batch > 0 and self.batch >= len(self):  # the current epoch was used up: start the next one
            self.epoch, self.batch = self.epoch + 1, 0
        order = self.order(self.epoch)
        while self.batch < len(self):
            index = order[self.batch * self.batch_size:(self.batch + 1) * self.batch_size]
            self.batch += 1  # advanced before yielding: a checkpoint taken now resumes after this batch
            if self.transform is None and self.num_replicas > 1:
                index = np.array_split(index, self.num_replicas)[self.rank]
            items = tuple(a[index] for a in self.arrays)
            if self.transform is not None:
                x, y = self.transform(items[0], None if self._single else items[1],
                                      self.batch_generator(self.epoch, self.batch - 1))
                items = (x,) if self._single else (x, y)
                if self.num_replicas > 1:
                    share = np.array_split(np.arange(len(index)), self.num_replicas)[self.rank]
                    items = tuple(a[share] for a in items)
            yield items[0] if self._single else items
        self.epoch, self.batch = self.epoch + 1, 0

    def state_dict(self) -> dict:
        """The position and what fixes the order, as plain numbers (JSON-serialisable)."""
        return {"epoch": self.epoch, "batch": self.batch, "seed": self.seed, "batch_size": self.batch_size,
                "shuffle": self.shuffle, "drop_last": self.drop_last, "num_samples": self.num_samples}

    def load_state_dict(self, state: dict) -> None:
        """Restore the position; the batch order settings must match, or resuming would not be exact."""
        for key in ("seed", "batch_size", "shuffle", "drop_last", "num_samples"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"DataLoader: the saved state has {key}={state[key]!r} but this loader has "
                                 f"{key}={getattr(self, key)!r}; resuming would not reproduce the batch order")
        self.set_epoch(state["epoch"], state["batch"])

    def __repr__(self) -> str:
        return (f"DataLoader(samples={self.num_samples}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
                f"drop_last={self.drop_last}, seed={self.seed}, "
                + (f"rank={self.rank} of {self.num_replicas}, " if self.num_replicas > 1 else "") + f"epoch={self.epoch}, batch={self.batch})")
