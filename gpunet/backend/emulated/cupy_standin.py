"""A CPU stand-in for the part of CuPy that gpunet's CuPy backend uses: the emulated device "cuda-emu".

``CupyBackend(Device("cuda-emu"), cupy_standin)`` runs the real backend code against this module:

- the array namespace is NumPy's, on ``DeviceArray`` "device" arrays (NumPy memory that refuses to be mixed with
  host NumPy arrays, as CuPy arrays do); when CuPy is installed, a name that CuPy's namespace lacks is refused, so
  code that works here does not fail for want of a function on a GPU;
- ``asnumpy(array)`` copies to the host;
- ``RawModule(code=..., options=(...))`` keeps the CUDA source and compiles it with the CUDA emulator on
  ``compile()`` or the first ``get_function(name)`` (once per source and include path); the kernel returned is
  called as ``kernel(grid, block, args, shared_mem=0)``: ``grid``, ``block`` and ``args`` must be tuples, as CuPy
  requires, and every argument is checked against the kernel's C signature by CuPy's passing rules;
- ``cuda.Device(i)`` (a context manager, with ``pci_bus_id``), ``cuda.runtime.getDeviceCount()`` and
  ``cuda.runtime.getDeviceProperties(i)`` (the keys gpunet reads), ``get_default_memory_pool()`` with
  ``used_bytes()``/``total_bytes()``/``free_all_blocks()``.

The stand-in has one device (index 0) and no memory pool of its own: NumPy allocates, so the pool reports 0 bytes.
``compilations`` counts the sources compiled so far (for tests of lazy compilation).
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import types
from pathlib import Path

import numpy

from .build import cache_dir
from .device_array import DeviceArray, check_no_host, to_device
from .errors import CudaEmuError
from .module import MAX_SHARED_MEM, Module

__all__ = ["RawModule", "asnumpy", "cuda", "get_default_memory_pool", "compilations"]

DEVICE_NAME = "gpunet CUDA emulator (CPU)"
MAX_GRID_SIZE = (2**31 - 1, 65535, 65535)
compilations = 0
_modules: dict[str, Module] = {}


@functools.cache
def _cupy_names():
    """The public names of real CuPy's namespace, or None when CuPy is not installed."""
    try:
        import cupy
    except ImportError:
        return None
    return frozenset(dir(cupy))


_TRANSFERS = frozenset({"asarray", "array", "asanyarray", "ascontiguousarray"})  # host data -> device copy


def __getattr__(name):
    """Array-namespace names come from NumPy (only those real CuPy also has, when CuPy is installed), with
    ``ndarray`` the emulated device's array and functions returning device arrays."""
    names = _cupy_names()
    if name.startswith("__") or (names is not None and name not in names):
        raise AttributeError(f"the CuPy stand-in has no '{name}' (CuPy's namespace has none either)")
    value = DeviceArray if name == "ndarray" else getattr(numpy, name)
    if callable(value) and not isinstance(value, (type, numpy.ufunc)):  # ufuncs dispatch by DeviceArray itself
        value = _device_function(name, value)
    globals()[name] = value  # later lookups are plain module attributes
    return value


def _device_function(name, function):
    """``function`` returning device arrays; as in CuPy, only the transfer functions accept host arrays."""
    transfer = name in _TRANSFERS

    @functools.wraps(function)
    def device_function(*args, **kwargs):
        if not transfer:
            check_no_host(f"cupy.{name}", (args, kwargs))
            return to_device(function(*args, **kwargs))
        result = function(*args, **kwargs)
        source = args[0] if args else kwargs.get("a", kwargs.get("obj"))
        if type(source) is numpy.ndarray and numpy.shares_memory(result, source):
            result = result.copy()  # device memory is never the host array's memory
        return to_device(result)

    return device_function


def asnumpy(array):
    """A host copy of a "device" array (``cupy.asnumpy``)."""
    return numpy.array(array, copy=True)


class _MemoryPool:
    """``cupy.cuda.MemoryPool``'s counters; NumPy allocates here, so nothing is pooled."""

    def used_bytes(self) -> int:
        return 0

    def total_bytes(self) -> int:
        return 0

    def free_all_blocks(self) -> None:
        return None


_pool = _MemoryPool()


def get_default_memory_pool():
    return _pool


class Device:
    """``cupy.cuda.Device``: only device 0 exists; usable as a context manager."""

    def __init__(self, device=None):
        index = 0 if device is None else int(device)
        if index != 0:
            raise CudaEmuError(f"the emulated CUDA runtime has one device (0); device {index} does not exist")
        self.id = index
        self.pci_bus_id = "0000:00:00.0"

    def use(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _get_device_count() -> int:
    return 1


def _get_device_properties(index: int) -> dict:
    Device(index)
    return {"name": DEVICE_NAME.encode(), "maxGridSize": MAX_GRID_SIZE, "maxThreadsPerBlock": 1024,
            "sharedMemPerBlock": MAX_SHARED_MEM, "major": 8, "minor": 0}


cuda = types.SimpleNamespace(
    Device=Device,
    runtime=types.SimpleNamespace(getDeviceCount=_get_device_count, getDeviceProperties=_get_device_properties),
)


def _include_dirs(options) -> tuple[Path, ...]:
    """The include directories of NVRTC options ``-I<dir>`` / ``--include-path=<dir>``; other options are refused."""
    dirs = []
    for option in options:
        match = re.fullmatch(r"(?:-I|--include-path=)(.+)", option)
        if match is None:
            raise CudaEmuError(f"the CuPy stand-in does not support the compiler option {option!r}")
        dirs.append(Path(match.group(1)))
    return tuple(dirs)


class _Kernel:
    """``cupy.RawKernel`` as returned by ``RawModule.get_function``."""

    def __init__(self, emulated):
        self._emulated = emulated
        self.name = emulated.name

    def __call__(self, grid, block, args, *, shared_mem=0):
        for what, value in (("grid", grid), ("block", block), ("args", args)):
            if not isinstance(value, tuple):
                raise CudaEmuError(f"kernel '{self.name}': {what} must be a tuple (as CuPy requires), got {value!r}")
        for value in args:
            if isinstance(value, numpy.ndarray) and not isinstance(value, DeviceArray):
                raise CudaEmuError(f"kernel '{self.name}': got a host NumPy array (shape {value.shape}); CuPy passes "
                                   "only device arrays: move it with cupy.asarray")
        self._emulated(grid, block, args, shared_mem=shared_mem)


class RawModule:
    """``cupy.RawModule(code=..., options=...)``: CUDA source compiled on first use."""

    def __init__(self, code=None, *, options=(), name_expressions=None):
        if not isinstance(code, str):
            raise CudaEmuError("the CuPy stand-in's RawModule needs the CUDA source as code=<str>")
        if name_expressions is not None:
            raise CudaEmuError("the CuPy stand-in supports extern \"C\" kernels only (name_expressions=None)")
        self.code = code
        self.options = tuple(options)
        self._include_dirs = _include_dirs(self.options)
        self._module = None

    def compile(self) -> None:
        if self._module is None:
            self._module = _compile(self.code, self._include_dirs)

    def get_function(self, name: str) -> _Kernel:
        self.compile()
        return _Kernel(self._module.get_function(name))


def _compile(code: str, include_dirs: tuple[Path, ...]) -> Module:
    """The emulator module of ``code`` (written to the cache so the emulator compiles exactly this text)."""
    global compilations
    key = hashlib.sha256("\0".join([code, *map(str, include_dirs)]).encode()).hexdigest()[:24]
    module = _modules.get(key)
    if module is None:
        compilations += 1
        source = cache_dir() / "sources" / f"rawmodule-{key}.cu"
        source.parent.mkdir(parents=True, exist_ok=True)
        if not source.exists() or source.read_text() != code:
            partial = source.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(code)
            os.replace(partial, source)  # atomic: concurrent test processes agree
        module = _modules[key] = Module(source, include_dirs=include_dirs)
    return module
