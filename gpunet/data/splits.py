"""Seeded hold-out splits, optionally stratified by class."""
from __future__ import annotations

import math

import numpy as np

from .errors import DatasetError

__all__ = ["ordered_split_indices", "split_indices"]


def split_indices(y: np.ndarray, fraction: float, rng: np.random.Generator, stratify: bool = True):
    """Split sample indices into (kept, held out), both sorted ascending.

    ``ceil(fraction * n)`` samples are held out (as scikit-learn's ``train_test_split`` does). With
    ``stratify`` each class gives its share of them in proportion to its size (largest remainders get the
    leftover places), so class frequencies match in both parts. The choice depends only on ``y`` and ``rng``.
    """
    n = len(y)
    n_held = math.ceil(fraction * n) if fraction > 0 else 0
    if n_held == 0:
        return np.arange(n), np.arange(0)
    if n_held >= n:
        raise DatasetError(f"cannot hold out {fraction:g} of {n} samples: nothing would be left")
    if not stratify:
        held = rng.permutation(n)[:n_held]
    else:
        classes, y_index, counts = np.unique(y, return_inverse=True, return_counts=True)
        quota = n_held * counts / n
        take = np.floor(quota).astype(np.int64)
        order = np.argsort(-(quota - take), kind="stable")
        take[order[: n_held - int(take.sum())]] += 1
        held = np.concatenate([rng.permutation(np.flatnonzero(y_index == k))[: take[k]]
                               for k in range(len(classes))])
    mask = np.zeros(n, dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def ordered_split_indices(n: int, fraction: float):
    """Split ``n`` samples in time order into (kept, held out): the last ``ceil(fraction * n)`` are held out."""
    n_held = math.ceil(fraction * n) if fraction > 0 else 0
    if n_held and n_held >= n:
        raise DatasetError(f"cannot hold out {fraction:g} of {n} samples: nothing would be left")
    return np.arange(n - n_held), np.arange(n - n_held, n)
