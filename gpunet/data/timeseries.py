"""Time series as samples: ``sliding_windows``, and the datasets ``sunspots`` (statsmodels' yearly sunspot numbers)
and ``planewave`` (seed 000's damped travelling waves, its eq. 22, generated)."""
from __future__ import annotations

import csv
import math
import os

import numpy as np

from .errors import DatasetError
from .registry import RawData, register_dataset
from .synthetic import _check_count
from .text import package_file

__all__ = ["PLANEWAVE_DT", "plane_waves", "sliding_windows", "sunspot_numbers"]

PLANEWAVE_DT = 0.005  # seconds between frames (seed 000)


def sliding_windows(series, window: int, horizon: int = 1, step: int = 1):
    """Samples of a series (T,) or (T, features) in time order: x[i] = series[s : s + window] and y[i] the value
    ``horizon`` steps after the window's last one, series[s + window + horizon - 1], for s = 0, step, 2 step, ...
    Returns x (n, window, features) and y (n, features)."""
    series = np.asarray(series)
    if series.ndim not in (1, 2):
        raise ValueError(f"sliding_windows: series must be (T,) or (T, features), got shape {series.shape}")
    for name, value in (("window", window), ("horizon", horizon), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"sliding_windows: {name} must be an integer >= 1, got {value!r}")
    series = series.reshape(len(series), -1)
    starts = np.arange(0, len(series) - window - horizon + 1, step)
    if not len(starts):
        raise ValueError(f"sliding_windows: a series of {len(series)} steps has no window of {window} with a target "
                         f"{horizon} step(s) after it")
    return series[starts[:, None] + np.arange(window)], series[starts + window + horizon - 1]


STATSMODELS_INSTALL = "pip install statsmodels  (or: pip install \"gpunet[datasets]\")"


def sunspot_numbers(path: str | None = None):
    """(years, yearly sunspot numbers) 1700-2008 as float64 arrays, from statsmodels' ``sunspots.csv`` (read
    directly, without importing statsmodels; ``path``: that file)."""
    path = os.fspath(path) if path is not None else package_file(
        "statsmodels", "datasets/sunspots/sunspots.csv", "sunspots", STATSMODELS_INSTALL)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return (np.array([float(r["YEAR"]) for r in rows]), np.array([float(r["SUNACTIVITY"]) for r in rows]))
    except FileNotFoundError:
        raise DatasetError(f"dataset 'sunspots': file not found: {path}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"dataset 'sunspots': {path} must be a CSV of numbers with columns YEAR and SUNACTIVITY "
                           f"({type(exc).__name__}: {exc})") from None


@register_dataset("sunspots")
def sunspots(window: int = 12, horizon: int = 1, scale: float = 1.0, path: str | None = None) -> RawData:
    """Forecast the yearly sunspot number (statsmodels, 1700-2008, 309 years): x the ``window`` years before (n,
    window, 1), y the number ``horizon`` years after the window's last (n, 1); values divided by ``scale``. Samples
    stay in time order: validation and test are the last years."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise DatasetError(f"dataset 'sunspots': scale must be a number > 0, got {scale!r}")
    _, numbers = sunspot_numbers(path)
    try:
        x, y = sliding_windows(numbers / scale, window, horizon)
    except ValueError as exc:
        raise DatasetError(f"dataset 'sunspots': {exc}") from None
    return RawData(x, y, targets="values", ordered=True, persistence=last_step)


def plane_waves(sequences: int, frames: int, points: int, rng: np.random.Generator, dt: float = PLANEWAVE_DT,
                dims: int = 1):
    """``sequences`` waves of seed 000's eq. 22, ``frames`` time steps each, on ``points`` positions x in [0, 1)
    (``dims=1``) or on a ``points`` x ``points`` grid of (x, y) in [0, 1)^2 (``dims=2``, rows y, columns x):

        c(x, y, t) = 1/2 sin(k_x x + k_y y + omega t + theta0) exp(-beta t) + 1/2,    t = 0, dt, 2 dt, ...

    drawn per sequence: wavelength 2 pi/|k| in [0.3, 0.6], the direction of k at random (in 1-D its sign; in 2-D
    an angle in [0, 2 pi)), period 2 pi/omega in [0.03, 0.06], 2 pi/beta in [1.5, 6], theta0 in [0, 2 pi].
    float32 (sequences, frames, points) or (sequences, frames, points, points), values in [0, 1]."""
    if dims not in (1, 2):
        raise ValueError(f"plane_waves: dims must be 1 or 2, got {dims!r}")
    shape = (sequences, 1) + (1,) * dims

    def uniform(low, high):
        return rng.uniform(low, high, size=shape)
    wavenumber = 2 * math.pi / uniform(0.3, 0.6)
    x = np.arange(points) / points
    if dims == 1:
        space = wavenumber * rng.choice([-1.0, 1.0], size=shape) * x
    else:
        angle = uniform(0.0, 2 * math.pi)
        space = wavenumber * (np.cos(angle) * x + np.sin(angle) * x[:, None])
    omega = 2 * math.pi / uniform(0.03, 0.06)
    beta = 2 * math.pi / uniform(1.5, 6.0)
    theta0 = uniform(0.0, 2 * math.pi)
    t = (np.arange(frames) * dt).reshape((frames,) + (1,) * dims)
    return (0.5 * np.sin(space + omega * t + theta0) * np.exp(-beta * t) + 0.5).astype(np.float32)


def last_step(x):
    """The persistence forecast of windows x (n, steps, ...): each window's last step."""
    return x[:, -1]


@register_dataset("planewave")
def planewave(sequences: int = 512, frames: int = 40, points: int = 32, dims: int = 1, context: int | None = None,
              seed: int = 0) -> RawData:
    """Next-frame prediction on seed 000's plane waves (``plane_waves``; ``dims=2``: images (1, points, points),
    a channel axis first, for convolutional models). ``context`` None: x the frames 0..T-2 of a sequence, y the
    frames 1..T-1, so a model reading frames 0..t predicts frame t+1 at every t. ``context`` k: x the k frames
    before a sequence's last (k, ...), y its last frame; ``frames`` k + 1 starts the window at t = 0."""
    sequences = _check_count("planewave", "sequences", sequences, 1)
    frames = _check_count("planewave", "frames", frames, 2)
    points = _check_count("planewave", "points", points, 1)
    if dims not in (1, 2):
        raise DatasetError(f"dataset 'planewave': dims must be 1 (points along a line) or 2 (points x points images), "
                           f"got {dims!r}")
    if context is not None:
        context = _check_count("planewave", "context", context, 1)
        if context >= frames:
            raise DatasetError(f"dataset 'planewave': context ({context}) must be below frames ({frames}): the "
                               f"frame after the context is the target; raise frames to at least {context + 1}")
    waves = plane_waves(sequences, frames, points, np.random.default_rng(seed), dims=dims)
    if dims == 2:
        waves = waves[:, :, None]  # (N, T, 1, points, points)
    if context is None:
        return RawData(waves[:, :-1], waves[:, 1:], targets="values", value_range=(0.0, 1.0),
                       persistence=lambda x: x)
    return RawData(waves[:, -1 - context:-1], waves[:, -1], targets="values", value_range=(0.0, 1.0),
                   persistence=last_step)
