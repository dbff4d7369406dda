"""Where the CUDA kernel sources are: ``kernels/`` of a source checkout (an editable install too), or the copy a
wheel carries in ``gpunet/kernels/``.

The top-level ``kernels/`` directory is the single source; building a wheel (``setup.py``'s build_py) copies its
``*.cu`` and ``*.cuh`` files into the package.
"""
from __future__ import annotations

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
