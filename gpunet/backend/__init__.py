"""Backends: where array work runs. NumPy on the CPU, CuPy (with gpunet's CUDA kernels) on NVIDIA GPUs.

``current()`` is the backend new tensors go to; ``set_device`` (or the ``GPUNET_DEVICE`` environment variable)
chooses it. Layers and ops never import NumPy or CuPy for array math: they use ``backend.xp`` and the backend's
named fused kernels.
"""
from __future__ import annotations

import os
import sys

from .device import Device, DeviceError, parse_device
from .kernel_source import kernel_dir
from .numpy_backend import NumpyBackend

__all__ = ["Device", "DeviceError", "current", "get_backend", "set_device", "cuda_unavailable_reason", "kernel_dir"]

_backends: dict = {}
_current = None


def cuda_unavailable_reason(index: int = 0):
    """Why CUDA device ``index`` cannot be used here, or None when it can."""
    try:
        import cupy
    except ImportError:
        return 'CuPy is not installed: pip install "gpunet[cuda]"'
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CuPy raises CUDARuntimeError subclasses that vary by version
        return f"CuPy cannot reach a CUDA driver ({type(exc).__name__}: {exc}); install an NVIDIA driver"
    if count == 0:
        return "the CUDA driver sees no GPU"
    if index >= count:
        return f"cuda:{index} does not exist: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
    return None


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
    if device.index != 0:
        raise DeviceError(f"the emulated device has one GPU: use 'cuda-emu' (or 'cuda-emu:0'), not '{device}'")
    from .cupy_backend import emulated_backend

    return emulated_backend()


def set_device(spec, announce: bool = True) -> Device:
    """Make ``spec`` ('cpu', 'cuda', 'cuda:N', 'cuda-emu' or 'auto') the device new tensors go to; ``announce``: say
    on stderr what 'auto' chose."""
    global _current
    if isinstance(spec, str) and spec.strip().lower() == "auto":
        reason = cuda_unavailable_reason(0)
        spec = "cuda:0" if reason is None else "cpu"
        why = "a CUDA device is visible" if reason is None else reason
        if announce:
            print(f"gpunet: device auto -> {spec} ({why})", file=sys.stderr)
    _current = get_backend(spec)
    return _current.device


def current():
    """The backend new tensors are created on (from GPUNET_DEVICE on first use, else the CPU)."""
    if _current is None:
        set_device(os.environ.get("GPUNET_DEVICE", "cpu") or "cpu")
    return _current
