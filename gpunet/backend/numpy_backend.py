"""The CPU backend: NumPy arrays, with every fused kernel run by its xp reference (``gpunet.backend.registry``)."""
from __future__ import annotations

import contextlib
import functools

import numpy

from .device import Device
from .registry import FusedKernels


_NOTHING = contextlib.nullcontext()


class NumpyBackend(FusedKernels):
    """Array work on the CPU through NumPy; every fused kernel here is the reference for the CUDA one."""

    name = "numpy"
    xp = numpy
    implementation = "NumPy"
    activates_device = False  # ``activate()`` does nothing: there is no current device to switch on the CPU

    def __init__(self):
        self.device = Device("cpu")

    def activate(self):
        """Nothing to make current on the CPU (the CUDA backend's ``activate`` makes its device current)."""
        return _NOTHING

    def use(self) -> None:
        """Nothing to make current on the CPU."""

    def asarray(self, data, dtype=None):
        return numpy.asarray(data, dtype=dtype)

    def to_numpy(self, array):
        return numpy.array(array, copy=True)

    def __deepcopy__(self, memo):
        return self  # one backend per device: copied tensors must share it

    def __reduce__(self):
        from . import get_backend

        return get_backend, (str(self.device),)

    def _bind(self, kernel):
        return functools.partial(kernel.reference, numpy)
