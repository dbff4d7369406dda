"""Flatten: merge a range of dimensions (by default all but the batch dimension)."""
from __future__ import annotations

from ..kinds import Arguments, Int, checked
from ..ops.shape import flatten
from .module import Module


class Flatten(Module):
    """Merge dimensions ``start_dim`` to ``end_dim``: (N, C, H, W) -> (N, C*H*W) by default."""

    arguments = Arguments(start_dim=Int(), end_dim=Int())

    @checked
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
