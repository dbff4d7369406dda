"""Normalisation: batch, layer and group norm. Batch and group norm take their statistics from the backend's fused
``batch_norm_stats`` kernel (mean and biased variance over any axes) and normalise in differentiable ops; layer norm
is one fused kernel forward and one backward (``backend.layer_norm``, ``backend.layer_norm_backward``)."""
from __future__ import annotations

import numbers

from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled, no_grad
from ..autograd.tensor import Tensor
from .arithmetic import add, div, mul, sub
from .elementwise import sqrt
from .reduction import mean, sum
from .shape import broadcast_to, reshape


class BatchStatisticsError(ValueError):
    """A training batch too small for batch statistics: one value per channel (PyTorch raises a ValueError too)."""


def _channel_view(x):
    """The reduced axes (all but 1) and the shape (1, C, 1, ...) that broadcasts a per-channel vector over x."""
    return (0,) + tuple(range(2, x.ndim)), (1, x.shape[1]) + (1,) * (x.ndim - 2)


class Moments(Function):
    """``(mean, biased variance)`` of x over ``axes`` (the other axes kept, in order), by ``backend.batch_norm_stats``.

    Backward: d mean / dx = 1 / M and d var / dx = 2 (x - mean) / M (M values per statistic), written with
    differentiable ops (and the saved mean, an output of this node), so derivatives of any order work.
    """

    def __init__(self, axes):
        self.axes = tuple(axes)

    def forward(self, backend, x):
        return backend.batch_norm_stats(x, self.axes)

    def backward(self, g_mean, g_var):
        x = self.inputs[0]
        shape = tuple(1 if a in self.axes else n for a, n in enumerate(x.shape))  # the statistics, keepdims
        count = 1.0
        for a in self.axes:
            count *= x.shape[a]
        grad = None
        if g_mean is not None:
            grad = broadcast_to(reshape(div(g_mean, count), shape), x.shape)
        if g_var is not None:
            centred = sub(x, reshape(self.output(0), shape))
            term = mul(centred, reshape(mul(g_var, 2.0 / count), shape))
            grad = term if grad is None else add(grad, term)
        return grad


def batch_norm_stats(x):
    """Per-channel mean and biased variance of x (N, C, ...) over N and the spatial axes."""
    if x.ndim < 2:
        raise ValueError(f"batch_norm_stats: x must be (N, C, ...) with at least 2 dimensions, got shape "
                         f"{tuple(x.shape)}")
    return Moments(_channel_view(x)[0]).apply(x)


def _update_running(buffer, value, momentum):
    """buffer = (1 - momentum) * buffer + momentum * value, in place on the buffer's array (no graph); ``momentum``
    a number or a 0-d array on the buffer's device."""
    data = buffer.data
    data *= 1.0 - momentum
    data += (value * momentum).astype(data.dtype, copy=False)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """PyTorch's ``F.batch_norm``: normalise each channel (axis 1) of ``input`` (N, C, ...).

    In training the batch's mean and biased variance normalise, and ``running_mean``/``running_var`` (when given)
    move toward the batch mean and the unbiased variance by ``momentum``, in place. Otherwise the running
    statistics normalise. ``weight``/``bias`` (C,) scale and shift.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: input must be (N, C, ...) with at least 2 dimensions, got shape "
                         f"{tuple(input.shape)}")
    channels = input.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var), ("weight", weight),
                    ("bias", bias)):
        if t is not None and tuple(t.shape) != (channels,):
            raise ValueError(f"batch_norm: {name} must have shape ({channels},) for an input with {channels} "
                             f"channels, got {tuple(t.shape)}")
    _, shape = _channel_view(input)
    if training:
        count = input.data.size // channels if channels else 0
        if count <= 1:
            raise BatchStatisticsError(f"Expected more than 1 value per channel when training, got input size "
                             f"{tuple(input.shape)}")
        mean, var = batch_norm_stats(input)
        with no_grad(), input.backend.activate():  # in place on the input's device, whichever device is current
            if running_mean is not None:
                _update_running(running_mean, mean.data, momentum)
            if running_var is not None:
                _update_running(running_var, var.data * (count / (count - 1)), momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
        mean, var = running_mean, running_var
    y = div(sub(input, reshape(mean, shape)), sqrt(add(reshape(var, shape), eps)))
    if weight is not None:
        y = mul(y, reshape(weight, shape))
    if bias is not None:
        y = add(y, reshape(bias, shape))
    return y


def _normalize(x, rows, eps):
    """x viewed as ``rows`` rows, each normalised: (row - mean) / sqrt(biased var + eps). One statistic per row, so
    the backend's ``batch_norm_stats`` kernel runs (rows as its channels)."""
    cols = 1
    for size in x.shape:
        cols *= size
    cols = cols // rows if rows else 0
    x2 = reshape(x, (rows, cols))
    mean, var = Moments((1,)).apply(x2)
    y = div(sub(x2, reshape(mean, (rows, 1))), sqrt(add(reshape(var, (rows, 1)), eps)))
    return reshape(y, x.shape)


class LayerNormRows(Function):
    """Layer norm of x (rows, cols) over each row, then ``* weight + bias`` ((cols,) each, both optional: the
    inputs after x are the weight if ``has_weight``, then the bias if ``has_bias``). Forward and backward are the
    backend's fused kernels (the forward saves each row's mean and 1/std); while a graph of the backward is built
    (higher derivatives) the backward is written in differentiable ops instead."""

    def __init__(self, eps, has_weight, has_bias):
        self.eps, self.has_weight, self.has_bias = float(eps), has_weight, has_bias

    def forward(self, backend, x, *params):
        weight = params[0] if self.has_weight else None
        bias = params[-1] if self.has_bias else None
        y, self.mean, self.rstd = backend.layer_norm(x, weight, bias, self.eps)
        return y

    def backward(self, gy):
        x = self.inputs[0]
        weight = self.inputs[1] if self.has_weight else None
        if is_grad_enabled():
            gx, gw, gb = self._differentiable_backward(gy, x, weight)
        else:
            arrays = x.backend.layer_norm_backward(gy.data, x.data, None if weight is None else weight.data,
                                                   self.mean, self.rstd)
            gx, gw, gb = (Tensor(a, x.backend) for a in arrays)
        return (gx,) + ((gw,) if self.has_weight else ()) + ((gb,) if self.has_bias else ())

    def _differentiable_backward(self, gy, x, weight):
        """The fused backward's formulas from x itself: gx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = gy *
        weight; gweight = sum of gy * xhat over the rows, gbias = sum of gy."""
        rows = x.shape[0]
        row_mean, row_var = Moments((1,)).apply(x)
        rstd = div(1.0, sqrt(add(reshape(row_var, (rows, 1)), self.eps)))
        xhat = mul(sub(x, reshape(row_mean, (rows, 1))), rstd)
        g = gy if weight is None else mul(gy, weight)
        gx = mul(rstd, sub(sub(g, mean(g, 1, keepdim=True)), mul(xhat, mean(mul(g, xhat), 1, keepdim=True))))
        return gx, sum(mul(gy, xhat), 0), sum(gy, 0)


def _check_eps(eps, where):
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"{where}: eps must be a number > 0, got {eps!r}")


def normalized_shape_tuple(normalized_shape, where) -> tuple:
    """An int or a sequence of positive ints as a tuple (LayerNorm's ``normalized_shape``)."""
    shape = (normalized_shape,) if isinstance(normalized_shape, numbers.Integral) else normalized_shape
    try:
        shape = tuple(shape)
    except TypeError:
        shape = None
    if not shape or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise ValueError(f"{where}: normalized_shape must be a positive int or a non-empty sequence of positive ints "
                         f"(the trailing dimensions to normalise), got {normalized_shape!r}")
    return tuple(int(n) for n in shape)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """PyTorch's ``F.layer_norm``: normalise over the trailing dimensions ``normalized_shape`` of each sample, then
    scale by ``weight`` and shift by ``bias`` (both of shape ``normalized_shape``)."""
    return _layer_norm(input, normalized_shape, weight, bias, eps, "layer_norm")


def _layer_norm(input, normalized_shape, weight, bias, eps, where):
    shape = normalized_shape_tuple(normalized_shape, where)
    _check_eps(eps, where)
    k = len(shape)
    if tuple(input.shape[input.ndim - k:]) != shape or input.ndim < k:
        raise ValueError(f"{where}: input of shape {tuple(input.shape)} does not end in normalized_shape {shape}; "
                         f"the last {k} dimension(s) of the input must be {shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{where}: {name} must have shape normalized_shape {shape}, got {tuple(t.shape)}")
    rows, cols = 1, 1
    for size in input.shape[:input.ndim - k]:
        rows *= size
    for size in shape:
        cols *= size
    params = [reshape(t, (cols,)) for t in (weight, bias) if t is not None]
    node = LayerNormRows(eps, weight is not None, bias is not None)
    return reshape(node.apply(reshape(input, (rows, cols)), *params), input.shape)


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """PyTorch's ``F.group_norm``: split the channels (axis 1) of ``input`` (N, C, ...) into ``num_groups`` groups,
    normalise each sample's group over its channels and positions, then scale and shift per channel (C,)."""
    return _group_norm(input, num_groups, weight, bias, eps, "group_norm")


def _group_norm(input, num_groups, weight, bias, eps, where):
    _check_eps(eps, where)
    if input.ndim < 2:
        raise ValueError(f"{where}: input must be (N, C, ...) with at least 2 dimensions, got shape "
                         f"{tuple(input.shape)}")
    n, c = input.shape[:2]
    if not isinstance(num_groups, numbers.Integral) or num_groups < 1 or c % num_groups:
        raise ValueError(f"{where}: the input of shape {tuple(input.shape)} has {c} channels (dimension 1), which "
                         f"must be divisible by num_groups = {num_groups!r}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != (c,):
            raise ValueError(f"{where}: {name} must have shape ({c},) for an input with {c} channels, got "
                             f"{tuple(t.shape)}")
    y = _normalize(input, n * num_groups, eps)
    _, shape = _channel_view(input)
    if weight is not None:
        y = mul(y, reshape(weight, shape))
    if bias is not None:
        y = add(y, reshape(bias, shape))
    return y
