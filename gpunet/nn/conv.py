"""Convolution layers Conv1d, Conv2d and ConvTranspose2d, with PyTorch's arguments, weight layouts and initialisation."""
from __future__ import annotations

from ..kinds import AnyOf, ArgumentError, Arguments, Bool, Choice, Int, checked, sizes
from ..ops.conv import conv_padding, convolution, convolution_transpose2d, int_tuple
from . import init
from .linear import _add_weight_and_bias
from .module import Module

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _channels_divisible(args):
    for what in ("in_channels", "out_channels"):
        if args[what] % args["groups"]:
            raise ArgumentError(what, f"must be divisible by groups = {args['groups']}", args[what],
                                f"a multiple of {args['groups']}")


def conv_arguments(n: int, paddings: tuple = ("same", "valid"), rules: tuple = (), **more) -> Arguments:
    """The arguments of an n-D convolution layer (``paddings``: the strings its padding may be, besides sizes); no
    channels (PyTorch's 0) is refused, as no such layer computes anything."""
    padding = AnyOf((*sizes(n, 0).kinds, Choice(paddings, "padding"))) if paddings else sizes(n, 0)
    return Arguments(in_channels=Int(ge=1), out_channels=Int(ge=1), kernel_size=sizes(n, 1), stride=sizes(n, 1),
                     padding=padding, dilation=sizes(n, 1), groups=Int(ge=1), bias=Bool(),
                     padding_mode=Choice(_PADDING_MODES, "padding mode"), rules=(_channels_divisible, *rules), **more)


def _output_padding_below_stride(args):
    pairs = [(v,) * 2 if isinstance(v, int) else tuple(v) for v in (args["output_padding"], args["stride"])]
    if any(op >= st for op, st in zip(*pairs)):
        raise ArgumentError("output_padding", f"must be smaller than stride ({args['stride']}) in each dimension",
                            args["output_padding"], "an integer (or a pair) below stride")


class _ConvNd(Module):
    """Shared by the convolution layers: argument checks, parameters, PyTorch's default initialisation."""

    _dims = 2
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                 output_padding, device, dtype):
        super().__init__()
        name, n = type(self).__name__, self._dims
        in_channels, out_channels, groups = int(in_channels), int(out_channels), int(groups)
        if padding_mode != "zeros":
            raise NotImplementedError(f"{name}: padding_mode={padding_mode!r} is not supported by gpunet, only "
                                      f"'zeros'; pad the input yourself and use padding=0")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = int_tuple(kernel_size, n, "kernel_size", name, 1)
        self.stride = int_tuple(stride, n, "stride", name, 1)
        self.dilation = int_tuple(dilation, n, "dilation", name, 1)
        if isinstance(padding, str):
            conv_padding(padding, n, self.kernel_size, self.stride, self.dilation, name)  # validates the string
            self.padding = padding
        else:
            self.padding = int_tuple(padding, n, "padding", name, 0)
        self.output_padding = int_tuple(output_padding, n, "output_padding", name, 0)
        self.padding_mode = padding_mode
        if self.transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        _add_weight_and_bias(self, shape, (out_channels,) if bias else None, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def extra_repr(self) -> str:
        n = self._dims
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}")
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class _Conv(_ConvNd):
    """A forward convolution: PyTorch's Conv1d/Conv2d arguments, ``_dims`` spatial dimensions."""

    @checked
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, device, dtype)

    def forward(self, input):
        return convolution(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                           self._dims, self)  # the layer names itself in errors (its repr)


class Conv1d(_Conv):
    """1-D cross-correlation over (N, C_in, L) (or (C_in, L)): weight (out_channels, in_channels/groups, k);
    padding an int, 'valid', 'same' or 'causal' (stride 1: the input is padded by dilation * (k - 1) on the left
    only, so output t depends only on inputs <= t and the output keeps the length L, as Keras' padding='causal')."""

    _dims = 1
    arguments = conv_arguments(1, ("same", "valid", "causal"))


class Conv2d(_Conv):
    """2-D cross-correlation over (N, C_in, H, W) (or (C_in, H, W)): weight (out_channels, in_channels/groups,
    kh, kw); padding an int, a pair, 'valid' or 'same' (stride 1)."""

    _dims = 2
    arguments = conv_arguments(2)


class ConvTranspose2d(_ConvNd):
    """The transposed 2-D convolution (the adjoint of Conv2d's input map): weight (in_channels,
    out_channels/groups, kh, kw); output size (H - 1) s - 2 p + d (k - 1) + output_padding + 1."""

    transposed = True
    arguments = conv_arguments(2, (), (_output_padding_below_stride,), output_padding=sizes(2, 0))

    @checked
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device, dtype)

    def forward(self, input, output_size=None):
        """``output_size`` (the output's (H, W), optionally with leading dimensions) picks output_padding, as in
        PyTorch, when several output sizes map back to the input's size."""
        output_padding = self.output_padding
        if output_size is not None:
            size = tuple(output_size)[-2:]
            smallest = tuple((input.shape[-2 + a] - 1) * self.stride[a] - 2 * self.padding[a]
                             + self.dilation[a] * (self.kernel_size[a] - 1) + 1 for a in (0, 1))
            output_padding = tuple(int(want) - low for want, low in zip(size, smallest))
            if len(size) != 2 or any(not 0 <= op < s for op, s in zip(output_padding, self.stride)):
                ranges = " and ".join(f"{what} in [{low}, {low + s - 1}]"
                                      for what, low, s in zip("HW", smallest, self.stride))
                raise ValueError(f"{self!r}: output_size {tuple(output_size)} is not reachable from input "
                                 f"{tuple(input.shape)}: it needs {ranges}")
        return convolution_transpose2d(input, self.weight, self.bias, self.stride, self.padding, output_padding,
                                 self.groups, self.dilation, self)
