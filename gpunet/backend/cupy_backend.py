"""The CUDA backend: CuPy arrays, cuBLAS through CuPy's matmul, and gpunet's own kernels from ``kernels/*.cu``.

The CuPy API this module uses, all of it (the emulated device's stand-in, ``gpunet.backend.emulated.cupy_standin``,
implements exactly this on the CPU):

- the array namespace ``cupy.<function>`` through ``backend.xp`` (``asarray``, ``ascontiguousarray``, ``empty``,
  ``empty_like``, ``broadcast_to`` in the launchers; the ops use more of it, always through ``xp``);
- ``cupy.asnumpy(array)``;
- ``cupy.RawModule(code=..., options=(...))``, ``RawModule.compile()`` and ``RawModule.get_function(name)``,
  whose kernel is called as ``kernel(grid, block, args, shared_mem=...)``;
- ``cupy.cuda.Device(index)`` as a context manager, and its ``pci_bus_id`` (telemetry);
- ``cupy.cuda.runtime.getDeviceProperties(index)["maxGridSize"]``;
- ``cupy.get_default_memory_pool().used_bytes()`` / ``.total_bytes()``.

A fused kernel whose family has a ``kernels/<family>.cu`` launches it (its launchers are a mixin in
``gpunet/backend/launchers/<family>.py``, built on ``CupyBackend._launch``); every other fused kernel runs its
xp-generic reference (``gpunet/backend/references``) on CuPy arrays, the same code the CPU backend runs.
Kernel files are compiled on first use, never at import, once per device.
"""
from __future__ import annotations

import functools

import numpy

from .device import Device
from .fused import fused_kernels
from .kernel_source import kernel_dir
from .numpy_backend import NumpyBackend
from .launchers.embedding import EmbeddingKernels
from .launchers.batchnorm import BatchNormKernels
from .launchers.dropout import DropoutKernels
from .launchers.softmax import SoftmaxKernels
from .launchers.optimizers import OptimizerKernels
from .launchers.rnn import RnnKernels
from .launchers.pool import PoolKernels
from .launchers.conv import ConvKernels

BLOCK_SIZE = 256  # threads per block for element-wise kernels: a multiple of the warp size, good occupancy


def _require_float(op: str, what: str, array) -> None:
    if array.dtype not in (numpy.float32, numpy.float64):
        raise TypeError(f"{op}: {what} must be float32 or float64, got {array.dtype}; convert with .float()")


class CupyBackend(SoftmaxKernels, OptimizerKernels, RnnKernels, PoolKernels, ConvKernels, DropoutKernels,
                  BatchNormKernels, EmbeddingKernels):
    """Array work on one CUDA device through ``cupy_module`` (real CuPy, or the CPU stand-in for "cuda-emu")."""

    name = "cupy"

    def __init__(self, device: Device, cupy_module):
        self.device = device
        self.xp = cupy_module
        self._index = 0 if device.kind == "cuda-emu" else device.index
        self.implementation = ("CuPy stand-in with the CUDA emulator (CPU)" if device.kind == "cuda-emu"
                               else "CuPy + gpunet CUDA kernels")
        self._modules = {}  # family -> RawModule, created on first use
        self._functions = {}  # (family, kernel name) -> compiled kernel
        self._max_grid = None

    # ----- arrays ---------------------------------------------------------------------------------------------
    def asarray(self, data, dtype=None):
        with self.xp.cuda.Device(self._index):
            return self.xp.asarray(data, dtype=dtype)

    def to_numpy(self, array):
        # cupy.asnumpy copies on the current stream and waits for it, so every kernel queued before has finished.
        return self.xp.asnumpy(array)

    def memory_info(self) -> dict:
        """Bytes held by CuPy's default memory pool: ``{"pool_used_bytes", "pool_total_bytes"}``."""
        # CuPy allocates device memory through a pool that keeps freed blocks for reuse (CuPy user guide,
        # "Memory Management"): total_bytes() is what the pool holds from the driver, used_bytes() what arrays use.
        pool = self.xp.get_default_memory_pool()
        return {"pool_used_bytes": int(pool.used_bytes()), "pool_total_bytes": int(pool.total_bytes())}

    def __deepcopy__(self, memo):
        return self  # one backend per device: copied tensors must share it

    def __reduce__(self):
        from . import get_backend

        return get_backend, (str(self.device) if self.device.kind != "cuda-emu" else "cuda-emu",)

    def __repr__(self) -> str:
        return f"CupyBackend({self.device}, {self.implementation})"

    # ----- kernel files and launches --------------------------------------------------------------------------
    @property
    def max_grid_blocks(self) -> int:
        """Most blocks in a launch (x dimension): the device's limit, capped at 65535, which fills any GPU; the
        kernels' grid-stride and block-stride loops cover the rest of the work."""
        if self._max_grid is None:
            props = self.xp.cuda.runtime.getDeviceProperties(self._index)
            self._max_grid = min(int(props["maxGridSize"][0]), 65535)
        return self._max_grid

    @max_grid_blocks.setter
    def max_grid_blocks(self, value: int) -> None:
        self._max_grid = int(value)

    def compiled_families(self) -> tuple:
        """Kernel families whose ``.cu`` file has been compiled for this device so far."""
        return tuple(sorted(family for family, module in self._modules.items() if module is not None))

    def _module(self, family: str):
        module = self._modules.get(family)
        if module is None:
            directory = kernel_dir()
            source = (directory / f"{family}.cu").read_text()
            # RawModule compiles with NVRTC when a method is first called (get_function or compile), for this
            # device's architecture, and CuPy caches the binary on disk (~/.cupy/kernel_cache); -I finds common.cuh.
            module = self._modules[family] = self.xp.RawModule(code=source, options=(f"-I{directory}",))
        return module

    def _function(self, family: str, kernel: str):
        key = (family, kernel)
        function = self._functions.get(key)
        if function is None:
            module = self._module(family)
            with self.xp.cuda.Device(self._index):
                function = self._functions[key] = module.get_function(kernel)
        return function

    def warmup(self, kernels=None) -> tuple:
        """Compile now the kernel files of the fused kernels named in ``kernels`` (default: every one with a
        ``.cu``), so that the first training step does not wait for the compiler; returns the families compiled."""
        names = tuple(CUDA_KERNELS) if kernels is None else tuple(kernels)
        unknown = [name for name in names if name not in CUDA_KERNELS and name not in _references()]
        if unknown:
            raise KeyError(f"warmup: no fused kernel named {', '.join(map(repr, unknown))}")
        families = tuple(sorted({CUDA_KERNELS[name] for name in names if name in CUDA_KERNELS}))
        for family in families:
            self.compile(family)
        return families

    def compile(self, family: str) -> None:
        """Compile ``kernels/<family>.cu`` for this device now instead of at its first launch (nothing to do when
        it is compiled already): NVRTC through ``RawModule.compile`` on a GPU, the CUDA emulator on cuda-emu."""
        if family not in CUDA_KERNELS.values():
            raise KeyError(f"compile: no kernel family '{family}'; the families with a .cu file are "
                           f"{', '.join(sorted(set(CUDA_KERNELS.values())))}")
        with self.xp.cuda.Device(self._index):
            self._module(family).compile()

    def _launch(self, family: str, kernel: str, blocks: int, threads: int, args: tuple, shared_mem: int = 0):
        """Launch ``kernel`` on min(blocks, max_grid_blocks) blocks of ``threads`` threads.

        Scalars in ``args`` must be NumPy scalars of the kernel's C types: CuPy passes a Python int as long long
        and a Python float as double (CuPy user guide, "User-Defined Kernels", raw kernels), so an ``int``
        parameter given a Python int would read the wrong bits. The launch goes to CuPy's current stream, the
        one CuPy's own array operations use, so it is ordered after the work that produced its inputs.
        """
        grid = (max(1, min(int(blocks), self.max_grid_blocks)), 1, 1)
        function = self._function(family, kernel)
        with self.xp.cuda.Device(self._index):
            function(grid, (int(threads), 1, 1), args, shared_mem=int(shared_mem))

    # ----- fused kernels without a CUDA kernel: the xp-generic reference -------------------------------------
    def __getattr__(self, name):
        reference = _references().get(name)
        if reference is None:
            if name in vars(NumpyBackend):
                raise AttributeError(
                    f"fused kernel '{name}' has no CUDA kernel, and NumpyBackend.{name} is not declared with "
                    f"gpunet.backend.fused.fused (an xp-generic reference), so it cannot run on {self.device}"
                )
            raise AttributeError(f"{type(self).__name__} has no attribute or fused kernel '{name}'")
        bound = functools.partial(reference, self.xp)
        self.__dict__[name] = bound
        return bound

    def kernel_implementation(self, name: str) -> str:
        """Where fused kernel ``name`` runs on this backend: a ``kernels/*.cu`` file or the xp reference."""
        family = CUDA_KERNELS.get(name)
        if family is not None:
            return f"kernels/{family}.cu"
        reference = _references().get(name)
        if reference is None:
            raise KeyError(f"no fused kernel named '{name}'")
        return f"xp reference {reference.__module__}.{reference.__qualname__}"


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


CUDA_KERNELS = {name: "softmax" for name in ("softmax", "log_softmax", "softmax_cross_entropy",
                                             "softmax_cross_entropy_backward")}
CUDA_KERNELS.update({name: "embedding" for name in ("embedding_backward",)})
CUDA_KERNELS.update({name: "batchnorm" for name in ("batch_norm_stats",)})
CUDA_KERNELS.update({name: "dropout" for name in ("dropout_mask", "dropout_apply")})
CUDA_KERNELS.update({name: "optimizers" for name in ("sgd_update", "adam_update")})
CUDA_KERNELS.update({name: "rnn" for name in ("lstm_cell", "lstm_cell_backward", "gru_cell", "gru_cell_backward")})
CUDA_KERNELS.update({name: "pool" for name in ("max_pool2d", "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward")})
CUDA_KERNELS.update({name: "conv" for name in ("im2col", "col2im")})


@functools.cache
def _references() -> dict:
    """The xp-generic references of every fused kernel the CPU backend declares, by name."""
    return {name: kernel.reference for name, kernel in fused_kernels(NumpyBackend).items()}


def emulated_backend() -> CupyBackend:
    """The backend of the emulated device "cuda-emu": this module's code on the CPU stand-in for CuPy."""
    from .emulated import cupy_standin

    return CupyBackend(Device("cuda-emu"), cupy_standin)
