"""Batch normalisation layers with PyTorch's semantics: BatchNorm1d (N, C) / (N, C, L) and BatchNorm2d (N, C, H, W)."""
from __future__ import annotations

import numpy

from .. import backend as _backend
from ..autograd.tensor import Tensor
from ..ops.normalization import batch_norm
from . import init
from .module import Module
from .parameter import Parameter


class _BatchNorm(Module):
    """Normalise each channel by the batch statistics (training) or the running ones (eval), then scale and shift.

    In training, ``running_mean``/``running_var`` move toward the batch mean and the unbiased batch variance:
    ``running = (1 - momentum) * running + momentum * batch``, or a cumulative average when ``momentum`` is None.
    ``num_batches_tracked`` counts training batches. With ``track_running_stats=False`` the batch statistics
    are used in eval too. ``weight`` starts at 1, ``bias`` at 0 (``affine=False``: neither exists; ``bias=False``:
    a scale without a shift, as in PyTorch 2.13).
    """

    _expected_dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        name = type(self).__name__
        if not isinstance(num_features, int) or isinstance(num_features, bool) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive integer, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None (cumulative average), got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        backend = _backend.current() if device is None else _backend.get_backend(device)
        dtype = numpy.dtype(numpy.float32 if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"{name}: dtype must be a floating-point type, got {dtype}")
        xp = backend.xp
        if affine:
            self.weight = Parameter(Tensor(xp.ones((num_features,), dtype=dtype), backend))
            if bias:
                self.bias = Parameter(Tensor(xp.zeros((num_features,), dtype=dtype), backend))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(xp.zeros((num_features,), dtype=dtype), backend))
            self.register_buffer("running_var", Tensor(xp.ones((num_features,), dtype=dtype), backend))
            self.register_buffer("num_batches_tracked", Tensor(xp.zeros((), dtype=numpy.int64), backend))
        else:
            for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(buffer, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            if self.bias is not None:
                init.zeros_(self.bias)

    def _check_input_dim(self, x) -> None:
        if x.ndim not in self._expected_dims:
            dims = " or ".join(f"{d}D" for d in self._expected_dims)
            raise ValueError(f"{type(self).__name__}: expected {dims} input (got {x.ndim}D input of shape "
                             f"{tuple(x.shape)})")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): the input has {x.shape[1]} channels "
                             f"(dimension 1 of shape {tuple(x.shape)}); expected {self.num_features}")

    def forward(self, x):
        self._check_input_dim(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            counter = self.num_batches_tracked
            with counter.backend.activate():  # on the buffer's device, whichever device is current
                counter.data += 1
                if self.momentum is None:  # cumulative moving average, 1 / batches: on a CUDA device it stays there
                    factor = (1.0 / float(counter.data) if counter.device.kind == "cpu"
                              else (1.0 / counter.data).astype(self.running_mean.dtype))
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        tracked = not self.training or self.track_running_stats
        return batch_norm(x, self.running_mean if tracked else None, self.running_var if tracked else None,
                          self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs (statistics over N, or N and L, per channel)."""

    _expected_dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) inputs (statistics over N, H and W per channel)."""

    _expected_dims = (4,)
