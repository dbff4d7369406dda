"""Activation functions beyond sigmoid/tanh/relu, each one graph node whose backward is written in ops.

Values and gradients follow PyTorch (including which side of a kink gets which slope); the seeds' step
functions and bipolar sigmoid are defined as in seed 002.
"""
from __future__ import annotations

import math

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .arithmetic import add, mul, sub
from .elementwise import clamp, exp, sigmoid, tanh, where
from .shape import reshape, sum_to

_SQRT_HALF = math.sqrt(0.5)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_GELU_CUBIC = 0.044715


def _const(x, array):
    """A constant (no-gradient) tensor of ``x``'s dtype from an array."""
    return Tensor(array.astype(x.dtype, copy=False), x.backend)


class Erf(Function):
    def forward(self, backend, x):
        return backend.erf(x)

    def backward(self, gy):
        x = self.inputs[0]
        return mul(gy, mul(exp(mul(mul(x, x), -1.0)), 2.0 / math.sqrt(math.pi)))


def erf(x):
    """The error function, 2/sqrt(pi) * integral from 0 to x of exp(-t^2) dt."""
    return Erf().apply(x)


class LeakyReLU(Function):
    def __init__(self, negative_slope):
        self.slope = negative_slope

    def forward(self, backend, x):
        return backend.xp.where(x > 0, x, x * self.slope)

    def backward(self, gy):
        x = self.inputs[0]
        return mul(gy, _const(x, x.backend.xp.where(x.data > 0, 1.0, self.slope)))


class PReLU(Function):
    """max(0, x) + weight * min(0, x) with one weight per channel (dimension 1), or one shared weight."""

    def forward(self, backend, x, weight):
        self.weight_shape = tuple(weight.shape[0] if i == 1 else 1 for i in range(x.ndim))
        w = weight.reshape(self.weight_shape)
        return backend.xp.where(x > 0, x, x * w)

    def backward(self, gy):
        x, weight = self.inputs
        positive = x.data > 0
        gx = gw = None
        if self.needs_input_grad[0]:
            w = reshape(weight, self.weight_shape)
            gx = where(positive, gy, mul(gy, w))
        if self.needs_input_grad[1]:
            gw = reshape(sum_to(mul(gy, mul(x, _const(x, ~positive))), self.weight_shape), weight.shape)
        return gx, gw


class ELU(Function):
    def __init__(self, alpha):
        self.alpha = alpha

    def forward(self, backend, x):
        xp = backend.xp
        return xp.where(x > 0, x, self.alpha * xp.expm1(xp.minimum(x, 0)))

    def backward(self, gy):
        x = self.inputs[0]  # slope alpha * exp(x) for x <= 0; exp of min(x, 0) cannot overflow
        return where(x.data > 0, gy, mul(gy, mul(exp(clamp(x, None, 0.0)), self.alpha)))


class GELU(Function):
    """x * Phi(x) with the normal CDF Phi exact (through erf) or its tanh approximation."""

    def __init__(self, approximate):
        self.approximate = approximate

    def forward(self, backend, x):
        xp = backend.xp
        if self.approximate == "tanh":
            return 0.5 * x * (1.0 + xp.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x * x * x)))
        return 0.5 * x * (1.0 + backend.erf(x * _SQRT_HALF))

    def backward(self, gy):
        x = self.inputs[0]
        if self.approximate == "tanh":
            x2 = mul(x, x)
            t = tanh(mul(mul(x, add(mul(x2, _GELU_CUBIC), 1.0)), _SQRT_2_OVER_PI))
            inner_slope = mul(add(mul(x2, 3.0 * _GELU_CUBIC), 1.0), _SQRT_2_OVER_PI)
            slope = add(mul(add(t, 1.0), 0.5), mul(mul(mul(x, 0.5), sub(1.0, mul(t, t))), inner_slope))
        else:
            cdf = add(mul(erf(mul(x, _SQRT_HALF)), 0.5), 0.5)
            pdf = mul(exp(mul(mul(x, x), -0.5)), _INV_SQRT_2PI)
            slope = add(cdf, mul(x, pdf))
        return mul(gy, slope)


class Softplus(Function):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's rule)."""

    def __init__(self, beta, threshold):
        self.beta, self.threshold = beta, threshold

    def forward(self, backend, x):
        xp = backend.xp
        bx = x * self.beta
        smooth = (xp.maximum(bx, 0) + xp.log1p(xp.exp(-xp.abs(bx)))) / self.beta
        return xp.where(bx > self.threshold, x, smooth).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        linear = x.data * self.beta > self.threshold
        return where(linear, gy, mul(gy, sigmoid(mul(x, self.beta))))


class Hardtanh(Function):
    """x clipped to [min_val, max_val]; the gradient is 1 strictly inside, 0 on and beyond the edges."""

    def __init__(self, min_val, max_val):
        self.min_val, self.max_val = min_val, max_val

    def forward(self, backend, x):
        return backend.xp.clip(x, self.min_val, self.max_val)

    def backward(self, gy):
        x = self.inputs[0]
        return mul(gy, _const(x, (x.data > self.min_val) & (x.data < self.max_val)))


class Step(Function):
    """The seeds' threshold units: ``high`` where x >= threshold, else ``low``; the derivative is 0."""

    def __init__(self, threshold, low, high):
        self.threshold, self.low, self.high = threshold, low, high

    def forward(self, backend, x):
        xp = backend.xp
        return xp.where(x >= self.threshold, xp.asarray(self.high, x.dtype), xp.asarray(self.low, x.dtype))

    def backward(self, gy):
        return mul(gy, 0.0)


class BipolarSigmoid(Function):
    """(1 - exp(-s x)) / (1 + exp(-s x)) = tanh(s x / 2), computed as the tanh (stable for any x)."""

    def __init__(self, steepness):
        self.steepness = steepness

    def forward(self, backend, x):
        return backend.xp.tanh(x * (0.5 * self.steepness))

    def backward(self, gy):
        y = self.output()
        return mul(gy, mul(sub(1.0, mul(y, y)), 0.5 * self.steepness))


def leaky_relu(x, negative_slope=0.01):
    return LeakyReLU(float(negative_slope)).apply(x)


def prelu(x, weight):
    """PReLU with ``weight`` of shape (1,) or (channels,), channels being dimension 1 of ``x``."""
    if weight.ndim != 1:
        raise ValueError(f"prelu: weight must be 1-D (num_parameters,), got shape {tuple(weight.shape)}")
    n = weight.shape[0]
    if n != 1 and (x.ndim < 2 or x.shape[1] != n):
        raise ValueError(
            f"prelu: weight has {n} parameters but the input of shape {tuple(x.shape)} has "
            f"{x.shape[1] if x.ndim >= 2 else 'no'} channels (dimension 1); use num_parameters=1 or match the channels"
        )
    return PReLU().apply(x, weight)


def elu(x, alpha=1.0):
    return ELU(float(alpha)).apply(x)


def gelu(x, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU(approximate).apply(x)


def softplus(x, beta=1.0, threshold=20.0):
    if beta == 0:
        raise ValueError("softplus: beta must be non-zero")
    return Softplus(float(beta), float(threshold)).apply(x)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) must not exceed max_val ({max_val})")
    return Hardtanh(float(min_val), float(max_val)).apply(x)


def step(x, threshold=0.0):
    """Binary step: 1 where x >= threshold, else 0 (gradient 0)."""
    return Step(float(threshold), 0.0, 1.0).apply(x)


def bipolar_step(x, threshold=0.0):
    """Bipolar step: +1 where x >= threshold, else -1 (gradient 0)."""
    return Step(float(threshold), -1.0, 1.0).apply(x)


def bipolar_sigmoid(x, steepness=1.0):
    """(1 - exp(-steepness x)) / (1 + exp(-steepness x)), in (-1, 1)."""
    return BipolarSigmoid(float(steepness)).apply(x)
