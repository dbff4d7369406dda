"""Making tensors: from Python data and arrays, constants shaped like other tensors, dtype casts, device moves."""
from __future__ import annotations

import numbers

import numpy

from .. import backend as _backend
from ..autograd.function import Function
from ..autograd.tensor import Tensor


def default_dtype_for(data):
    """PyTorch's choice for Python data: float32 for floats, int64 for ints, bool for bools."""
    probe = numpy.asarray(data)
    if probe.dtype.kind == "f" and not isinstance(data, numpy.ndarray) and not isinstance(data, numpy.generic):
        return numpy.dtype(numpy.float32)
    if probe.dtype.kind in "iu" and not isinstance(data, (numpy.ndarray, numpy.generic)):
        return numpy.dtype(numpy.int64)
    return probe.dtype


def _check_numeric(data):
    """Refuse data that is not numbers (strings, None, arbitrary objects), as PyTorch does, before NumPy casts it."""
    try:
        kind = numpy.asarray(data).dtype.kind
    except ValueError as exc:  # ragged nested lists
        raise ValueError(f"gpunet.tensor: the data is not a rectangular array of numbers: {exc}") from None
    if kind not in "biufc":
        values = numpy.asarray(data, dtype=object).ravel()
        bad = [v for v in values if not isinstance(v, (numbers.Number, numpy.generic))][:1]
        got = f"{type(bad[0]).__name__} {bad[0]!r}" if bad else f"dtype {numpy.asarray(data).dtype}"
        raise TypeError(f"gpunet.tensor: data must be numbers (bool, int or float), got {got}; convert it first "
                        "(e.g. float(s) for numeric strings)")


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new leaf tensor holding a copy of ``data`` (Python numbers, nested lists, NumPy arrays or a Tensor)."""
    backend = _backend.current() if device is None else _backend.get_backend(device)
    if isinstance(data, Tensor):
        data = data.numpy()
    elif not isinstance(data, numpy.ndarray) and hasattr(data, "__cuda_array_interface__"):
        data = backend.to_numpy(data)
    _check_numeric(data)
    dtype = default_dtype_for(data) if dtype is None else numpy.dtype(dtype)
    if requires_grad and dtype.kind not in "fc":
        raise TypeError(f"only floating-point tensors can require gradients; got dtype {dtype}")
    array = backend.asarray(numpy.array(data, dtype=dtype, copy=True))
    return Tensor(array, backend, bool(requires_grad))


def as_tensor(value, like):
    """``value`` as a tensor on ``like``'s device; Python numbers take ``like``'s float dtype (as in PyTorch)."""
    if isinstance(value, Tensor):
        return value
    backend = like.backend
    if type(value) is float and like.dtype.kind == "f":
        return Tensor(backend.xp.asarray(value, dtype=like.dtype), backend)
    if isinstance(value, numbers.Number):  # NumPy scalars too: PyTorch treats them as Python numbers
        if isinstance(value, bool):
            dtype = numpy.dtype(bool)
        elif like.dtype.kind == "f":
            dtype = like.dtype
        elif isinstance(value, numbers.Integral):
            dtype = like.dtype if like.dtype.kind in "iu" else numpy.dtype(numpy.int64)
        else:
            dtype = numpy.dtype(numpy.float32)
        return Tensor(backend.xp.asarray(value, dtype=dtype), backend)
    return Tensor(backend.asarray(value), backend)


def zeros_like(x, dtype=None):
    return Tensor(x.backend.xp.zeros(x.shape, dtype=dtype or x.dtype), x.backend)


def ones_like(x, dtype=None):
    return Tensor(x.backend.xp.ones(x.shape, dtype=dtype or x.dtype), x.backend)


def full_like(x, value, dtype=None):
    return Tensor(x.backend.xp.full(x.shape, value, dtype=dtype or x.dtype), x.backend)


class Cast(Function):
    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, backend, x):
        self.input_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return cast(gy, self.input_dtype)


def cast(x, dtype):
    """``x`` converted to ``dtype`` (differentiable between floating dtypes)."""
    return Cast(numpy.dtype(dtype)).apply(x)


class Transfer(Function):
    def __init__(self, target):
        self.output_backend = target

    def forward(self, backend, x):
        self.source = backend
        return self.output_backend.asarray(backend.to_numpy(x))

    def backward(self, gy):
        return transfer(gy, self.source)


def transfer(x, target_backend):
    """``x`` copied to another backend's device (differentiable: gradients travel back)."""
    return Transfer(target_backend).apply(x)
