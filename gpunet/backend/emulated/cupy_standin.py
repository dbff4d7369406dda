"""A CPU stand-in for the part of CuPy that gpunet's CuPy backend uses: the emulated device "cuda-emu".

``CupyBackend(Device("cuda-emu"), cupy_standin)`` runs the real backend code against this module:

- the array namespace is NumPy's, on ``DeviceArray`` "device" arrays (NumPy memory that refuses to be mixed with
  host NumPy arrays, as CuPy arrays do); when CuPy is installed, a name that CuPy's namespace lacks is refused, so
  code that works here does not fail for want of a function on a GPU;
- ``asnumpy(array)`` copies to the host; ``transfers_to_host(device)`` (not CuPy's) counts every copy of a device
  array's values to the host so far, ``asnumpy``, ``.item()``, ``float()``, ``bool()`` and the rest (see
  ``device_array``), the copies CuPy's own functions make to size a result (``SYNCHRONIZING``: ``bincount``,
  ``nonzero``, ``unique``, ...) and boolean-mask indexing: each is a wait for the device on a GPU;
- ``RawModule(code=..., options=(...))`` keeps the CUDA source and compiles it with the CUDA emulator on
  ``compile()`` or the first ``get_function(name)``; the kernel returned is called as
  ``kernel(grid, block, args, shared_mem=0)``: ``grid``, ``block`` and ``args`` must be tuples, as CuPy requires, and
  every argument is checked against the kernel's C signature by CuPy's passing rules;
- ``cuda.Device(i)`` (a context manager, with ``use()``, ``id`` and ``pci_bus_id``), ``cuda.runtime.getDevice()``,
  ``getDeviceCount()`` and ``getDeviceProperties(i)`` (the keys gpunet reads), ``cuda.Stream``, ``cuda.Event``,
  ``cuda.get_current_stream`` and ``cuda.get_elapsed_time`` (``streams``: the order between streams is checked;
  times are the emulator's, never a GPU's), ``get_default_memory_pool()`` with
  ``used_bytes()``/``total_bytes()``/``free_all_blocks()``;
- ``_core._routines_linalg``'s compute types (``gpunet.backend.emulated.linalg``: recorded, and a float32 matmul
  under TF32 rounds its inputs as tensor cores do).

Like CuPy, and unlike a forgiving stand-in:

- there are ``DEVICE_COUNT`` devices (``$GPUNET_CUDA_EMU_DEVICES``, default 2); an array belongs to the device current
  when it was made, an operation or a kernel launch given an array of another device raises, and a kernel runs only
  on the device current when ``get_function`` loaded it;
- compiled modules are cached on disk by exactly CuPy's key, the source text and the options
  (``cupy/cuda/compiler.py``, ``_compile_with_cache_cuda``): the text of an ``#include``d header is not part of it,
  so a source that only names its headers keeps its first build after a header changes, as on a GPU machine's
  ``~/.cupy/kernel_cache``. ``compilations`` counts the modules compiled or loaded from that cache in this process
  (tests of lazy compilation).

NumPy allocates, so the memory pool reports 0 bytes.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import types
from pathlib import Path

import numpy

from . import linalg as _routines_linalg, nccl_standin, streams
from .build import cache_dir, toolchain
from .device_array import (DeviceArray, leaves, check_no_host, count_transfer, current_device, set_current_device,
                           to_device, transfers_to_host)
from .errors import CudaEmuError
from .module import DEFAULT_FTZ, MAX_SHARED_MEM, Module

__all__ = ["RawModule", "asnumpy", "cuda", "get_default_memory_pool", "compilations", "transfers_to_host"]

DEVICE_NAME = "gpunet CUDA emulator (CPU)"
MAX_GRID_SIZE = (2**31 - 1, 65535, 65535)
L2_CACHE_SIZE = 1 << 20  # reported, so that the profiler's L2 flush stays small; nothing is cached
DEVICE_COUNT = int(os.environ.get("GPUNET_CUDA_EMU_DEVICES", "2"))
# CuPy compiles every kernel with -ftz=true: subnormal float32 inputs and results are zero on a GPU. Opt-in here
# (the emulator's flush also applies to double arithmetic, which a GPU does not flush): set True, or
# GPUNET_CUDA_EMU_FTZ=1.
flush_subnormals = DEFAULT_FTZ
compilations = 0
_modules: dict[str, Module] = {}  # CuPy's cache key -> module, in memory


@functools.cache
def _cupy_names():
    """The public names of real CuPy's namespace, or None when CuPy is not installed."""
    try:
        import cupy
    except ImportError:
        return None
    return frozenset(dir(cupy))


_TRANSFERS = frozenset({"asarray", "array", "asanyarray", "ascontiguousarray"})  # host data -> device copy
# The functions CuPy 14.2's docstrings warn "may synchronize the device" about (they copy a count or an extreme to
# the host to size their result or check their input): how many copies each call makes here. ``bincount`` makes two
# (``(x < 0).any()`` and ``int(cupy.max(x))`` in its source); ``where`` only with the condition alone (nonzero).
SYNCHRONIZING = {name: 1 for name in (
    "average", "compress", "delete", "extract", "flatnonzero", "histogram", "histogram2d", "histogramdd", "ix_",
    "mask_indices", "nanmax", "nanmin", "nonzero", "place", "ravel_multi_index", "real_if_close", "unique",
    "unravel_index", "where")} | {"bincount": 2}


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
    transfer, waits = name in _TRANSFERS, SYNCHRONIZING.get(name, 0)

    @functools.wraps(function)
    def device_function(*args, **kwargs):
        if streams.tracking:  # its result is new memory, written on the current stream
            queue = streams.begin(f"cupy.{name}", leaves((args, kwargs)))
            result = _device_call(*args, **kwargs)
            streams.end(queue, f"cupy.{name}", leaves(result))
            return result
        return _device_call(*args, **kwargs)

    def _device_call(*args, **kwargs):
        if not transfer:
            check_no_host(f"cupy.{name}", (args, kwargs))
            if waits and (name != "where" or len(args) + len(kwargs) == 1):
                for _ in range(waits):
                    count_transfer(current_device())
            return to_device(function(*args, **kwargs))
        result = function(*args, **kwargs)
        source = args[0] if args else kwargs.get("a", kwargs.get("obj"))
        if type(source) is numpy.ndarray and numpy.shares_memory(result, source):
            result = result.copy()  # device memory is never the host array's memory
        return to_device(result)

    return device_function


def asnumpy(array):
    """A host copy of a "device" array (``cupy.asnumpy``), counted in ``transfers_to_host``."""
    if isinstance(array, DeviceArray):
        if streams.tracking:
            streams.begin("cupy.asnumpy", (array,))
        count_transfer(array.device_id)
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
    """``cupy.cuda.Device(i)``: one of the ``DEVICE_COUNT`` emulated devices (default: the current one); as a context
    manager it makes the device current and restores the previous one on exit; ``use()`` makes it current."""

    def __init__(self, device=None):
        index = current_device() if device is None else int(device)
        if not 0 <= index < DEVICE_COUNT:
            raise CudaEmuError(f"the emulated CUDA runtime has {DEVICE_COUNT} devices (0 to {DEVICE_COUNT - 1}); "
                               f"device {index} does not exist")
        self.id = index
        self.pci_bus_id = f"0000:{index:02x}:00.0"
        self._previous = []

    def use(self):
        set_current_device(self.id)

    def __enter__(self):
        self._previous.append(current_device())
        self.use()
        return self

    def __exit__(self, *exc):
        set_current_device(self._previous.pop())
        return False

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def _get_device() -> int:
    return current_device()


def _get_device_count() -> int:
    return DEVICE_COUNT


def _get_device_properties(index: int) -> dict:
    Device(index)
    return {"name": DEVICE_NAME.encode(), "maxGridSize": MAX_GRID_SIZE, "maxThreadsPerBlock": 1024,
            "sharedMemPerBlock": MAX_SHARED_MEM, "major": 8, "minor": 0, "l2CacheSize": L2_CACHE_SIZE}


_core = types.SimpleNamespace(_routines_linalg=_routines_linalg)
cuda = types.SimpleNamespace(
    Device=Device, Event=streams.Event, Stream=streams.Stream, get_elapsed_time=streams.get_elapsed_time,
    get_current_stream=streams.get_current_stream, nccl=nccl_standin,
    runtime=types.SimpleNamespace(getDevice=_get_device, getDeviceCount=_get_device_count,
                                  getDeviceProperties=_get_device_properties),
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
    """``cupy.RawKernel`` as returned by ``RawModule.get_function``: loaded on the device current then."""

    def __init__(self, emulated):
        self._emulated = emulated
        self.name = emulated.name
        self.device_id = current_device()

    def __call__(self, grid, block, args, *, shared_mem=0):
        for what, value in (("grid", grid), ("block", block), ("args", args)):
            if not isinstance(value, tuple):
                raise CudaEmuError(f"kernel '{self.name}': {what} must be a tuple (as CuPy requires), got {value!r}")
        current = current_device()
        if current != self.device_id:
            raise CudaEmuError(f"kernel '{self.name}' was loaded on device {self.device_id} and launched with device "
                               f"{current} current (CUDA_ERROR_INVALID_HANDLE on a GPU): launch it inside "
                               f"`with cupy.cuda.Device({self.device_id})`")
        for position, value in enumerate(args):
            if isinstance(value, numpy.ndarray) and not isinstance(value, DeviceArray):
                raise CudaEmuError(f"kernel '{self.name}': got a host NumPy array (shape {value.shape}); CuPy passes "
                                   "only device arrays: move it with cupy.asarray")
            if isinstance(value, DeviceArray) and value.device_id != current:
                raise CudaEmuError(f"kernel '{self.name}': argument {position} (shape {value.shape}) lives on device "
                                   f"{value.device_id}, the launch is on device {current}: a kernel given another "
                                   "device's pointer reads and writes the wrong memory on a GPU")
        queue = streams.begin(f"kernel '{self.name}'", args, args) if streams.tracking else None
        self._emulated(grid, block, args, shared_mem=shared_mem, ftz=flush_subnormals)
        if queue is not None:  # which arguments it wrote is not known: all, as far as ordering goes
            streams.end(queue, f"kernel '{self.name}'", args)


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
            self._module = _compile(self.code, self.options, self._include_dirs)

    def get_function(self, name: str) -> _Kernel:
        self.compile()
        return _Kernel(self._module.get_function(name))


def cache_key(code: str, options: tuple) -> str:
    """CuPy's cache key for ``RawModule(code=code, options=options)``: the source text and the options, plus the
    compiler's identity (CuPy's has the NVRTC version and architecture; here the shim and g++), never the headers."""
    return hashlib.sha256("\0".join([code, *options, toolchain()]).encode()).hexdigest()[:24]


def _compile(code: str, options: tuple, include_dirs: tuple[Path, ...]) -> Module:
    """The emulator module of ``code``, cached by CuPy's key in memory and on disk, whatever its headers hold now."""
    global compilations
    key = cache_key(code, options)
    module = _modules.get(key)
    if module is None:
        compilations += 1
        folder = cache_dir() / "rawmodule"
        source, built = folder / f"{key}.cu", folder / f"{key}.so"
        if built.exists():  # CuPy's disk cache hit: the first build of this key, headers unread
            module = Module(source, include_dirs=include_dirs, library=built)
        else:
            folder.mkdir(parents=True, exist_ok=True)
            _write_atomically(source, code)
            module = Module(source, include_dirs=include_dirs)
            _copy_atomically(module.library_path, built)
        _modules[key] = module
    return module


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(text)
    os.replace(partial, path)  # concurrent test processes agree


def _copy_atomically(source: Path, target: Path) -> None:
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    shutil.copyfile(source, partial)
    os.replace(partial, target)
