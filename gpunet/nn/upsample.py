"""Upsample: a layer around ``F.interpolate`` (nearest and linear resampling), with PyTorch's arguments."""
from __future__ import annotations

from ..kinds import AnyOf, ArgumentError, Arguments, Bool, Choice, Float, Int, ListOf, Optional, checked
from ..ops.interpolate import _MODES, _interpolate
from .module import Module


def _align_corners_linear(args):
    if args["align_corners"] is not None and args["mode"] not in ("linear", "bilinear"):
        raise ArgumentError("align_corners", f"only applies to the linear and bilinear modes, not {args['mode']!r}",
                            args["align_corners"], "null")


class Upsample(Module):
    """Resample (N, C, L) or (N, C, H, W) to ``size`` or by ``scale_factor``; ``mode`` 'nearest' (default),
    'nearest-exact', 'linear' (3-D) or 'bilinear' (4-D); see ``gpunet.nn.functional.interpolate``. No parameters.
    As in PyTorch, that exactly one of size and scale_factor is given (and that they fit the input's dimensions) is
    checked at the first forward."""

    arguments = Arguments(size=Optional(AnyOf((Int(ge=1), ListOf(Int(ge=1), min_len=1)))),
                          scale_factor=Optional(AnyOf((Float(gt=0), ListOf(Float(gt=0), min_len=1)))),
                          mode=Choice(tuple(_MODES), "mode"), align_corners=Optional(Bool()),
                          rules=(_align_corners_linear,))

    @checked
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
