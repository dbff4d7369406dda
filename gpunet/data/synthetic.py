"""Small seeded synthetic sets: XOR, logic gates' truth tables and interleaved spirals (classification), collocation points (ODE tasks)."""
from __future__ import annotations

import numpy as np

from .errors import DatasetError
from .registry import RawData, register_dataset

__all__ = ["collocation", "logic", "spirals", "xor"]


def _check_count(dataset: str, option: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise DatasetError(f"dataset {dataset!r}: {option} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_noise(dataset: str, noise) -> float:
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not noise >= 0:
        raise DatasetError(f"dataset {dataset!r}: noise must be a number >= 0, got {noise!r}")
    return float(noise)


@register_dataset("xor")
def xor(n_samples: int = 400, noise: float = 0.1, seed: int = 0) -> RawData:
    """The XOR problem, which no single perceptron solves: points around the corners (0,0), (0,1), (1,0)
    and (1,1), labelled x0 XOR x1. Sample ``i`` belongs to corner ``i % 4`` and is moved by Gaussian noise of std ``noise``, so
    ``n_samples=4, noise=0`` is exactly the truth table.
    """
    n_samples = _check_count("xor", "n_samples", n_samples, 1)
    noise = _check_noise("xor", noise)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)[np.arange(n_samples) % 4]
    x = corners + noise * np.random.default_rng(seed).standard_normal((n_samples, 2))
    y = (corners[:, 0] != corners[:, 1]).astype(np.int64)
    return RawData(x, y, num_classes=2)


GATES = {"and": np.logical_and, "or": np.logical_or, "xor": np.logical_xor,
         "nand": lambda a, b: ~np.logical_and(a, b), "nor": lambda a, b: ~np.logical_or(a, b)}


@register_dataset("logic")
def logic(gate: str = "and", bipolar: bool = False, repeat: int = 1, seed: int = 0) -> RawData:
    """The truth table of a two-input logic gate (and, or, xor, nand, nor), the perceptron's classic data: inputs
    (0,0), (0,1), (1,0), (1,1) (bipolar: -1 for 0), labelled 1 where the gate gives true, in that order, the
    table ``repeat`` times over. ``seed`` is unused (the table is fixed)."""
    if gate not in GATES:
        raise DatasetError(f"dataset 'logic': gate must be one of {', '.join(GATES)}, got {gate!r}")
    if not isinstance(bipolar, bool):
        raise DatasetError(f"dataset 'logic': bipolar must be true or false, got {bipolar!r}")
    repeat = _check_count("logic", "repeat", repeat, 1)
    table = np.tile(np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=bool), (repeat, 1))
    y = GATES[gate](table[:, 0], table[:, 1]).astype(np.int64)
    x = table * 2.0 - 1.0 if bipolar else table.astype(np.float64)
    return RawData(x, y, num_classes=2)


@register_dataset("spirals")
def spirals(n_samples: int = 400, n_classes: int = 2, noise: float = 0.05, turns: float = 1.0,
            seed: int = 0) -> RawData:
    """Interleaved spirals, a classic test of nonlinear decision boundaries: ``n_classes`` arms, one per
    class, each turned by 2*pi/n_classes from the last. Along an arm the radius grows from 0 to 1 while the angle sweeps ``turns`` full circles; Gaussian noise
    of std ``noise`` is added to both coordinates. Sample counts per class differ by at most one.
    """
    n_samples = _check_count("spirals", "n_samples", n_samples, 1)
    n_classes = _check_count("spirals", "n_classes", n_classes, 2)
    noise = _check_noise("spirals", noise)
    if isinstance(turns, bool) or not isinstance(turns, (int, float)) or not turns > 0:
        raise DatasetError(f"dataset 'spirals': turns must be a number > 0, got {turns!r}")
    y = np.arange(n_samples) % n_classes
    position = np.empty(n_samples)
    for k in range(n_classes):
        members = y == k
        position[members] = np.linspace(0.0, 1.0, int(members.sum()))
    angle = 2 * np.pi * (turns * position + y / n_classes)
    x = position[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    x += noise * np.random.default_rng(seed).standard_normal(x.shape)
    return RawData(x, y.astype(np.int64), num_classes=n_classes)



@register_dataset("collocation")
def collocation(n_points: int = 1000, low: float = 0.0, high: float = 1.0, spacing: str = "random",
                repeat: int = 1, seed: int = 0) -> RawData:
    """Points x in [low, high] (shape (n, 1)) where an ``ode`` task evaluates its equation's residual; the targets are
    zeros (the residual's value at a solution). ``spacing``: "random" (uniform, seeded) or "even" (``n_points``
    evenly spaced, ends included, as in seed 001); the list is given ``repeat`` times, so that one epoch can hold
    several passes over the same points.
    """
    n_points = _check_count("collocation", "n_points", n_points, 2)
    repeat = _check_count("collocation", "repeat", repeat, 1)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
        raise DatasetError(f"dataset 'collocation': low and high must be numbers with low < high, got {low!r}, {high!r}")
    if spacing == "random":
        x = np.random.default_rng(seed).uniform(low, high, n_points)
    elif spacing == "even":
        x = np.linspace(low, high, n_points)
    else:
        raise DatasetError(f"dataset 'collocation': spacing must be 'random' or 'even', got {spacing!r}")
    x = np.tile(x, repeat)
    return RawData(x[:, None], np.zeros((len(x), 1)), targets="values")
