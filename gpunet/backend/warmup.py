"""Which fused kernels a model, loss and optimizer use, and compiling their kernel files ahead of training.

``KERNELS_USED`` is the one table from layer, loss and optimizer class names (a subclass inherits its base's entry)
to the fused kernels (docs/internals.md) their forward and backward call, the forward's first (``gpunet summary``
shows it); a module adding such a class adds one line here. ``warmup(backend, kernels)`` compiles the kernel files those kernels live in and times each.
"""
from __future__ import annotations

import time

_POOL_MAX = ("max_pool2d", "max_pool2d_backward", "max_pool2d_gather")
_POOL_AVG = ("avg_pool2d", "avg_pool2d_backward")
_CONV = ("im2col", "col2im")
_LSTM = ("lstm_cell", "lstm_cell_backward")
_GRU = ("gru_cell", "gru_cell_backward")
_BATCH_NORM = ("batch_norm_stats",)

KERNELS_USED: dict[str, tuple[str, ...]] = {
    # layers (gpunet.nn)
    "Softmax": ("softmax",), "LogSoftmax": ("log_softmax",), "GELU": ("erf",), "Dropout": ("dropout_mask",),
    "MaxPool1d": _POOL_MAX, "MaxPool2d": _POOL_MAX, "AvgPool1d": _POOL_AVG, "AvgPool2d": _POOL_AVG,
    "Conv1d": _CONV, "Conv2d": _CONV, "ConvTranspose2d": _CONV[::-1],
    "LSTM": _LSTM, "LSTMCell": _LSTM, "GRU": _GRU, "GRUCell": _GRU,
    "BatchNorm1d": _BATCH_NORM, "BatchNorm2d": _BATCH_NORM,
    # losses
    "CrossEntropyLoss": ("softmax_cross_entropy", "softmax_cross_entropy_backward", "log_softmax"),
    # optimizers (gpunet.optim)
    "SGD": ("sgd_update",), "Adam": ("adam_update",), "AdamW": ("adam_update",),
}


def _kernels_of(obj) -> tuple:
    for klass in type(obj).__mro__:
        if klass.__name__ in KERNELS_USED:
            return KERNELS_USED[klass.__name__]
    return ()


def forward_kernel(obj) -> str | None:
    """The fused kernel the forward pass of ``obj`` (a layer, loss or optimizer step) runs, or None."""
    kernels = _kernels_of(obj)
    return kernels[0] if kernels else None


def kernels_used(model=None, loss=None, optimizer=None) -> tuple:
    """The fused kernels that training ``model`` (every submodule) with ``loss`` and ``optimizer`` calls, in first-use
    order; any of the three may be None."""
    objects = list(model.modules()) if model is not None else []
    objects += [obj for obj in (loss, optimizer) if obj is not None]
    return tuple(dict.fromkeys(kernel for obj in objects for kernel in _kernels_of(obj)))


def warmup(backend, kernels) -> list:
    """Compile the kernel files of ``kernels`` on ``backend``: one ``(family, kernels, seconds)`` per family, in
    first-use order, then ``(None, kernels, None)`` for the kernels without a CUDA file (they run their xp
    reference); empty on the CPU backend, which has nothing to compile."""
    from .cupy_backend import CUDA_KERNELS

    if backend.name != "cupy":
        return []
    families: dict = {}
    for kernel in kernels:
        families.setdefault(CUDA_KERNELS.get(kernel), []).append(kernel)
    results = []
    for family, names in families.items():
        if family is None:
            continue
        start = time.perf_counter()
        backend.compile(family)
        results.append((family, tuple(names), time.perf_counter() - start))
    if None in families:
        results.append((None, tuple(families[None]), None))
    return results
