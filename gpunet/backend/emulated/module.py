"""Loaded kernel modules and their launches (in process, or in a subprocess for ASan/isolation)."""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from .build import CXX, KERNELS_DIR, build
from .errors import CudaEmuError
from .signature import KernelSignature, convert_args, parse_kernels

DEFAULT_TIMEOUT = float(os.environ.get("GPUNET_CUDA_EMU_TIMEOUT", "20"))
DEFAULT_MODE = os.environ.get("GPUNET_CUDA_EMU_MODE", "fibers")
DEFAULT_FTZ = os.environ.get("GPUNET_CUDA_EMU_FTZ", "") not in ("", "0")
MODES = ("threads", "fibers", "shuffled")  # the int the shim's launch takes is the index
MAX_SHARED_MEM = 48 * 1024  # default dynamic shared memory limit per block on every GPU since sm_70
_REPO_ROOT = Path(__file__).resolve().parents[3]
_libraries: dict[Path, tuple[ctypes.CDLL, threading.Lock]] = {}
_libraries_lock = threading.Lock()


def _dims(value, what: str, limits: tuple[int, int, int]) -> tuple[int, int, int]:
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) for d in dims):
        raise CudaEmuError(f"{what} must be an int or a tuple of 1 to 3 ints, got {value!r}")
    dims = tuple(int(d) for d in dims) + (1,) * (3 - len(dims))
    for axis, (d, limit) in enumerate(zip(dims, limits)):
        if not 1 <= d <= limit:
            raise CudaEmuError(f"{what}[{axis}] = {d} is outside the CUDA limit 1..{limit} ({what} = {value!r})")
    return dims


def check_geometry(name: str, grid, block, shared_mem: int):
    grid3 = _dims(grid, f"kernel '{name}': grid", (2**31 - 1, 65535, 65535))
    block3 = _dims(block, f"kernel '{name}': block", (1024, 1024, 64))
    if block3[0] * block3[1] * block3[2] > 1024:
        raise CudaEmuError(f"kernel '{name}': block {block!r} has more than 1024 threads")
    if not isinstance(shared_mem, (int, np.integer)) or not 0 <= shared_mem <= MAX_SHARED_MEM:
        raise CudaEmuError(
            f"kernel '{name}': shared_mem={shared_mem!r} must be an int in 0..{MAX_SHARED_MEM} "
            "(more needs an opt-in attribute on the GPU)"
        )
    return grid3, block3, int(shared_mem)


def _library(path: Path) -> tuple[ctypes.CDLL, threading.Lock]:
    with _libraries_lock:
        if path not in _libraries:
            lib = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
            fn = lib.gpunet_emu_launch
            fn.restype = ctypes.c_int
            fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, *[ctypes.c_uint] * 6,
                           ctypes.c_ulonglong, ctypes.c_double, ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_ulonglong]
            _libraries[path] = (lib, threading.Lock())
        return _libraries[path]


class Kernel:
    """One kernel of a :class:`Module`; call it like ``cupy.RawKernel``:
    ``kernel(grid, block, args, shared_mem=0)``."""

    def __init__(self, module: "Module", signature: KernelSignature):
        self.module = module
        self.signature = signature
        self.name = signature.name

    def __call__(self, grid, block, args, shared_mem: int = 0, ftz: bool | None = None) -> None:
        self.module.launch(self.name, grid, block, args, shared_mem=shared_mem, ftz=ftz)

    def __repr__(self) -> str:
        return f"<cuda_emu kernel {self.signature} from {self.module.path.name}>"


class Module:
    """A kernel file compiled for the CPU. Prefer :func:`load`, which caches modules."""

    def __init__(self, path, *, sanitize: str | None = None, isolate: bool = False,
                 timeout: float = DEFAULT_TIMEOUT, mode: str = DEFAULT_MODE, include_dirs=(KERNELS_DIR,),
                 library: Path | None = None, ftz: bool = DEFAULT_FTZ):
        """``library``: a library built before for this source (a cache hit); default: build (or find) it now."""
        self.path = Path(path).resolve()
        if mode not in MODES:
            raise CudaEmuError(f"unknown emulator mode {mode!r}; use one of {MODES}")
        self.mode = mode
        if not self.path.is_file():
            raise CudaEmuError(f"kernel file {self.path} does not exist")
        self.ftz = bool(ftz)
        if sanitize == "thread" and mode != "threads":
            raise CudaEmuError('sanitize="thread" looks for races between concurrent threads: use mode="threads"')
        self.sanitize = sanitize
        self.isolate = isolate or sanitize is not None
        self.timeout = float(timeout)
        self.kernels = parse_kernels(self.path.read_text(), str(self.path))
        if not self.kernels:
            raise CudaEmuError(f'{self.path} declares no extern "C" __global__ kernel')
        self.library_path = library or build(self.path, self.kernels, sanitize, tuple(Path(d) for d in include_dirs))

    def get_function(self, name: str) -> Kernel:
        return Kernel(self, self._signature(name))

    def _signature(self, name: str) -> KernelSignature:
        if name not in self.kernels:
            raise CudaEmuError(f"{self.path.name} has no kernel '{name}'; it has: {', '.join(sorted(self.kernels))}")
        return self.kernels[name]

    def launch(self, name: str, grid, block, args, shared_mem: int = 0, ftz: bool | None = None) -> None:
        """Run kernel ``name`` on ``grid`` x ``block`` threads with ``args`` (NumPy arrays and
        scalars, passed by CuPy's rules) and ``shared_mem`` bytes of dynamic shared memory; ``ftz``
        (default: the module's) flushes subnormal floats to zero."""
        ftz = self.ftz if ftz is None else bool(ftz)
        sig = self._signature(name)
        args = tuple(args)
        buffers = convert_args(sig, args)
        grid3, block3, shared_mem = check_geometry(name, grid, block, shared_mem)
        if self.isolate:
            self._launch_subprocess(sig, grid3, block3, args, shared_mem, ftz)
        else:
            _launch_in_process(self.library_path, sig, grid3, block3, buffers, shared_mem, self.timeout, self.mode,
                               ftz)

    def _launch_subprocess(self, sig, grid3, block3, args, shared_mem, ftz) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        if self.sanitize is not None:  # the sanitizer runtime must come first: preload it into Python
            runtime = f"lib{self.sanitize[0]}san.so"
            env["LD_PRELOAD"] = subprocess.run([CXX, f"-print-file-name={runtime}"], capture_output=True,
                                               text=True).stdout.strip()
            env["ASAN_OPTIONS"] = "detect_leaks=0"
            env["TSAN_OPTIONS"] = "halt_on_error=1 report_signal_unsafe=0"
        with tempfile.TemporaryDirectory() as tmp:
            job, result_path = Path(tmp) / "job.pkl", Path(tmp) / "result.pkl"
            job.write_bytes(pickle.dumps({
                "library": str(self.library_path), "signature": sig, "grid": grid3, "block": block3,
                "args": args, "shared_mem": shared_mem, "timeout": self.timeout, "mode": self.mode, "ftz": ftz,
                "result": str(result_path),
            }))
            proc = subprocess.run([sys.executable, "-m", "gpunet.backend.emulated._child", str(job)],
                                  env=env, capture_output=True, text=True, timeout=self.timeout + 300)
            if proc.returncode != 0 or not result_path.exists():
                hint = ""
                if proc.returncode == -signal.SIGSEGV:
                    hint = (" (segmentation fault: an out-of-bounds access - rerun with sanitize='address' - "
                            "or, in mode 'fibers', more than 250 KB of local variables in one thread)")
                raise CudaEmuError(
                    f"kernel '{sig.name}' crashed in its {self.sanitize or 'isolated'} subprocess "
                    f"(exit code {proc.returncode}){hint}:\n{proc.stderr[-20000:]}"
                )
            result = pickle.loads(result_path.read_bytes())
        if "error" in result:
            raise CudaEmuError(result["error"])
        for index, array in result["outputs"].items():
            args[index][...] = array


def _launch_in_process(library_path: Path, sig, grid3, block3, buffers, shared_mem, timeout, mode, ftz) -> None:
    lib, lock = _library(library_path)
    entry = ctypes.cast(getattr(lib, f"gpunet_emu_entry_{sig.name}"), ctypes.c_void_p)
    argv = (ctypes.c_void_p * max(1, len(buffers)))(*[b.ctypes.data for b in buffers])
    err = ctypes.create_string_buffer(4096)
    with lock:  # one launch at a time per library: blocks share its static __shared__ storage
        status = lib.gpunet_emu_launch(entry, argv, sig.name.encode(), *grid3, *block3, shared_mem,
                                       timeout, MODES.index(mode), int(ftz), err, len(err))
    if status != 0:
        raise CudaEmuError(err.value.decode(errors="replace"))


_modules: dict[tuple, Module] = {}


def load(path, *, sanitize: str | None = None, isolate: bool = False, timeout: float = DEFAULT_TIMEOUT,
         mode: str = DEFAULT_MODE, ftz: bool = DEFAULT_FTZ) -> Module:
    """Compile (or fetch from the cache) kernel file ``path`` for the CPU and return its
    :class:`Module`. ``sanitize="address"`` builds with AddressSanitizer and runs every launch in
    a subprocess on exactly sized copies of the arrays; ``sanitize="thread"`` (with
    ``mode="threads"``) builds with ThreadSanitizer, which reports races between the threads of a
    block such as a missing ``__syncthreads()``; ``isolate=True`` runs launches in a subprocess
    without a sanitizer (for kernels that may hang or crash). ``timeout`` (seconds) bounds every wait
    at a ``__syncthreads()``. ``mode`` (default ``$GPUNET_CUDA_EMU_MODE``, else "fibers") chooses
    how the threads of a block run: "fibers", coroutines of the launching thread switched at each
    barrier in a fixed order (repeatable; a missing barrier shows as a read of unwritten data);
    "threads", concurrent OS threads of a reused pool meeting at a real barrier (finds races, but
    each barrier costs about 4 us per thread on two cores against 0.1 us for fibers); "shuffled",
    fibers resumed in a pseudo-random order per block and barrier (repeatable), which shows
    order-dependent races at fiber speed. ``ftz`` (default ``$GPUNET_CUDA_EMU_FTZ``) flushes
    subnormal floats to zero, inputs and results, as CuPy's ``-ftz=true`` does on a GPU. A thread
    spinning forever is reported after ``timeout`` in mode "threads", and by the watchdog of an
    isolated launch in either mode; in-process in mode "fibers" it hangs."""
    path = Path(path).resolve()
    try:
        stamp = path.stat().st_mtime_ns
    except FileNotFoundError:
        raise CudaEmuError(f"kernel file {path} does not exist") from None
    key = (path, stamp, sanitize, isolate, float(timeout), mode, bool(ftz))
    if key not in _modules:
        _modules[key] = Module(path, sanitize=sanitize, isolate=isolate, timeout=timeout, mode=mode, ftz=ftz)
    return _modules[key]


def fill_nan(*arrays: np.ndarray) -> None:
    """Poison output buffers before a launch so that elements a kernel fails to write show up:
    floating arrays get NaN, integer arrays their most negative value, bool arrays True."""
    for a in arrays:
        if np.issubdtype(a.dtype, np.floating):
            a.fill(np.nan)
        elif np.issubdtype(a.dtype, np.integer):
            a.fill(np.iinfo(a.dtype).min)
        elif a.dtype == np.bool_:
            a.fill(True)
        else:
            raise TypeError(f"fill_nan: cannot poison an array of dtype {a.dtype}")


def nan_array(shape, dtype=np.float32) -> np.ndarray:
    """A new array of ``shape`` and ``dtype`` poisoned by :func:`fill_nan`."""
    out = np.empty(shape, dtype=dtype)
    fill_nan(out)
    return out
