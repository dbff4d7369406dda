"""Element-wise arithmetic with NumPy broadcasting, and the matrix product."""
from __future__ import annotations

import numbers

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .conversion import as_tensor
from .shape import sum_to


def _binary_operands(a, b):
    if type(a) is Tensor or isinstance(a, Tensor):
        return a, (b if type(b) is Tensor else as_tensor(b, a))
    return as_tensor(a, b), b


def _broadcasting(name, node, *operands):
    """``node`` applied to operands that broadcast; if they do not, an error naming the op and the shapes."""
    try:
        return node.apply(*operands)
    except ValueError:
        shapes = [tuple(t.shape) for t in operands]
        try:
            operands[0].backend.xp.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(f"{name}: shapes {' and '.join(map(str, shapes))} cannot be broadcast together "
                             f"(trailing dimensions must be equal or 1)") from None
        raise


class Add(Function):
    def forward(self, backend, a, b):
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        return sum_to(gy, a.shape), sum_to(gy, b.shape)


class Sub(Function):
    def forward(self, backend, a, b):
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        return sum_to(gy, a.shape), sum_to(neg(gy), b.shape) if self.needs_input_grad[1] else None


class Mul(Function):
    def forward(self, backend, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(mul(gy, b), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(mul(gy, a), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, backend, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = sum_to(div(gy, b), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(neg(div(mul(gy, a), mul(b, b))), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


class Neg(Function):
    def forward(self, backend, x):
        return -x

    def backward(self, gy):
        return neg(gy)


class PowScalar(Function):
    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, backend, x):
        return x ** self.exponent

    def backward(self, gy):
        (x,) = self.inputs
        c = self.exponent
        if c == 0:
            return mul(gy, 0.0)
        return mul(gy, mul(pow(x, c - 1), c))


class Pow(Function):
    def forward(self, backend, a, b):
        return a ** b

    def backward(self, gy):
        from .elementwise import log, where

        a, b = self.inputs
        y = self.output()
        ga = sum_to(mul(gy, mul(b, pow(a, sub(b, 1)))), a.shape) if self.needs_input_grad[0] else None
        gb = None
        if self.needs_input_grad[1]:
            # d(a**b)/db = a**b * log(a); PyTorch defines it as 0 where a == 0 (and b >= 0)
            safe_log = where(a.data == 0, 0.0, log(where(a.data == 0, 1.0, a)))
            gb = sum_to(mul(gy, mul(y, safe_log)), b.shape)
        return ga, gb


class MatMul(Function):
    """Matrix product of operands with at least two dimensions (batch dimensions broadcast)."""

    def forward(self, backend, a, b):
        return a @ b

    def backward(self, gy):
        from .shape import transpose

        a, b = self.inputs
        ga = sum_to(matmul(gy, transpose(b, -1, -2)), a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(matmul(transpose(a, -1, -2), gy), b.shape) if self.needs_input_grad[1] else None
        return ga, gb


def add(a, b):
    return _broadcasting("add", Add(), *_binary_operands(a, b))


def sub(a, b):
    return _broadcasting("sub", Sub(), *_binary_operands(a, b))


def mul(a, b):
    return _broadcasting("mul", Mul(), *_binary_operands(a, b))


def div(a, b):
    return _broadcasting("div", Div(), *_binary_operands(a, b))


def neg(x):
    return Neg().apply(x)


def pow(a, b):
    """``a ** b``; a Python-number exponent is a constant, a tensor exponent is differentiated too."""
    if isinstance(a, Tensor) and isinstance(b, numbers.Real) and not isinstance(b, bool):
        return PowScalar(int(b) if isinstance(b, numbers.Integral) else float(b)).apply(a)  # NumPy scalars too
    return _broadcasting("pow", Pow(), *_binary_operands(a, b))


def matmul(a, b):
    """Matrix product with PyTorch's rules for 1-D operands (a vector is promoted, then the dimension dropped)."""
    from .shape import squeeze, unsqueeze

    a, b = _binary_operands(a, b)
    if a.dtype != b.dtype:
        raise TypeError(
            f"matmul: operands have dtypes {a.dtype} and {b.dtype}; convert one with .float() or .double()"
        )
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: both operands need at least one dimension; use * for scalars")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(
            f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not fit: the last dimension of the first "
            f"({a.shape[-1]}) must equal the {'second-to-last' if b.ndim > 1 else 'only'} dimension of the second"
        )
    if a.ndim > 2 or b.ndim > 2:
        try:
            a.backend.xp.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul: the batch dimensions of shapes {tuple(a.shape)} and {tuple(b.shape)} cannot "
                             f"be broadcast together") from None
    if a.ndim == 1 and b.ndim == 1:
        return squeeze(MatMul().apply(unsqueeze(a, 0), unsqueeze(b, 1)), None).reshape(())
    if a.ndim == 1:
        return squeeze(MatMul().apply(unsqueeze(a, 0), b), -2)
    if b.ndim == 1:
        return squeeze(MatMul().apply(a, unsqueeze(b, 1)), -1)
    return MatMul().apply(a, b)
