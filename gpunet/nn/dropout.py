"""Dropout and Dropout2d: inverted dropout of elements or of whole channels, active only in training mode."""
from __future__ import annotations

from ..kinds import Arguments, Bool, checked
from . import functional as F
from .module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` in training and scale the others by 1/(1-p); identity in eval."""

    arguments = Arguments(p=F.DROPOUT_P, inplace=Bool())

    @checked
    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = float(p)
        self.inplace = inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Dropout):
    """Zero each whole channel of (N, C, H, W) with probability ``p`` in training and scale the others by 1/(1-p)
    (``F.dropout2d``); identity in eval."""

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training)
