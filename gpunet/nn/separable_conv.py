"""The depthwise-separable convolution block (MobileNet, Xception; Keras' SeparableConv2D)."""
from __future__ import annotations

import numbers

from .conv import Conv2d
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

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 bias: bool = True, depth_multiplier: int = 1, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__()
        if not isinstance(depth_multiplier, numbers.Integral) or isinstance(depth_multiplier, bool) \
                or depth_multiplier < 1:
            raise ValueError(f"DepthwiseSeparableConv2d: depth_multiplier must be a positive integer, got "
                             f"{depth_multiplier!r}")
        if not isinstance(in_channels, numbers.Integral) or isinstance(in_channels, bool) or in_channels < 1:
            raise ValueError(f"DepthwiseSeparableConv2d: in_channels must be a positive integer, got {in_channels!r}")
        middle = in_channels * depth_multiplier
        self.depthwise = Conv2d(in_channels, middle, kernel_size, stride, padding, dilation, groups=in_channels,
                                bias=False, padding_mode=padding_mode, device=device, dtype=dtype)
        self.pointwise = Conv2d(middle, out_channels, 1, bias=bias, device=device, dtype=dtype)

    def forward(self, input):
        return self.pointwise(self.depthwise(input))
