"""Batch normalisation layers with PyTorch's semantics: BatchNorm1d (N, C) / (N, C, L), BatchNorm2d (N, C, H, W), and
SyncBatchNorm, whose training statistics are those of the global batch over every rank of a data-parallel run."""
from __future__ import annotations

import copy

import numpy

from .. import backend as _backend
from ..autograd.function import Function
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..backend import collectives
from ..kinds import Arguments, Bool, Float, Int, Optional, checked
from ..ops.normalization import BatchStatisticsError, batch_norm
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
    arguments = Arguments(num_features=Int(ge=1), eps=Float(gt=0), momentum=Optional(Float(ge=0, le=1)), affine=Bool(),
                          track_running_stats=Bool())

    @checked
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        name = type(self).__name__
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


_COUNT, _SUM, _SQUARES, _GRADIENT = 1, 2, 3, 4  # SyncBatchNorm's reductions (kinds of collectives.all_reduce)


class _SumOverRanks(Function):
    """The sum of an array over the ranks of ``group`` (every rank gets it), reduction ``kind`` of layer ``key``.
    Each rank's loss is the mean over its ``share`` of the batch and the ranks' gradients are later combined
    weighted by their shares (``DataParallel``), so the backward sums the incoming gradients weighted by the shares
    and divides by this rank's share: the combined gradient is then the one of the global batch's mean loss."""

    def __init__(self, group, share: int, key: int, kind: int):
        self.group, self.share, self.key, self.kind = group, share, key, kind

    def forward(self, backend, a):
        total = collectives.all_reduce(self.group, backend.to_numpy(a), self.key, self.kind)
        return backend.xp.asarray(total.reshape(a.shape).astype(a.dtype))

    def backward(self, g):
        reduce = _SumOverRanks(self.group, self.share, self.key, _GRADIENT)
        if self.share == 0:  # this rank's loss does not depend on the statistics: it only adds the others' part
            return reduce.apply(g * 0.0) * 0.0
        return reduce.apply(g * float(self.share)) / float(self.share)


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation whose training statistics are over the global batch: every rank's share (PyTorch's
    ``SyncBatchNorm``). Per-channel sums are all-reduced over the ranks (the mean first, then the centred squares)
    in the forward, and the gradients through them in the backward. A rank whose share is empty, which runs no
    forward, adds zeros to them and keeps the same running statistics (``gpunet.backend.collectives``). Outside a
    data-parallel run, or in eval, it is a ``BatchNorm`` of its input's dimensions (2-5).
    ``convert_sync_batchnorm(module)`` replaces every ``BatchNorm1d``/``2d`` of a model by one (same parameters and
    running statistics)."""

    _expected_dims = (2, 3, 4, 5)
    reduces_across_ranks = True  # a data-parallel update settles its reductions (gpunet.backend.collectives)

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group  # None: the data-parallel run's group (gpunet.backend.collectives)
        self._key = collectives.register(self)
        self._served: list = []  # a serving rank's count and mean of the current forward

    def __deepcopy__(self, memo):
        """A copy with a key of its own (copies are made in the same order on every rank)."""
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        copied.__dict__.update({name: copy.deepcopy(value, memo) for name, value in self.__dict__.items()})
        copied._key = collectives.register(copied)
        return copied

    def forward(self, x):
        group = self.process_group or collectives.group()
        if not self.training or group is None or group.size == 1:
            return super().forward(x)
        self._check_input_dim(x)
        axes = (0, *range(2, x.ndim))
        shape = (1, self.num_features) + (1,) * (x.ndim - 2)
        share = x.shape[0]
        local = x.data.size // self.num_features
        count = float(collectives.all_reduce(group, [local], self._key, _COUNT)[0])
        if count < 2:
            raise BatchStatisticsError(f"SyncBatchNorm({self.num_features}): the global batch has {count:g} "
                                       "value(s) per channel; training needs at least 2")
        mean = _SumOverRanks(group, share, self._key, _SUM).apply(x.sum(axes)) / count
        centred = x - mean.reshape(shape)
        var = _SumOverRanks(group, share, self._key, _SQUARES).apply((centred * centred).sum(axes)) / count
        y = centred / (var.reshape(shape) + self.eps).sqrt()
        if self.weight is not None:
            y = y * self.weight.reshape(shape)
        if self.bias is not None:
            y = y + self.bias.reshape(shape)
        self._track(mean.data, var.data, count)
        return y

    def served(self, kind: int, total) -> None:
        """This rank served a reduction of the others' forward (its share is empty): follow their running
        statistics."""
        if kind == _COUNT:
            self._served = [float(total[0])]
        elif kind == _SUM:
            self._served.append(total / self._served[0])
        elif kind == _SQUARES:
            count, mean = self._served
            xp = self.running_mean.backend.xp if self.running_mean is not None else numpy
            self._track(xp.asarray(mean), xp.asarray(total / count), count)

    def _track(self, mean, var, count: float) -> None:
        """Move the running statistics toward the global batch's ``mean`` and biased ``var`` over ``count`` values
        per channel (the unbiased factor is the global count's)."""
        if not self.track_running_stats:
            return
        with no_grad():
            self.num_batches_tracked.data += 1
            factor = 1.0 / float(self.num_batches_tracked.data) if self.momentum is None else self.momentum
            dtype = self.running_mean.data.dtype
            self.running_mean.data[...] = ((1 - factor) * self.running_mean.data + factor * mean).astype(dtype)
            self.running_var.data[...] = ((1 - factor) * self.running_var.data
                                          + factor * var * (count / (count - 1))).astype(dtype)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """``module`` with every ``BatchNorm1d``/``BatchNorm2d`` in it replaced by a ``SyncBatchNorm`` holding the
        same parameters and buffers (PyTorch's classmethod); ``module`` itself is returned converted when it is one."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            backend = (module.weight if module.weight is not None else module.running_mean or module).backend \
                if (module.weight is not None or module.running_mean is not None) else None
            converted = cls(module.num_features, module.eps, module.momentum, module.affine,
                            module.track_running_stats, process_group,
                            device=None if backend is None else backend.device)
            for name in ("weight", "bias"):
                if name in module._parameters:
                    converted._parameters[name] = module._parameters[name]
            for name, buffer in module._buffers.items():
                converted._buffers[name] = buffer
            converted.training = module.training
            return converted
        for name, child in list(module._modules.items()):
            if child is not None:
                module._modules[name] = cls.convert_sync_batchnorm(child, process_group)
        return module
