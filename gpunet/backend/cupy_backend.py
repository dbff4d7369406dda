"""The CUDA backend: CuPy arrays, cuBLAS through CuPy's matmul, and gpunet's own kernels from ``kernels/*.cu``.

The CuPy API this module uses, all of it (the emulated device's stand-in, ``gpunet.backend.emulated.cupy_standin``,
implements exactly this on the CPU):

- the array namespace ``cupy.<function>`` through ``backend.xp`` (``asarray``, ``ascontiguousarray``, ``empty``,
  ``empty_like``, ``broadcast_to`` in the launchers; the ops use more of it, always through ``xp``);
- ``cupy.asnumpy(array)``;
- ``ndarray.data.ptr`` and ``ndarray.device.id`` (the optimizer launchers' table of tensor addresses; on the
  stand-in, whose device memory is host memory, NumPy's address);
- ``cupy.RawModule(code=...)``, ``RawModule.compile()`` and ``RawModule.get_function(name)``, whose kernel is
  called as ``kernel(grid, block, args, shared_mem=...)``;
- ``cupy.cuda.Device(index)`` as a context manager, its ``use()`` and its ``pci_bus_id`` (telemetry);
- ``cupy.cuda.runtime.getDeviceProperties(index)["maxGridSize"]``;
- ``cupy.get_default_memory_pool().used_bytes()`` / ``.total_bytes()``;
- ``cupy._core._routines_linalg.set_compute_type(numpy.float32, COMPUTE_TYPE_TF32 or COMPUTE_TYPE_DEFAULT)``, the
  cuBLAS compute type of every float32 ``matmul``/``dot`` (``gpunet.backend.cuda_settings``, the TF32 switch).

A fused kernel declared with a ``kernels/<family>.cu`` (``gpunet.backend.registry``) runs its launcher
(``gpunet/backend/launchers/<family>.py``, through ``CupyBackend.launch``) for the dtypes its CUDA kernels cover;
every other call runs its xp-generic reference (``gpunet/backend/references``) on CuPy arrays, the same code the
CPU backend runs. Kernel files are compiled on first use, never at import, once per device.

Device N: CuPy allocates and launches on the *current* device, which is device 0 unless code says otherwise, so a
backend for ``cuda:N`` must make device N current around all its work. One funnel does that: ``backend.activate()``,
the context in which device N is current (every op's forward, ``Function.apply``, the backward pass, every fused
kernel and the optimizers' updates run in it, so array operators and methods such as ``a + b`` or ``a.sum()`` run on
device N). ``backend.xp`` is CuPy's namespace with every call made inside that context, so an ``xp.empty`` /
``xp.zeros`` anywhere in gpunet allocates on device N; inside an active context of the same backend (the hot path)
it calls straight through. The active backend is tracked per host thread, as CUDA's current device is, and only
``activate()`` changes it: code that switches CuPy's device by other means inside it would break the shortcut, and
gpunet has none (the stand-in's several devices check it in the suite). ``gpunet.set_device("cuda:N")`` also makes
device N current (``backend.use()``), so code between them does too.

Transfers to the host: ``to_numpy`` is the one place gpunet copies device data to the host (``Tensor.numpy``,
``item``, ``float()``, ``bool()`` go through it); ``transfers_to_host`` counts those copies, each a wait for the
device. ``host_syncs()`` is what the Trainer records: on cuda-emu the stand-in's own count of every copy (which
also sees a stray ``float(cupy_array)`` that bypasses the funnel), on a GPU the funnel's.
"""
from __future__ import annotations

import threading
import time
import types
import warnings

import numpy

from . import cuda_settings
from .device import Device
from .kernel_source import kernel_source
from .registry import KERNELS, RUN_REFERENCE, FusedKernels, families


class CupyBackend(FusedKernels):
    """Array work on one CUDA device through ``cupy_module`` (real CuPy, or the CPU stand-in for "cuda-emu")."""

    name = "cupy"
    activates_device = True  # ``activate()`` makes this device CuPy's current one

    def __init__(self, device: Device, cupy_module):
        self.device = device
        self._index = device.index
        self._cupy = cupy_module
        self.xp = OnDevice(cupy_module, self)
        self.transfers_to_host = 0  # copies to the host through to_numpy
        self.implementation = ("CuPy stand-in with the CUDA emulator (CPU)" if device.kind == "cuda-emu"
                               else "CuPy + gpunet CUDA kernels")
        self._modules = {}  # family -> RawModule, created on first use
        self._functions = {}  # (family, kernel name) -> compiled kernel
        self._max_grid = None
        self.compile_seconds = {}  # family -> seconds its .cu took to compile on this device
        cuda_settings.follow(self)

    # ----- arrays ---------------------------------------------------------------------------------------------
    def activate(self):
        """A context in which this backend's device is CuPy's current device (restored on exit); nested in an
        active context of this backend it does nothing."""
        return _Activation(self)

    def use(self) -> None:
        """Make this backend's device CuPy's current device from now on (``gpunet.set_device`` does)."""
        self._cupy.cuda.Device(self._index).use()

    def asarray(self, data, dtype=None):
        return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array):
        # cupy.asnumpy copies on the array's device's current stream and waits for it, so every kernel queued
        # before has finished.
        self.transfers_to_host += 1
        return self.xp.asnumpy(array)

    def host_syncs(self) -> int:
        """Device-to-host copies of this device's data so far: the stand-in's count of every one on cuda-emu, the
        funnel's (``to_numpy``) on a GPU."""
        counted = getattr(self._cupy, "transfers_to_host", None)  # the stand-in's; real CuPy has none
        return counted(self._index) if counted is not None else self.transfers_to_host

    def memory_info(self) -> dict:
        """Bytes held by CuPy's default memory pool: ``{"pool_used_bytes", "pool_total_bytes"}``."""
        # CuPy allocates device memory through a pool that keeps freed blocks for reuse (CuPy user guide,
        # "Memory Management"): total_bytes() is what the pool holds from the driver, used_bytes() what arrays use.
        with self.activate():  # the pool's counters are the current device's
            pool = self._cupy.get_default_memory_pool()
            return {"pool_used_bytes": int(pool.used_bytes()), "pool_total_bytes": int(pool.total_bytes())}

    def __deepcopy__(self, memo):
        return self  # one backend per device: copied tensors must share it

    def __reduce__(self):
        from . import get_backend

        return get_backend, (str(self.device),)

    def __repr__(self) -> str:
        return f"CupyBackend({self.device}, {self.implementation})"

    def apply_math_settings(self) -> None:
        """Give CuPy's float32 matrix products the compute type of the TF32 switch (``cuda_settings``)."""
        # CuPy keeps one compute type per dtype for the process (not per device), read by every matmul, dot and
        # tensordot; left unset, CuPy decides it once from $CUPY_TF32. Setting TF32 checks the *current* device's
        # compute capability (< 8.0: CuPy warns and keeps float32, which is right there: no TF32 hardware).
        linalg = self._cupy._core._routines_linalg
        kind = linalg.COMPUTE_TYPE_TF32 if cuda_settings.allow_tf32() else linalg.COMPUTE_TYPE_DEFAULT
        with self.activate(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            linalg.set_compute_type(numpy.float32, kind)

    # ----- kernel files and launches --------------------------------------------------------------------------
    @property
    def max_grid_blocks(self) -> int:
        """Most blocks in a launch (x dimension): the device's limit, capped at 65535, which fills any GPU; the
        kernels' grid-stride and block-stride loops cover the rest of the work."""
        if self._max_grid is None:
            props = self._cupy.cuda.runtime.getDeviceProperties(self._index)
            self._max_grid = min(int(props["maxGridSize"][0]), 65535)
        return self._max_grid

    @max_grid_blocks.setter
    def max_grid_blocks(self, value: int) -> None:
        self._max_grid = int(value)

    def compiled_families(self) -> tuple:
        """Kernel families whose ``.cu`` file has been compiled for this device so far."""
        return tuple(sorted(self.compile_seconds))

    def _module(self, family: str):
        module = self._modules.get(family)
        if module is None:
            # RawModule compiles with NVRTC when a method is first called (get_function or compile), for this
            # device's architecture, and CuPy caches the binary on disk (~/.cupy/kernel_cache) by source text and
            # options: the headers are inlined into the text so that a header change is a new key.
            module = self._modules[family] = self._cupy.RawModule(code=kernel_source(family))
        return module

    def _function(self, family: str, kernel: str):
        key = (family, kernel)
        function = self._functions.get(key)
        if function is None:
            self.compile(family)
            with self.activate():
                function = self._functions[key] = self._module(family).get_function(kernel)
        return function

    def warmup(self, kernels=None) -> tuple:
        """Compile now the kernel files of the fused kernels named in ``kernels`` (default: every one with a
        ``.cu``), so that the first training step does not wait for the compiler; returns the families compiled."""
        names = tuple(KERNELS) if kernels is None else tuple(kernels)
        unknown = [name for name in names if name not in KERNELS]
        if unknown:
            raise KeyError(f"warmup: no fused kernel named {', '.join(map(repr, unknown))}")
        compiled = tuple(sorted({KERNELS[name].family for name in names if KERNELS[name].family is not None}))
        for family in compiled:
            self.compile(family)
        return compiled

    def compile(self, family: str) -> None:
        """Compile ``kernels/<family>.cu`` for this device now instead of at its first launch (nothing to do when
        it is compiled already; ``compile_seconds[family]`` keeps how long it took): NVRTC through
        ``RawModule.compile`` on a GPU, the CUDA emulator on cuda-emu."""
        if family in self.compile_seconds:
            return
        if family not in families():
            raise KeyError(f"compile: no kernel family '{family}'; the families with a .cu file are "
                           f"{', '.join(families())}")
        start = time.perf_counter()
        with self.activate():
            self._module(family).compile()
        self.compile_seconds[family] = time.perf_counter() - start

    def launch(self, family: str, kernel: str, blocks: int, threads: int, args: tuple, shared_mem: int = 0):
        """Launch ``kernel`` of ``kernels/<family>.cu`` on min(blocks, max_grid_blocks) blocks of ``threads``.

        Scalars in ``args`` must be NumPy scalars of the kernel's C types: CuPy passes a Python int as long long
        and a Python float as double (CuPy user guide, "User-Defined Kernels", raw kernels), so an ``int``
        parameter given a Python int would read the wrong bits. The launch goes to CuPy's current stream, the
        one CuPy's own array operations use, so it is ordered after the work that produced its inputs.
        """
        with self.activate():
            self.prepare_launch(family, kernel, blocks, threads, args, shared_mem)()

    def prepare_launch(self, family: str, kernel: str, blocks: int, threads: int, args: tuple, shared_mem: int = 0):
        """``launch`` without the launch: a function of no arguments that launches the kernel with these arguments
        on the current device (``scripts/profile_kernels.py`` replays a fused call's launches with it)."""
        grid, block = (max(1, min(int(blocks), self.max_grid_blocks)), 1, 1), (int(threads), 1, 1)
        shared = int(shared_mem)
        function = self._function(family, kernel)
        return lambda: function(grid, block, args, shared_mem=shared)

    # ----- fused kernels ------------------------------------------------------------------------------------
    def _bind(self, kernel):
        reference, launcher, check, xp = kernel.reference, kernel.launcher, kernel.check, self.xp
        if launcher is None:
            return lambda *args, **kwargs: reference(xp, *args, **kwargs)

        def run(*args, **kwargs):
            if check is not None:
                check(*args, **kwargs)
            with self.activate():  # the launcher's and the reference's array operators run on this device
                if kernel.launches(args, kwargs):
                    result = launcher(self, *args, **kwargs)
                    if result is not RUN_REFERENCE:
                        return result
                return reference(xp, *args, **kwargs)

        return run

    def kernel_implementation(self, name: str) -> str:
        """Where fused kernel ``name`` runs on this backend: a ``kernels/*.cu`` file or the xp reference."""
        kernel = KERNELS.get(name)
        if kernel is None:
            raise KeyError(f"no fused kernel named '{name}'")
        if kernel.family is not None:
            return f"kernels/{kernel.family}.cu"
        return f"xp reference {kernel.reference.__module__}.{kernel.reference.__qualname__}"


_active = threading.local()  # .backend: the CupyBackend whose activate() context this host thread is in


class _Activation:
    """``backend.activate()``: enters ``cupy.cuda.Device(N)`` and marks ``backend`` active on this thread, unless it
    is active already."""

    __slots__ = ("_backend", "_device", "_previous")

    def __init__(self, backend):
        self._backend, self._device = backend, None

    def __enter__(self):
        self._previous = getattr(_active, "backend", None)
        if self._previous is not self._backend:
            self._device = self._backend._cupy.cuda.Device(self._backend._index)
            self._device.__enter__()
            _active.backend = self._backend
        return self

    def __exit__(self, *exc):
        if self._device is not None:
            _active.backend = self._previous
            self._device.__exit__(*exc)
            self._device = None
        return False


class OnDevice:
    """``target`` (CuPy's namespace, one of its submodules, or a function or ufunc of them) with every call made in
    ``backend.activate()``; classes (``ndarray``, dtypes), constants and ``cuda`` pass through."""

    def __init__(self, target, backend):
        self._target, self._backend = target, backend
        self.__wrapped__ = target

    def __getattr__(self, name):
        value = getattr(self._target, name)
        if (callable(value) or isinstance(value, types.ModuleType)) and not isinstance(value, type) and name != "cuda":
            value = OnDevice(value, self._backend)  # a function, ufunc (xp.add.at), or submodule
        self.__dict__[name] = value  # later lookups skip __getattr__
        return value

    def __call__(self, *args, **kwargs):
        if getattr(_active, "backend", None) is self._backend:  # the hot path: inside an op, a kernel, backward
            return self._target(*args, **kwargs)
        with _Activation(self._backend):
            return self._target(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{self._target!r} on device {self._backend.device}>"


def emulated_backend(index: int = 0) -> CupyBackend:
    """The backend of emulated device ``cuda-emu:<index>``: this module's code on the CPU stand-in for CuPy."""
    from .emulated import cupy_standin

    return CupyBackend(Device("cuda-emu", index), cupy_standin)
