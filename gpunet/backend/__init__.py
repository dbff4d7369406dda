"""Backends: where array work runs. NumPy on the CPU, CuPy (with gpunet's CUDA kernels) on NVIDIA GPUs.

``current()`` is the backend new tensors go to; ``set_device`` (or the ``GPUNET_DEVICE`` environment variable)
chooses it. Layers and ops never import NumPy or CuPy for array math: they use ``backend.xp`` and the backend's
named fused kernels.
"""
from __future__ import annotations

import os
import sys

from .device import Device, DeviceError, auto_device, cuda_unavailable_reason, parse_device
from .kernel_source import kernel_dir
from .numpy_backend import NumpyBackend

__all__ = ["Device", "DeviceError", "auto_device", "current", "get_backend", "set_device", "cuda_unavailable_reason",
           "kernel_dir"]

_backends: dict = {}
_current = None


def get_backend(device) -> object:
    """The backend for a device ('cpu', 'cuda:N', 'cuda-emu' or a Device); created once and reused."""
    device = parse_device(device)
    backend = _backends.get(device)
    if backend is None:
        backend = _backends[device] = _create(device)
    return backend


def _create(device: Device):
    if device.kind == "cpu":
        return NumpyBackend()
    if device.kind == "cuda":
        reason = cuda_unavailable_reason(device.index)
        if reason is not None:
            raise DeviceError(f"cannot use device '{device}': {reason}")
        import cupy

        from .cupy_backend import CupyBackend

        return CupyBackend(device, cupy)
    from .cupy_backend import emulated_backend
    from .emulated.cupy_standin import DEVICE_COUNT

    if device.index >= DEVICE_COUNT:
        raise DeviceError(f"'{device}' does not exist: the emulated CUDA runtime has {DEVICE_COUNT} devices, "
                          f"cuda-emu:0 to cuda-emu:{DEVICE_COUNT - 1} (GPUNET_CUDA_EMU_DEVICES sets how many)")
    return emulated_backend(device.index)


def set_device(spec, announce: bool = True) -> Device:
    """Make ``spec`` ('cpu', 'cuda', 'cuda:N', 'cuda-emu[:N]' or 'auto') the device new tensors go to; ``announce``: say
    on stderr what 'auto' chose."""
    global _current
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        spec, why = auto_device()
        if announce:
            print(f"gpunet: device auto -> {spec} ({why})", file=sys.stderr)
    _current = get_backend(spec)
    _current.use()  # CuPy allocates and launches on its current device: make it this one
    return _current.device


def current():
    """The backend new tensors are created on (from GPUNET_DEVICE on first use, else the CPU)."""
    if _current is None:
        set_device(os.environ.get("GPUNET_DEVICE", "cpu") or "cpu")
    return _current
