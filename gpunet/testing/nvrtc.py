"""Compile a kernel file with NVRTC (the compiler CuPy uses) without a GPU or a driver.

CuPy's own compile path asks the driver for the device's architecture first, so it cannot run
here; ``cuda.bindings.nvrtc`` can. The kernel file's exact source is compiled for a virtual
architecture (``compute_70``, ``compute_80``, ``compute_90``, ...) with ``kernels/`` on the
include path, as the CuPy backend compiles it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..backend.kernel_source import kernel_dir

KERNELS_DIR = kernel_dir()
ARCHS = ("compute_70", "compute_80", "compute_90")
_INSTALL = 'NVRTC is not installed: pip install "cuda-bindings>=12,<13" nvidia-cuda-nvrtc-cu12'


class NvrtcError(RuntimeError):
    """NVRTC rejected a kernel file (the message holds its log)."""


@dataclass(frozen=True)
class CompileResult:
    ptx: str
    log: str  # warnings (empty when the compile was clean)


def _nvrtc():
    try:
        from cuda.bindings import nvrtc
    except ImportError as exc:
        raise ImportError(_INSTALL) from exc
    return nvrtc


def _check(nvrtc, result, what: str, log: str = "") -> None:
    err = result[0] if isinstance(result, tuple) else result
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise NvrtcError(f"NVRTC {what} failed ({err.name}){':' if log else ''}\n{log}".rstrip())


def version() -> tuple[int, int]:
    nvrtc = _nvrtc()
    err, major, minor = nvrtc.nvrtcVersion()
    _check(nvrtc, (err,), "version query")
    return major, minor


def compile_file(path, arch: str = "compute_80", options: tuple[str, ...] = (),
                 include_dirs: tuple[Path, ...] = (KERNELS_DIR,)) -> CompileResult:
    """Compile kernel file ``path`` to PTX for ``arch``; raise :class:`NvrtcError` with the
    compile log if NVRTC rejects it."""
    path = Path(path)
    nvrtc = _nvrtc()
    source = path.read_bytes()
    err, prog = nvrtc.nvrtcCreateProgram(source, path.name.encode(), 0, [], [])
    _check(nvrtc, (err,), f"program creation for {path}")
    try:
        opts = [f"--gpu-architecture={arch}", "--std=c++17", *[f"-I{d}" for d in include_dirs], *options]
        (compile_err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), [o.encode() for o in opts])
        err, size = nvrtc.nvrtcGetProgramLogSize(prog)
        _check(nvrtc, (err,), "log size query")
        buf = bytearray(size)  # NVRTC writes into it: never an immutable bytes (b" " * 1 is Python's shared b" ")
        (err,) = nvrtc.nvrtcGetProgramLog(prog, buf)
        _check(nvrtc, (err,), "log query")
        log = bytes(buf).rstrip(b"\0").decode(errors="replace").strip()
        _check(nvrtc, (compile_err,), f"compilation of {path} for {arch}", log)
        err, size = nvrtc.nvrtcGetPTXSize(prog)
        _check(nvrtc, (err,), "PTX size query")
        ptx = bytearray(size)
        (err,) = nvrtc.nvrtcGetPTX(prog, ptx)
        _check(nvrtc, (err,), "PTX query")
        return CompileResult(ptx=bytes(ptx).rstrip(b"\0").decode(), log=log)
    finally:
        nvrtc.nvrtcDestroyProgram(prog)
