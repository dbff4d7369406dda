"""Activation layers: thin modules over ``gpunet.nn.functional`` with PyTorch's names, defaults and reprs."""
from __future__ import annotations

import numpy

from .. import backend as _backend
from ..autograd.tensor import Tensor
from ..kinds import ArgumentError, Arguments, Choice, Float, Int, Optional, checked
from . import functional as F
from .module import Module
from .parameter import Parameter


class Identity(Module):
    """Returns its input unchanged (any constructor arguments are ignored, as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class ReLU(Module):
    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    arguments = Arguments(negative_slope=Float())

    @checked
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class PReLU(Module):
    """max(0, x) + a * min(0, x) with a learnable slope ``a``: one shared, or one per channel (dimension 1)."""

    arguments = Arguments(num_parameters=Int(ge=1), init=Float())

    @checked
    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        backend = _backend.current() if device is None else _backend.get_backend(device)
        dtype = numpy.dtype(numpy.float32 if dtype is None else dtype)
        self.weight = Parameter(Tensor(backend.xp.full((num_parameters,), init, dtype=dtype), backend))

    def forward(self, x):
        return F.prelu(x, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"


class ELU(Module):
    arguments = Arguments(alpha=Float())

    @checked
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """x * Phi(x); ``approximate='tanh'`` uses the tanh approximation of the normal CDF Phi."""

    arguments = Arguments(approximate=Choice(("none", "tanh"), "approximation"))

    @checked
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    arguments = Arguments(beta=Float(gt=0), threshold=Float())

    @checked
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


def _min_below_max(args):
    if args["min_val"] >= args["max_val"]:
        raise ArgumentError("max_val", f"must be greater than min_val ({args['min_val']:g})", args["max_val"],
                            f"a number > {args['min_val']:g}")


class Hardtanh(Module):
    arguments = Arguments(min_val=Float(), max_val=Float(), rules=(_min_below_max,))

    @checked
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        self.min_val, self.max_val, self.inplace = min_val, max_val, inplace

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (", inplace=True" if self.inplace else "")


class _Softmax(Module):
    _function = None
    arguments = Arguments(dim=Optional(Int()))

    @checked
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return type(self)._function(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_Softmax):
    _function = staticmethod(F.softmax)


class LogSoftmax(_Softmax):
    _function = staticmethod(F.log_softmax)


class _Step(Module):
    _function = None

    def __init__(self, threshold: float = 0.0):
        super().__init__()
        self.threshold = threshold

    def forward(self, x):
        return type(self)._function(x, self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"


class Step(_Step):
    """Binary step of seed 002: 1 where x >= threshold, else 0 (gradient 0)."""

    _function = staticmethod(F.step)


class BipolarStep(_Step):
    """Bipolar step of seed 002: +1 where x >= threshold, else -1 (gradient 0)."""

    _function = staticmethod(F.bipolar_step)


class BipolarSigmoid(Module):
    """Bipolar sigmoid of seed 002: (1 - exp(-s x)) / (1 + exp(-s x)) = tanh(s x / 2), with steepness s."""

    def __init__(self, steepness: float = 1.0):
        super().__init__()
        self.steepness = steepness

    def forward(self, x):
        return F.bipolar_sigmoid(x, self.steepness)

    def extra_repr(self) -> str:
        return f"steepness={self.steepness}"
