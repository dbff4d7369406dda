"""Linear: the fully connected layer y = x W^T + b, with PyTorch's weight layout and default initialisation."""
from __future__ import annotations


import numpy

from .. import backend as _backend
from ..autograd.tensor import Tensor
from ..kinds import Arguments, Bool, Int, checked
from ..ops.linear import linear
from . import init
from .module import Module
from .parameter import Parameter


def _empty_parameter(shape, device, dtype):
    backend = _backend.current() if device is None else _backend.get_backend(device)
    dtype = numpy.dtype(numpy.float32 if dtype is None else dtype)
    if dtype.kind != "f":
        raise TypeError(f"parameters must have a floating-point dtype, got {dtype}")
    return Parameter(Tensor(backend.xp.zeros(shape, dtype=dtype), backend))


def _add_weight_and_bias(module, weight_shape, bias_shape, device, dtype) -> None:
    """Register ``module.weight`` and ``module.bias``: parameters of these shapes (not yet initialised), or None
    where the shape is None."""
    for name, shape in (("weight", weight_shape), ("bias", bias_shape)):
        module.register_parameter(name, None if shape is None else _empty_parameter(shape, device, dtype))


class Linear(Module):
    """y = x @ weight.T + bias, weight of shape (out_features, in_features).

    ``in_features`` and ``out_features`` must be at least 1 (PyTorch also takes 0, a layer that computes nothing).
    Initialised as in PyTorch: weight ~ U(-1/sqrt(in_features), 1/sqrt(in_features)) (kaiming_uniform_ with
    a = sqrt(5)), and the bias from the same range.
    """

    arguments = Arguments(in_features=Int(ge=1), out_features=Int(ge=1), bias=Bool())

    @checked
    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        in_features, out_features = int(in_features), int(out_features)
        self.in_features, self.out_features = in_features, out_features
        _add_weight_and_bias(self, (out_features, in_features), (out_features,) if bias else None, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
