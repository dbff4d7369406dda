"""The depthwise-separable convolution block (MobileNet, Xception; Keras' SeparableConv2D)."""
from __future__ import annotations

from ..kinds import Arguments, Int, checked
from .conv import Conv2d, conv_arguments
from .module import Module


class DepthwiseSeparableConv2d(Module):
    """A depthwise convolution (``groups=in_channels``: each input channel filtered by its own
    ``depth_multiplier`` kernels of size ``kernel_size``, no bias) then a 1x1 pointwise convolution mixing the
    channels into ``out_channels`` (with the bias, as Keras' SeparableConv2D).

    Children ``depthwise`` (Conv2d(in_channels, in_channels * depth_multiplier, kernel_size, groups=in_channels,
    bias=False)) and ``pointwise`` (Conv2d(in_channels * depth_multiplier, out_channels, 1)), so the state_dict keys
    are ``depthwise.weight``, ``pointwise.weight`` and ``pointwise.bias``. Parameters: in * dm * kh * kw + in * dm
    * out (+ out) against in * out * kh * kw (+ out) for a full Conv2d.
    """

    arguments = Arguments(**{**{k: v for k, v in conv_arguments(2).kinds.items() if k != "groups"},
                             "in_channels": Int(ge=1), "depth_multiplier": Int(ge=1)})  # in_channels: the groups

    @checked
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 bias: bool = True, depth_multiplier: int = 1, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__()
        middle = in_channels * depth_multiplier
        self.depthwise = Conv2d(in_channels, middle, kernel_size, stride, padding, dilation, groups=in_channels,
                                bias=False, padding_mode=padding_mode, device=device, dtype=dtype)
        self.pointwise = Conv2d(middle, out_channels, 1, bias=bias, device=device, dtype=dtype)

    def forward(self, input):
        return self.pointwise(self.depthwise(input))
