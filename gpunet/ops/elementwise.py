"""Element-wise functions: exp, log, sqrt, abs, clamp, where, and the activations built into the graph as one node."""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .arithmetic import div, mul, sub
from .conversion import as_tensor
from .shape import sum_to


class Exp(Function):
    def forward(self, backend, x):
        return backend.xp.exp(x)

    def backward(self, gy):
        return mul(gy, self.output())


class Log(Function):
    def forward(self, backend, x):
        return backend.xp.log(x)

    def backward(self, gy):
        return div(gy, self.inputs[0])


class Sqrt(Function):
    def forward(self, backend, x):
        return backend.xp.sqrt(x)

    def backward(self, gy):
        return div(mul(gy, 0.5), self.output())


class Abs(Function):
    def forward(self, backend, x):
        return backend.xp.abs(x)

    def backward(self, gy):
        x = self.inputs[0]
        return mul(gy, Tensor(x.backend.xp.sign(x.data), x.backend))  # a constant: sign has no gradient


class PassWhere(Function):
    """``gy * mask`` for a constant boolean ``mask``, the gradient of ReLU and clamp: one multiply (NumPy and CuPy
    cast the mask to 0 or 1 of gy's dtype inside it), no float copy of the mask, no broadcasting node. Linear in gy,
    so its own backward."""

    def __init__(self, mask):
        self.mask = mask

    def forward(self, backend, gy):
        return backend.xp.multiply(gy, self.mask)

    def backward(self, ggx):
        return PassWhere(self.mask).apply(ggx)


class Clamp(Function):
    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, backend, x):
        return backend.xp.clip(x, self.low, self.high)

    def backward(self, gy):
        x = self.inputs[0].data
        inside = x == x  # also False for NaN
        if self.low is not None:
            inside = inside & (x >= self.low)
        if self.high is not None:
            inside = inside & (x <= self.high)
        return PassWhere(inside).apply(gy)


class Where(Function):
    def __init__(self, condition):
        self.condition = condition

    def forward(self, backend, a, b):
        return backend.xp.where(self.condition, a, b)

    def backward(self, gy):
        a, b = self.inputs
        zero = as_tensor(0, gy)
        ga = sum_to(where(self.condition, gy, zero), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(where(self.condition, zero, gy), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Sigmoid(Function):
    def forward(self, backend, x):
        # exp of -|x| never overflows, and e / (1 + e) keeps tiny values for very negative x
        xp = backend.xp
        e = xp.exp(-xp.abs(x))
        return xp.where(x >= 0, 1, e) / (1 + e)

    def backward(self, gy):
        return SigmoidGrad().apply(self.output(), gy)


class SigmoidGrad(Function):
    """``gy * y * (1 - y)``, the sigmoid's backward as one node (y is the sigmoid's output)."""

    def forward(self, backend, y, gy):
        return gy * y * (1 - y)

    def backward(self, ggx):
        y, gy = self.inputs
        gy_grad = mul(ggx, mul(y, sub(1.0, y))) if self.needs_input_grad[1] else None
        y_grad = mul(ggx, mul(gy, sub(1.0, mul(y, 2.0)))) if self.needs_input_grad[0] else None
        return y_grad, gy_grad


class Tanh(Function):
    def forward(self, backend, x):
        return backend.xp.tanh(x)

    def backward(self, gy):
        return TanhGrad().apply(self.output(), gy)


class TanhGrad(Function):
    """``gy * (1 - y^2)``, the tanh's backward as one node (y is the tanh's output)."""

    def forward(self, backend, y, gy):
        slope = y * y  # gy * (1 - y^2) with one temporary instead of three, in place (any xp's arrays)
        slope *= -1
        slope += 1
        slope *= gy
        return slope

    def backward(self, ggx):
        y, gy = self.inputs
        gy_grad = mul(ggx, sub(1.0, mul(y, y))) if self.needs_input_grad[1] else None
        y_grad = mul(ggx, mul(gy, mul(y, -2.0))) if self.needs_input_grad[0] else None
        return y_grad, gy_grad


class ReLU(Function):
    def forward(self, backend, x):
        if backend.name != "numpy":
            return backend.xp.maximum(x, 0)
        zeros = backend.xp.zeros_like(x)  # NumPy's maximum with a scalar operand runs a loop ~3x slower than this
        return backend.xp.maximum(zeros, x, out=zeros)  # ties give the second operand: -0.0 stays, as in PyTorch

    def backward(self, gy):
        return PassWhere(self.inputs[0].data > 0).apply(gy)


def exp(x):
    return Exp().apply(x)


def log(x):
    return Log().apply(x)


def sqrt(x):
    return Sqrt().apply(x)


def abs(x):
    return Abs().apply(x)


def clamp(x, min=None, max=None):
    """``x`` limited to [min, max]; the gradient passes where min <= x <= max, as in PyTorch."""
    if min is None and max is None:
        raise ValueError("clamp: give at least one of min and max")
    return Clamp(min, max).apply(x)


def where(condition, a, b):
    """Elements of ``a`` where ``condition`` holds, else of ``b`` (both broadcast; gradients flow to each)."""
    cond = condition.data if isinstance(condition, Tensor) else condition
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    if like is None:
        raise TypeError("where: at least one of the two value arguments must be a tensor")
    a, b = as_tensor(a, like), as_tensor(b, like)
    shape = tuple(getattr(cond, "shape", ()))
    try:
        a.backend.xp.broadcast_shapes(shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: condition of shape {shape} and values of shapes {tuple(a.shape)} and "
                         f"{tuple(b.shape)} cannot be broadcast together") from None
    return Where(cond).apply(a, b)


def sigmoid(x):
    return Sigmoid().apply(x)


def tanh(x):
    return Tanh().apply(x)


def relu(x):
    return ReLU().apply(x)


def compare(a, b, name):
    """Element-wise comparison (``less``, ``equal``, ...) as a boolean tensor outside the graph."""
    b = as_tensor(b, a)
    return Tensor(getattr(a.backend.xp, name)(a.data, b.data), a.backend)

