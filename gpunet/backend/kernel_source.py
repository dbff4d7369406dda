"""Where the CUDA kernel sources are: ``kernels/`` of a source checkout (an editable install too), or the copy a
wheel carries in ``gpunet/kernels/``.

The top-level ``kernels/`` directory is the single source; building a wheel (``setup.py``'s build_py) copies its
``*.cu`` and ``*.cuh`` files into the package.

``kernel_source(family)`` is what ``cupy.RawModule`` gets: the ``.cu`` file with every local header it includes
written into it. CuPy caches compiled kernels on disk by the source text and the options only
(``cupy/cuda/compiler.py``), so a source that merely names a header would keep loading the old binary after the
header changed; with the headers inlined, any change to any kernel file changes the text and so the cache key.
``#line`` directives keep compiler messages and ``__FILE__``/``__LINE__`` pointing at the original files.
"""
from __future__ import annotations

import re
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the gpunet package directory


def kernel_dir() -> Path:
    """The directory holding ``common.cuh`` and the ``<family>.cu`` files (also the include path for NVRTC)."""
    checkout = PACKAGE_DIR.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "kernels" / "common.cuh").is_file():
        return checkout / "kernels"
    packaged = PACKAGE_DIR / "kernels"
    if (packaged / "common.cuh").is_file():
        return packaged
    raise FileNotFoundError(
        f"gpunet's CUDA kernel sources are missing: neither {checkout / 'kernels'} (a source checkout) nor "
        f"{packaged} (an installed wheel) holds common.cuh; reinstall gpunet (pip install --force-reinstall gpunet)"
    )


_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[ \t]*$', re.M)
_PRAGMA_ONCE = re.compile(r"^[ \t]*#[ \t]*pragma[ \t]+once[ \t]*$", re.M)


def kernel_source(family: str, directory: Path | None = None) -> str:
    """``<family>.cu`` of ``directory`` (default ``kernel_dir()``) with its ``#include "..."`` headers inlined,
    recursively, each once (they use ``#pragma once``)."""
    directory = kernel_dir() if directory is None else directory
    return _inline(directory / f"{family}.cu", directory, set())


def _inline(path: Path, directory: Path, included: set) -> str:
    text = _PRAGMA_ONCE.sub("", path.read_text())
    parts, position = [f'#line 1 "{path.name}"\n'], 0
    for match in _INCLUDE.finditer(text):
        header = (path.parent / match.group(1)).resolve()
        if not header.is_file():
            header = (directory / match.group(1)).resolve()
        if not header.is_file():
            raise FileNotFoundError(f"{path}: #include \"{match.group(1)}\" names no file next to it or in {directory}")
        parts.append(text[position:match.start()])
        if header not in included:
            included.add(header)
            parts.append(_inline(header, directory, included))
        line = text.count("\n", 0, match.end()) + 2  # the line after the #include
        parts.append(f'\n#line {line} "{path.name}"')
        position = match.end()
    parts.append(text[position:])
    return "".join(parts)
