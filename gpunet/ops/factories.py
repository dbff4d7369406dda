"""New tensors from shapes: zeros, ones, full, arange, eye, and random ones from gpunet's generator."""
from __future__ import annotations

import numbers

import numpy

from .. import backend as _backend
from .. import random as _random
from ..autograd.tensor import Tensor


def _shape(size):
    if len(size) == 1 and not isinstance(size[0], numbers.Integral):
        size = tuple(size[0])
    return tuple(int(n) for n in size)


def _make(host_or_maker, dtype, device, requires_grad):
    backend = _backend.current() if device is None else _backend.get_backend(device)
    array = host_or_maker(backend.xp) if callable(host_or_maker) else backend.asarray(host_or_maker)
    if dtype is not None:
        array = array.astype(numpy.dtype(dtype), copy=False)
    return Tensor(array, backend, requires_grad)


def zeros(*size, dtype=numpy.float32, device=None, requires_grad=False):
    shape = _shape(size)
    return _make(lambda xp: xp.zeros(shape, dtype=dtype), None, device, requires_grad)


def ones(*size, dtype=numpy.float32, device=None, requires_grad=False):
    shape = _shape(size)
    return _make(lambda xp: xp.ones(shape, dtype=dtype), None, device, requires_grad)


def full(size, fill_value, dtype=numpy.float32, device=None, requires_grad=False):
    shape = _shape((size,))
    return _make(lambda xp: xp.full(shape, fill_value, dtype=dtype), None, device, requires_grad)


def empty(*size, dtype=numpy.float32, device=None, requires_grad=False):
    shape = _shape(size)
    return _make(lambda xp: xp.empty(shape, dtype=dtype), None, device, requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        integral = all(isinstance(v, numbers.Integral) for v in (start, end, step))
        dtype = numpy.int64 if integral else numpy.float32
    return _make(lambda xp: xp.arange(start, end, step, dtype=dtype), None, device, requires_grad)


def linspace(start, end, steps, dtype=numpy.float32, device=None, requires_grad=False):
    return _make(lambda xp: xp.linspace(start, end, steps, dtype=dtype), None, device, requires_grad)


def eye(n, m=None, dtype=numpy.float32, device=None, requires_grad=False):
    return _make(lambda xp: xp.eye(n, m, dtype=dtype), None, device, requires_grad)


def rand(*size, dtype=numpy.float32, device=None, requires_grad=False):
    """Uniform on [0, 1), drawn from gpunet's generator."""
    return _make(_random.generator().random(_shape(size)), dtype, device, requires_grad)


def randn(*size, dtype=numpy.float32, device=None, requires_grad=False):
    """Standard normal, drawn from gpunet's generator."""
    return _make(_random.generator().standard_normal(_shape(size)), dtype, device, requires_grad)


def randint(low, high=None, size=(), dtype=numpy.int64, device=None):
    """Integers uniform on [low, high), drawn from gpunet's generator."""
    if high is None:
        low, high = 0, low
    return _make(_random.generator().integers(low, high, size=_shape((size,))), dtype, device, False)


def rand_like(x, dtype=None, requires_grad=False):
    return rand(x.shape, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad)


def randn_like(x, dtype=None, requires_grad=False):
    return randn(x.shape, dtype=dtype or x.dtype, device=x.device, requires_grad=requires_grad)
