"""The fused kernels, each declared once: its xp-generic reference, the ``kernels/<family>.cu`` file and CUDA entry
points that implement it, the launcher that packs its arguments and picks the launch geometry, the argument checks
that run before any work, and the dtypes the CUDA kernels cover.

Everything else is derived from ``KERNELS``: the CPU backend runs the references, the CUDA backend launches or falls
back to the reference (for dtypes or families without a kernel), warmup compiles the families, ``gpunet summary``
names where a layer's kernel runs, and the kernel parity tests and the profiler check every declared kernel. The C
argument signature of each entry point is the ``.cu`` file's own (the emulator checks every launch against it).

Which kernels a model uses is observed, not listed: inside ``observe()`` every fused-kernel call on any backend is
recorded by name.
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy

from .launchers import batchnorm as _batchnorm, conv as _conv, dropout as _dropout, embedding as _embedding
from .launchers import layernorm as _layernorm
from .launchers import optimizers as _optimizers, pool as _pool, rnn as _rnn, softmax as _softmax
from .launchers.common import RUN_REFERENCE
from .references import batchnorm, conv, dropout, embedding, erf, layernorm, optimizers, pool, rnn, softmax

__all__ = ["FusedKernel", "KERNELS", "RUN_REFERENCE", "families", "observe"]


@dataclass(frozen=True)
class FusedKernel:
    """One fused kernel: ``backend.<name>(*args)`` runs ``launcher(backend, *args)`` on a CUDA backend when the
    ``dtype_arg`` argument's dtype is in ``dtypes``, else (and on the CPU) ``reference(xp, *args)``."""

    name: str
    reference: Callable  # reference(xp, *args): xp-generic, the CPU backend's implementation
    family: str | None = None  # kernels/<family>.cu; None: the reference runs on every backend
    entry_points: tuple[str, ...] = ()  # the extern "C" kernels of <family>.cu the launcher launches
    launcher: Callable | None = None  # launcher(backend, *args); may return RUN_REFERENCE for inputs it lacks
    check: Callable | None = None  # check(*args): argument errors on a CUDA backend, before any work
    dtype_arg: str | None = None  # the argument (array, dtype or list of arrays) whose dtype picks the kernel
    dtypes: tuple[str, ...] = ("float32",)
    _dtype_position: int = field(default=-1, init=False, repr=False, compare=False)

    def __post_init__(self):
        params = list(inspect.signature(self.reference).parameters)
        if not params or params[0] != "xp":
            raise TypeError(f"fused kernel '{self.name}': its reference must take the array namespace xp first "
                            f"(an xp-generic function), got parameters ({', '.join(params)})")
        if (self.family is None) != (self.launcher is None):
            raise TypeError(f"fused kernel '{self.name}': give both family and launcher, or neither")
        if self.launcher is not None:
            if self.dtype_arg not in params[1:]:
                raise TypeError(f"fused kernel '{self.name}': dtype_arg {self.dtype_arg!r} is not a parameter of "
                                f"its reference ({', '.join(params[1:])})")
            object.__setattr__(self, "_dtype_position", params.index(self.dtype_arg) - 1)

    def launches(self, args: tuple, kwargs: dict) -> bool:
        """Whether a CUDA kernel covers these arguments' dtype."""
        if self.launcher is None:
            return False
        value = kwargs[self.dtype_arg] if self.dtype_arg in kwargs else args[self._dtype_position]
        if isinstance(value, (list, tuple)):  # a list of arrays (a multi-tensor kernel): any of a covered dtype
            return any(numpy.dtype(v.dtype).name in self.dtypes for v in value)
        dtype = value if isinstance(value, (type, numpy.dtype, str)) else value.dtype  # an array, or a dtype itself
        return numpy.dtype(dtype).name in self.dtypes


def _declare(*kernels: FusedKernel) -> dict:
    return {kernel.name: kernel for kernel in kernels}


def _cuda(name, reference_module, launcher_module, family, entry_points, dtype_arg, dtypes=("float32",)):
    """A fused kernel with a CUDA implementation: the reference and launcher of the same name, its checks."""
    return FusedKernel(name, getattr(reference_module, name), family, tuple(entry_points),
                       getattr(launcher_module, name), getattr(launcher_module, f"check_{name}", None), dtype_arg,
                       tuple(dtypes))


KERNELS: dict[str, FusedKernel] = _declare(
    _cuda("softmax", softmax, _softmax, "softmax", ("softmax_rows_f32", "softmax_cols_f32"), "x"),
    _cuda("log_softmax", softmax, _softmax, "softmax", ("log_softmax_rows_f32", "log_softmax_cols_f32"), "x"),
    _cuda("masked_softmax", softmax, _softmax, "softmax", ("masked_softmax_rows_f32",), "x"),
    _cuda("softmax_cross_entropy", softmax, _softmax, "softmax", ("softmax_xent_forward_f32",), "logits"),
    _cuda("softmax_cross_entropy_backward", softmax, _softmax, "softmax", ("softmax_xent_backward_f32",),
          "log_probs"),
    _cuda("dropout_mask", dropout, _dropout, "dropout", ("dropout_mask_f32", "dropout_mask_f64"), "dtype",
          ("float32", "float64")),
    _cuda("dropout_apply", dropout, _dropout, "dropout", ("dropout_apply_f32", "dropout_apply_f64"), "x",
          ("float32", "float64")),
    _cuda("sgd_update", optimizers, _optimizers, "optimizers", ("sgd_update_f32",), "params"),
    _cuda("adam_update", optimizers, _optimizers, "optimizers", ("adam_update_f32",), "params"),
    _cuda("rmsprop_update", optimizers, _optimizers, "optimizers", ("rmsprop_update_f32",), "params"),
    _cuda("adagrad_update", optimizers, _optimizers, "optimizers", ("adagrad_update_f32",), "params"),
    _cuda("adadelta_update", optimizers, _optimizers, "optimizers", ("adadelta_update_f32",), "params"),
    _cuda("lstm_cell", rnn, _rnn, "rnn", ("lstm_cell_forward_f32",), "gates"),
    _cuda("lstm_cell_backward", rnn, _rnn, "rnn", ("lstm_cell_backward_f32",), "gates"),
    _cuda("gru_cell", rnn, _rnn, "rnn", ("gru_cell_forward_f32",), "gi"),
    _cuda("gru_cell_backward", rnn, _rnn, "rnn", ("gru_cell_backward_f32",), "gi"),
    _cuda("max_pool2d", pool, _pool, "pool", ("max_pool2d_forward_f32", "max_pool2d_forward_i32_f32"), "x"),
    _cuda("max_pool2d_backward", pool, _pool, "pool", ("max_pool2d_backward_f32", "max_pool2d_backward_i32_f32"),
          "gy"),
    _cuda("avg_pool2d", pool, _pool, "pool", ("avg_pool2d_forward_f32", "avg_pool2d_forward_i32_f32"), "x"),
    _cuda("avg_pool2d_backward", pool, _pool, "pool", ("avg_pool2d_backward_f32", "avg_pool2d_backward_i32_f32"),
          "gy"),
    _cuda("im2col", conv, _conv, "conv", ("im2col_f32",), "x"),
    _cuda("col2im", conv, _conv, "conv", ("col2im_f32",), "cols"),
    _cuda("batch_norm_stats", batchnorm, _batchnorm, "batchnorm", ("batch_norm_stats_f32",), "x"),
    _cuda("layer_norm", layernorm, _layernorm, "layernorm", ("layer_norm_forward_f32",), "x"),
    _cuda("layer_norm_backward", layernorm, _layernorm, "layernorm",
          ("layer_norm_backward_f32", "layer_norm_param_grad_f32"), "x"),
    _cuda("embedding_backward", embedding, _embedding, "embedding",
          ("embedding_backward_f32", "embedding_backward_f64"), "gy", ("float32", "float64")),
    FusedKernel("lstm_layer", rnn.lstm_layer),  # where the cell kernels do not launch: the CPU, float64
    FusedKernel("lstm_layer_backward", rnn.lstm_layer_backward),
    FusedKernel("erf", erf.erf),
    FusedKernel("max_pool2d_gather", pool.max_pool2d_gather),
)


def families() -> tuple:
    """The kernel families with a ``kernels/<family>.cu``, sorted."""
    return tuple(sorted({k.family for k in KERNELS.values() if k.family is not None}))


_observers: list = []


@contextlib.contextmanager
def observe(names: list | None = None):
    """Append to ``names`` (a new list by default, yielded) the name of every fused kernel called on any backend
    inside the block, in call order."""
    names = [] if names is None else names
    _observers.append(names)
    try:
        yield names
    finally:
        _observers.remove(names)


class FusedKernels:
    """Base of the backends: ``backend.<name>`` is fused kernel ``name`` of ``KERNELS``, bound by the backend's
    ``_bind(kernel)`` on first use and recorded by ``observe()`` on every call."""

    def __getattr__(self, name):
        kernel = KERNELS.get(name) if not name.startswith("_") else None
        if kernel is None:
            raise AttributeError(f"{type(self).__name__} has no attribute or fused kernel '{name}'")
        run = self._bind(kernel)

        def call(*args, **kwargs):
            for names in _observers:
                names.append(name)
            return run(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        call.__doc__ = kernel.reference.__doc__
        self.__dict__[name] = call  # later lookups skip __getattr__
        return call

    def _bind(self, kernel: FusedKernel) -> Callable:
        raise NotImplementedError
