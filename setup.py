"""Build hook (everything else is in pyproject.toml): wheels carry the CUDA kernel sources.

The top-level ``kernels/`` directory is their single source. ``build_py`` copies its ``*.cu`` and ``*.cuh`` files
into the built package as ``gpunet/kernels/``, where ``gpunet.backend.kernel_dir()`` finds them in a non-editable
install; an editable install reads ``kernels/`` of the checkout instead.
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

KERNELS = Path(__file__).resolve().parent / "kernels"


class BuildPyWithKernels(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        sources = sorted([*KERNELS.glob("*.cu"), *KERNELS.glob("*.cuh")])
        if not sources:
            raise SystemExit(f"gpunet build: no CUDA kernel sources (*.cu, *.cuh) in {KERNELS}")
        target = Path(self.build_lib) / "gpunet" / "kernels"
        self.mkpath(str(target))
        for source in sources:
            self.copy_file(str(source), str(target / source.name))


setup(cmdclass={"build_py": BuildPyWithKernels})
