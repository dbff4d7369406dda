"""Batch normalisation: per-channel statistics from the backend's fused kernel, normalisation in differentiable ops."""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.grad_mode import no_grad
from .arithmetic import add, div, mul, sub
from .elementwise import sqrt
from .shape import broadcast_to, reshape


def _channel_view(x):
    """The reduced axes (all but 1) and the shape (1, C, 1, ...) that broadcasts a per-channel vector over x."""
    return (0,) + tuple(range(2, x.ndim)), (1, x.shape[1]) + (1,) * (x.ndim - 2)


class BatchNormStats(Function):
    """Per-channel ``(mean, biased variance)`` of x over every axis but 1, by ``backend.batch_norm_stats``.

    Backward: d mean / dx = 1 / M and d var / dx = 2 (x - mean) / M (M values per channel), written with
    differentiable ops (and the saved mean, an output of this node), so derivatives of any order work.
    """

    def forward(self, backend, x):
        axes, _ = _channel_view(x)
        return backend.batch_norm_stats(x, axes)

    def backward(self, g_mean, g_var):
        x = self.inputs[0]
        _, shape = _channel_view(x)
        count = float(x.data.size // x.shape[1])
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
    return BatchNormStats().apply(x)


def _update_running(buffer, value, momentum):
    """buffer = (1 - momentum) * buffer + momentum * value, in place on the buffer's array (no graph)."""
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
            raise ValueError(f"Expected more than 1 value per channel when training, got input size "
                             f"{tuple(input.shape)}")
        mean, var = batch_norm_stats(input)
        with no_grad():
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
