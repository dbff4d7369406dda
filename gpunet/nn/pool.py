"""Pooling layers with PyTorch's names, arguments and defaults: MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d."""
from __future__ import annotations

from ..kinds import AnyOf, Arguments, Bool, Int, ListOf, Optional, checked, sizes
from ..ops import pool as P
from .module import Module


def _max_pool_arguments(n: int) -> Arguments:
    return Arguments(kernel_size=sizes(n, 1), stride=Optional(sizes(n, 1)), padding=sizes(n, 0),
                     dilation=sizes(n, 1), return_indices=Bool(), ceil_mode=Bool())


def _avg_pool_arguments(n: int) -> Arguments:
    return Arguments(kernel_size=sizes(n, 1), stride=Optional(sizes(n, 1)), padding=sizes(n, 0), ceil_mode=Bool(),
                     count_include_pad=Bool())


def _adaptive_arguments(n: int) -> Arguments:
    """An int, or one per dimension (AdaptiveAvgPool2d: None keeps that dimension's size)."""
    item = Int(ge=1) if n == 1 else Optional(Int(ge=1))
    return Arguments(output_size=AnyOf((Int(ge=1), ListOf(item, length=n))))


class _MaxPoolNd(Module):
    _pool = None

    @checked
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return type(self)._pool(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                                self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Maximum over sliding windows of (N, C, L) or (C, L); ``return_indices`` also returns the argmax positions."""

    _pool = staticmethod(P.max_pool1d)
    arguments = _max_pool_arguments(1)


class MaxPool2d(_MaxPoolNd):
    """Maximum over sliding windows of (N, C, H, W) or (C, H, W); ``return_indices`` also returns the flat argmax
    index ih * W + iw within each input plane (as PyTorch)."""

    _pool = staticmethod(P.max_pool2d)
    arguments = _max_pool_arguments(2)


class AvgPool1d(Module):
    """Mean over sliding windows of (N, C, L) or (C, L)."""

    arguments = _avg_pool_arguments(1)

    @checked
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad

    def forward(self, x):
        return P.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(Module):
    """Mean over sliding windows of (N, C, H, W) or (C, H, W); padding counts in the divisor when
    ``count_include_pad`` (the default); ``divisor_override`` replaces the divisor."""

    arguments = _avg_pool_arguments(2)

    @checked
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, kernel_size if stride is None else stride
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x):
        return P.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _AdaptiveAvgPoolNd(Module):
    _pool = None

    @checked
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return type(self)._pool(x, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Average pooling of (N, C, L) or (C, L) to a fixed length ``output_size``."""

    _pool = staticmethod(P.adaptive_avg_pool1d)
    arguments = _adaptive_arguments(1)


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Average pooling of (N, C, H, W) or (C, H, W) to a fixed ``output_size`` (an int, or (OH, OW) where None keeps
    that size); ``AdaptiveAvgPool2d(1)`` is global average pooling."""

    _pool = staticmethod(P.adaptive_avg_pool2d)
    arguments = _adaptive_arguments(2)
