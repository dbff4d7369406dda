"""Upsample: a layer around ``F.interpolate`` (nearest and linear resampling), with PyTorch's arguments."""
from __future__ import annotations

from ..ops.interpolate import _interpolate
from .module import Module


class Upsample(Module):
    """Resample (N, C, L) or (N, C, H, W) to ``size`` or by ``scale_factor``; ``mode`` 'nearest' (default),
    'nearest-exact', 'linear' (3-D) or 'bilinear' (4-D); see ``gpunet.nn.functional.interpolate``. No parameters."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, input):
        return _interpolate(input, self.size, self.scale_factor, self.mode, self.align_corners,
                            self.recompute_scale_factor, False, f"Upsample({self.extra_repr()})")

    def extra_repr(self) -> str:
        what = f"size={self.size}" if self.scale_factor is None else f"scale_factor={self.scale_factor}"
        return f"{what}, mode={self.mode!r}"
