"""Compile a kernel file with g++ and the CUDA shim into a shared library, cached by content hash."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

from ..kernel_source import kernel_dir
from .errors import CudaEmuError
from .signature import KernelSignature

SHIM = Path(__file__).with_name("shim.h")
KERNELS_DIR = kernel_dir()
CXX = os.environ.get("CXX", "g++")
FLAGS = ("-std=c++20", "-O1", "-pthread", "-fPIC", "-fvisibility=hidden")
SANITIZER_FLAGS = {
    "address": ("-fsanitize=address", "-fno-omit-frame-pointer", "-g"),
    "thread": ("-fsanitize=thread", "-g"),
}
_INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def cache_dir() -> Path:
    """``$GPUNET_CACHE/cuda_emu``, else ``~/.cache/gpunet/cuda_emu``."""
    root = os.environ.get("GPUNET_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "gpunet"
    return base / "cuda_emu"


@functools.cache
def compiler_version() -> str:
    try:
        return subprocess.run([CXX, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CudaEmuError(f"the CUDA emulator needs a C++20 compiler ({CXX}); it failed to run: {exc}") from exc


def toolchain() -> str:
    """What a build depends on besides the sources: the shim, the flags and the compiler (a digest)."""
    return hashlib.sha256("\0".join([SHIM.read_text(), *FLAGS, compiler_version()]).encode()).hexdigest()[:24]


def precompiled_shim(flags: tuple[str, ...]) -> Path:
    """A copy of the shim with a precompiled header next to it (built once per flag set): the
    C++ standard headers it pulls in cost more to parse than a kernel file does to compile."""
    digest = hashlib.sha256("\0".join([SHIM.read_text(), *flags, compiler_version()]).encode()).hexdigest()[:24]
    folder = cache_dir() / f"shim-{digest}"
    header = folder / "shim.h"
    if (folder / "shim.h.gch").exists():
        return header
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        if not header.exists():  # same content whoever writes it; replace is atomic
            (Path(tmp) / "shim.h").write_text(SHIM.read_text())
            os.replace(Path(tmp) / "shim.h", header)
        tmp_pch = Path(tmp) / "shim.h.gch"
        result = subprocess.run([CXX, *flags, "-x", "c++-header", str(header), "-o", str(tmp_pch)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise CudaEmuError(f"g++ could not precompile the CUDA shim {SHIM}:\n{result.stderr}")
        os.replace(tmp_pch, str(header) + ".gch")
    return header


def _hash_sources(path: Path, include_dirs: tuple[Path, ...], digest, seen: set[Path]) -> None:
    """Feed ``path`` and every local header it includes (recursively) into ``digest``."""
    if path in seen:
        return
    seen.add(path)
    text = path.read_text()
    digest.update(str(path).encode() + b"\0" + text.encode() + b"\0")
    for name in _INCLUDE_RE.findall(text):
        for folder in (path.parent, *include_dirs):
            candidate = (folder / name).resolve()
            if candidate.is_file():
                _hash_sources(candidate, include_dirs, digest, seen)
                break


def wrapper_source(source_path: Path, kernels: dict[str, KernelSignature]) -> str:
    """The translation unit g++ compiles: the kernel file itself plus one entry per kernel that
    unpacks a ``void**`` argument array (as cuLaunchKernel does) and calls the kernel."""
    lines = [f'#include "{source_path}"']
    for sig in kernels.values():
        unpacked = []
        for i, p in enumerate(sig.params):
            if p.pointer:
                unpacked.append(f"static_cast<{p.ctype}>(*static_cast<void**>(a[{i}]))")
            else:
                unpacked.append(f"*static_cast<{p.ctype}*>(a[{i}])")
        lines.append(f"GPUNET_EMU_EXPORT void gpunet_emu_entry_{sig.name}(void** a) {{ {sig.name}({', '.join(unpacked)}); }}")
    return "\n".join(lines) + "\n"


def build(source_path: Path, kernels: dict[str, KernelSignature], sanitize: str | None = None,
          include_dirs: tuple[Path, ...] = (KERNELS_DIR,)) -> Path:
    """Return the path of the shared library for ``source_path`` (building it if not cached)."""
    if sanitize is not None and sanitize not in SANITIZER_FLAGS:
        raise CudaEmuError(f"unknown sanitizer {sanitize!r}; use one of {sorted(SANITIZER_FLAGS)} or None")
    codegen = FLAGS + SANITIZER_FLAGS.get(sanitize, ())
    flags = codegen + tuple(f"-I{d}" for d in include_dirs)
    tu = wrapper_source(source_path, kernels)
    digest = hashlib.sha256()
    for part in (SHIM.read_text(), tu, " ".join(flags), compiler_version()):
        digest.update(part.encode() + b"\0")
    _hash_sources(source_path, include_dirs, digest, set())
    out = cache_dir() / f"{source_path.stem}-{sanitize or 'plain'}-{digest.hexdigest()[:24]}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        tu_path = Path(tmp) / f"{source_path.stem}_emu.cpp"
        tu_path.write_text(tu)
        tmp_out = Path(tmp) / out.name
        shim = precompiled_shim(codegen)
        cmd = [CXX, *flags, "-shared", "-include", str(shim), "-x", "c++", str(tu_path), "-o", str(tmp_out)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise CudaEmuError(f"g++ could not compile {source_path} for the CUDA emulator:\n{result.stderr}")
        os.replace(tmp_out, out)  # atomic: concurrent builders of the same source agree
    return out
