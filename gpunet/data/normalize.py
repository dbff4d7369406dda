"""Feature normalisation fitted on the training split: ``x -> (x - shift) / scale`` per feature."""
from __future__ import annotations

import numpy as np

from .errors import DatasetError

__all__ = ["NORMALIZATIONS", "Normalizer"]

NORMALIZATIONS = ("none", "standard", "minmax", "scale")


class Normalizer:
    """``(x - shift) / scale`` with float32 ``shift`` and ``scale`` broadcast over the sample axis.

    Kinds: ``none``; ``standard`` (per-feature mean and standard deviation); ``minmax`` (per-feature
    minimum and range, to [0, 1]); ``scale`` (the dataset's known value range to [0, 1], e.g. 0..255 pixels).
    A feature that is constant in the training data gets scale 1, so it maps to 0 instead of dividing by 0.
    """

    def __init__(self, kind: str, shift, scale):
        self.kind = kind
        self.shift = np.asarray(shift, dtype=np.float32)
        self.scale = np.asarray(scale, dtype=np.float32)

    @classmethod
    def fit(cls, kind: str, x_train: np.ndarray, value_range=None, dataset: str = "dataset") -> "Normalizer":
        if kind == "none":
            return cls(kind, 0.0, 1.0)
        if kind == "scale":
            if value_range is None:
                raise DatasetError(f"dataset {dataset!r} has no known value range for normalize='scale'; "
                                   "use 'minmax' or 'standard'")
            lo, hi = value_range
            return cls(kind, lo, hi - lo)
        x = x_train.astype(np.float64)
        if kind == "standard":
            shift, scale = x.mean(axis=0), x.std(axis=0)
        elif kind == "minmax":
            shift = x.min(axis=0)
            scale = x.max(axis=0) - shift
        else:
            raise DatasetError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {kind!r}")
        return cls(kind, shift, np.where(scale > 0, scale, 1.0))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Normalise ``x`` (samples along axis 0) into a new float32 array; ``none`` returns ``x`` itself."""
        if self.kind == "none":
            return x
        return ((x - self.shift) / self.scale).astype(np.float32)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "shift": self.shift, "scale": self.scale}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Normalizer":
        return cls(state["kind"], state["shift"], state["scale"])

    def __repr__(self) -> str:
        return f"Normalizer({self.kind!r})"
