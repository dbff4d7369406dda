"""Reductions over dimensions (sum, mean, max, min, var) and the normalisations softmax and log-softmax."""
from __future__ import annotations

import collections
import numbers

from ..autograd.function import Function
from ..autograd.tensor import Tensor
from .arithmetic import div, mul, sub
from .elementwise import exp
from .shape import _normalize_dim, broadcast_to, reshape

MaxResult = collections.namedtuple("MaxResult", ["values", "indices"])


def _axes(x, dim, op):
    """``dim`` (an int, a sequence, or None or () for all dimensions) as a sorted tuple of non-negative axes."""
    dims = () if dim is None else (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    axes = tuple(sorted({_normalize_dim(d, x.ndim, op) for d in dims}))
    return axes if axes and x.ndim else tuple(range(x.ndim))  # no dims means all, as in PyTorch


def _kept_shape(shape, axes):
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


class Sum(Function):
    def __init__(self, axes, keepdim):
        self.axes, self.keepdim = axes, keepdim

    def forward(self, backend, x):
        return x.sum(axis=self.axes, keepdims=self.keepdim)

    def backward(self, gy):
        x = self.inputs[0]
        if not self.keepdim:
            gy = reshape(gy, _kept_shape(x.shape, self.axes))
        return broadcast_to(gy, x.shape)


def sum(x, dim=None, keepdim=False):
    """Sum over ``dim`` (all dimensions when None)."""
    return Sum(_axes(x, dim, "sum"), keepdim).apply(x)


def mean(x, dim=None, keepdim=False):
    """Mean over ``dim`` (all dimensions when None)."""
    axes = _axes(x, dim, "mean")
    count = 1
    for a in axes:
        count *= x.shape[a]
    return div(sum(x, axes, keepdim), float(count))


def var(x, dim=None, keepdim=False, unbiased=True):
    """Variance over ``dim``; ``unbiased`` divides by n - 1 (PyTorch's default)."""
    axes = _axes(x, dim, "var")
    count = 1
    for a in axes:
        count *= x.shape[a]
    centred = sub(x, mean(x, axes, keepdim=True))
    return div(sum(mul(centred, centred), axes, keepdim), float(count - 1 if unbiased else count))


def std(x, dim=None, keepdim=False, unbiased=True):
    from .arithmetic import pow

    return pow(var(x, dim, keepdim, unbiased), 0.5)


class Extreme(Function):
    """max or min over one dimension (the gradient goes to the returned index) or over all elements
    (the gradient is shared evenly between tied elements, as in PyTorch)."""

    def __init__(self, kind, axis, keepdim):
        self.kind, self.axis, self.keepdim = kind, axis, keepdim

    def forward(self, backend, x):
        xp = backend.xp
        if self.axis is None:
            return getattr(xp, self.kind)(x)
        pick = xp.argmax if self.kind == "max" else xp.argmin
        self.indices = xp.expand_dims(pick(x, axis=self.axis), self.axis)
        values = xp.take_along_axis(x, self.indices, axis=self.axis)
        return values if self.keepdim else values.squeeze(self.axis)

    def backward(self, gy):
        x = self.inputs[0]
        xp = x.backend.xp
        if self.axis is None:
            hits = x.data == self.output().data
            weights = hits / hits.sum()
        else:
            positions = xp.arange(x.shape[self.axis]).reshape(
                tuple(-1 if i == self.axis else 1 for i in range(x.ndim))
            )
            weights = positions == self.indices
            if not self.keepdim:
                gy = reshape(gy, _kept_shape(x.shape, (self.axis,)))
        return mul(broadcast_to(gy, x.shape), Tensor(weights.astype(x.dtype), x.backend))


def _extreme(kind, x, dim, keepdim):
    if dim is None:
        if x.data.size == 0:
            raise ValueError(f"{kind}() of an empty tensor")
        return Extreme(kind, None, False).apply(x)
    axis = _normalize_dim(dim, x.ndim, kind)
    node = Extreme(kind, axis, keepdim)
    values = node.apply(x)
    indices = node.indices if keepdim else node.indices.squeeze(axis)
    return MaxResult(values, Tensor(indices.astype("int64", copy=False), x.backend))


def max(x, dim=None, keepdim=False):
    """The largest element, or (values, indices) along ``dim`` as in PyTorch."""
    return _extreme("max", x, dim, keepdim)


def min(x, dim=None, keepdim=False):
    """The smallest element, or (values, indices) along ``dim`` as in PyTorch."""
    return _extreme("min", x, dim, keepdim)


def _arg_extreme(kind, x, dim, keepdim):
    if dim is None:  # index into the flattened tensor, as PyTorch
        xp = x.backend.xp
        return Tensor(xp.asarray(getattr(xp, "arg" + kind)(x.data), dtype="int64"), x.backend)
    return _extreme(kind, x, dim, keepdim).indices


def argmax(x, dim=None, keepdim=False):
    """Index of the largest element (of the flattened tensor when ``dim`` is None)."""
    return _arg_extreme("max", x, dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    """Index of the smallest element (of the flattened tensor when ``dim`` is None)."""
    return _arg_extreme("min", x, dim, keepdim)


class Softmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, backend, x):
        return backend.softmax(x, self.axis)

    def backward(self, gy):
        y = self.output()
        return mul(y, sub(gy, sum(mul(gy, y), self.axis, keepdim=True)))


class LogSoftmax(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, backend, x):
        return backend.log_softmax(x, self.axis)

    def backward(self, gy):
        return sub(gy, mul(exp(self.output()), sum(gy, self.axis, keepdim=True)))


def softmax(x, dim):
    """exp(x) / sum(exp(x)) along ``dim``, computed stably."""
    return Softmax(_normalize_dim(dim, x.ndim, "softmax")).apply(x)


def log_softmax(x, dim):
    """log(softmax(x)) along ``dim``, computed stably (no log of a rounded-off zero)."""
    return LogSoftmax(_normalize_dim(dim, x.ndim, "log_softmax")).apply(x)


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) along ``dim``, computed stably."""
    from .arithmetic import add
    from .elementwise import log

    xp = x.backend.xp
    peak = x.data.max(axis=_normalize_dim(dim, x.ndim, "logsumexp"), keepdims=True)
    shift = Tensor(xp.where(xp.isfinite(peak), peak, 0), x.backend)  # all -inf gives -inf, not nan
    out = add(log(sum(exp(sub(x, shift)), dim, keepdim=True)), shift)
    return out if keepdim else reshape(out, tuple(n for i, n in enumerate(out.shape) if i != dim % x.ndim))
