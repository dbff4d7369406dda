"""Devices: parsing of device strings such as "cpu", "cuda:1", "auto" and "cuda-emu:1", and whether CUDA works here."""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("cpu", "cuda", "cuda-emu")


class DeviceError(RuntimeError):
    """A device was asked for that is malformed or not available here."""


@dataclass(frozen=True)
class Device:
    """Where arrays live: ``Device("cpu")``, ``Device("cuda", 0)`` or ``Device("cuda-emu")``."""

    kind: str
    index: int = 0

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"{self.kind}:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"


def parse_device(spec) -> Device:
    """Turn "cpu", "cuda", "cuda:N", "cuda-emu[:N]" or a Device into a Device ("auto" is resolved elsewhere)."""
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise DeviceError(f"device must be a string such as 'cpu' or 'cuda:0', got {spec!r}")
    text = spec.strip().lower()
    kind, _, index = text.partition(":")
    if kind not in KINDS or (kind == "cpu" and index not in ("", "0")):
        raise DeviceError(f"unknown device {spec!r}: use 'cpu', 'cuda', 'cuda:N', 'cuda-emu', 'cuda-emu:N' or "
                          "'auto'")
    if index and not index.isdigit():
        raise DeviceError(f"bad device index in {spec!r}: the part after ':' must be a number, as in 'cuda:1'")
    return Device(kind, int(index or 0))


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


def cuda_libraries_missing(cupy, index: int = 0):
    """Which CUDA library gpunet needs on first use is missing, or None: NVRTC (gpunet's kernels are compiled at
    run time) and cuBLAS (matmul). CuPy 14's wheels bundle neither; they come with ``cupy-cuda12x[ctk]``, which
    ``gpunet[cuda]`` installs, or with a CUDA 12 toolkit."""
    probes = (("NVRTC", lambda: cupy.cuda.nvrtc.getVersion()),
              ("cuBLAS", lambda: cupy.cuda.device.get_cublas_handle()))
    with cupy.cuda.Device(index):
        for library, probe in probes:
            try:
                probe()
            except Exception as exc:  # a missing shared library shows as OSError, RuntimeError or CuPy's own errors
                first_line = (str(exc).splitlines() or [""])[0]
                return (f"CuPy cannot load {library} ({type(exc).__name__}: {first_line}); "
                        'install the CUDA libraries with pip install "gpunet[cuda]" (cupy-cuda12x[ctk]) or a CUDA 12 '
                        "toolkit")
    return None


def auto_device() -> tuple[str, str]:
    """What ``device: auto`` chooses and why, in one line: ``("cuda:0", reason)`` when a GPU is visible and CuPy
    can load NVRTC and cuBLAS for it, else ``("cpu", reason)``."""
    reason = cuda_unavailable_reason(0)
    if reason is None:
        import cupy

        reason = cuda_libraries_missing(cupy, 0)
    if reason is None:
        return "cuda:0", "a CUDA device is visible and NVRTC and cuBLAS load"
    return "cpu", reason
