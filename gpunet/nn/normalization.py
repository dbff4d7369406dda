"""Per-sample normalisation layers with PyTorch's arguments and state_dict keys: LayerNorm and GroupNorm."""
from __future__ import annotations

from ..kinds import AnyOf, ArgumentError, Arguments, Bool, Float, Int, ListOf, checked
from ..ops.normalization import _group_norm, _layer_norm, normalized_shape_tuple
from . import init
from .linear import _add_weight_and_bias
from .module import Module


class LayerNorm(Module):
    """Normalise each sample over its trailing dimensions ``normalized_shape`` (mean 0, variance 1, the biased
    variance plus ``eps``), then ``* weight + bias`` (both of shape ``normalized_shape``, starting at 1 and 0) when
    ``elementwise_affine``; ``bias=False`` keeps the scale without the shift. The same in training and eval."""

    arguments = Arguments(normalized_shape=AnyOf((Int(ge=1), ListOf(Int(ge=1), min_len=1))), eps=Float(gt=0),
                          elementwise_affine=Bool(), bias=Bool())

    @checked
    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.normalized_shape = normalized_shape_tuple(normalized_shape, "LayerNorm")
        self.eps, self.elementwise_affine = eps, elementwise_affine
        shape = self.normalized_shape if elementwise_affine else None
        _add_weight_and_bias(self, shape, shape if bias else None, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input):
        return _layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps,
                           f"LayerNorm({self.extra_repr()})")

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


def _groups_divide_channels(args):
    if args["num_channels"] % args["num_groups"]:
        raise ArgumentError("num_groups", f"must divide num_channels ({args['num_channels']})", args["num_groups"],
                            f"a divisor of {args['num_channels']}")


class GroupNorm(Module):
    """Split the channels of (N, C, ...) into ``num_groups`` groups and normalise each sample's group over its
    channels and positions, then scale and shift per channel (``weight``, ``bias`` of shape (C,), starting at 1 and
    0) when ``affine``. ``GroupNorm(1, C)`` normalises whole samples; ``GroupNorm(C, C)`` is instance norm."""

    arguments = Arguments(num_groups=Int(ge=1), num_channels=Int(ge=1), eps=Float(gt=0), affine=Bool(),
                          rules=(_groups_divide_channels,))

    @checked
    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, device=None,
                 dtype=None):
        super().__init__()
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        shape = (num_channels,) if affine else None
        _add_weight_and_bias(self, shape, shape, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input):
        where = f"GroupNorm({self.extra_repr()})"
        if input.ndim < 2 or input.shape[1] != self.num_channels:
            raise ValueError(f"{where}: expected an input (N, {self.num_channels}, ...) with {self.num_channels} "
                             f"channels in dimension 1, got shape {tuple(input.shape)}")
        return _group_norm(input, self.num_groups, self.weight, self.bias, self.eps, where)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"
