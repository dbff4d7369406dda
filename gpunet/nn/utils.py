"""Gradient clipping: ``clip_grad_norm_`` and ``clip_grad_value_`` (PyTorch's ``torch.nn.utils`` functions)."""
from __future__ import annotations

import math

from .. import ops
from ..autograd.tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters, caller):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    backends = {id(g.backend): g.backend for g in grads}
    if len(backends) > 1:
        devices = sorted(str(b.device) for b in backends.values())
        raise RuntimeError(f"{caller}: gradients live on several devices ({', '.join(devices)}); clip them per device")
    return grads


def _p_norm(xp, vector, p: float):
    """The ``p``-norm of a 1-D array with elementwise operations only (the CUDA emulator has no ``linalg.norm``)."""
    magnitudes = xp.abs(vector)
    if not magnitudes.size:
        return xp.zeros((), magnitudes.dtype)
    if p == math.inf:
        return magnitudes.max()
    if p == 2.0:
        return xp.sqrt((magnitudes * magnitudes).sum())
    return (magnitudes ** p).sum() ** (1.0 / p)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients in place so that their joint ``norm_type``-norm (all gradients as one vector) is at most
    ``max_norm``; returns that norm before clipping, as a tensor. ``norm_type`` may be ``inf`` (largest element)."""
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 or inf, got {norm_type!r}")
    grads = _grads(parameters, "clip_grad_norm_")
    if not grads:
        return ops.tensor(0.0)
    backend = grads[0].backend
    xp, dtype = backend.xp, grads[0].dtype
    with backend.activate():  # on the gradients' device, whichever device is current
        norms = xp.stack([_p_norm(xp, g.data.reshape(-1), norm_type).astype(dtype) for g in grads])
        total = _p_norm(xp, norms, norm_type)
        if error_if_nonfinite and not bool(xp.isfinite(total)):  # a wait for the device, asked for
            raise RuntimeError(
                f"clip_grad_norm_: the total {norm_type:g}-norm of the gradients is {float(total)}, so they cannot be "
                f"clipped; pass error_if_nonfinite=False to clip anyway (the result is then non-finite too)"
            )
        coef = xp.minimum(max_norm / (total + 1e-6), 1.0).astype(dtype)
        for g in grads:
            g.data = g.data * coef.astype(g.dtype, copy=False)
    return Tensor(xp.asarray(total), backend)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to ``[-clip_value, clip_value]`` in place."""
    clip_value = float(clip_value)
    if math.isnan(clip_value) or clip_value < 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value!r}")
    for g in _grads(parameters, "clip_grad_value_"):
        g.data = g.backend.xp.clip(g.data, -clip_value, clip_value)
