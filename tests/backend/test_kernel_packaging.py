"""The CUDA kernel sources reach users: ``kernel_dir()`` finds the checkout's ``kernels/`` or a wheel's
``gpunet/kernels/``; the CuPy backend compiles from there; built wheels (directly, or from the sdist) carry every
``kernels/*.cu`` and ``*.cuh`` (and the emulator's shim.h)."""
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gpunet.backend import Device, kernel_dir, kernel_source
from gpunet.backend.cupy_backend import CupyBackend
from gpunet.backend.emulated import cupy_standin

REPO = Path(__file__).resolve().parents[2]
KERNEL_FILES = sorted(p.name for p in [*(REPO / "kernels").glob("*.cu"), *(REPO / "kernels").glob("*.cuh")])


def test_kernel_files_exist():
    assert "common.cuh" in KERNEL_FILES and "softmax.cu" in KERNEL_FILES and len(KERNEL_FILES) >= 9


def test_checkout_uses_its_kernels_directory():
    assert kernel_dir() == REPO / "kernels"


def layout(root: Path, checkout: bool, packaged: bool) -> Path:
    """A gpunet package directory under ``root``: inside a checkout (pyproject.toml, kernels/) and/or holding a
    wheel's gpunet/kernels/."""
    package = root / "gpunet"
    package.mkdir(parents=True)
    if checkout:
        (root / "pyproject.toml").write_text("[project]\nname = 'gpunet'\n")
        (root / "kernels").mkdir()
        (root / "kernels" / "common.cuh").write_text("// checkout\n")
    if packaged:
        (package / "kernels").mkdir()
        (package / "kernels" / "common.cuh").write_text("// packaged\n")
    return package


def test_locator_checkout_layout(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_source, "PACKAGE_DIR", layout(tmp_path / "repo", checkout=True, packaged=False))
    assert kernel_dir() == tmp_path / "repo" / "kernels"


def test_locator_installed_layout(tmp_path, monkeypatch):
    site = tmp_path / "lib" / "site-packages"
    monkeypatch.setattr(kernel_source, "PACKAGE_DIR", layout(site, checkout=False, packaged=True))
    (site / "kernels").mkdir()  # a stray kernels/ next to the package is not a checkout (no pyproject.toml)
    (site / "kernels" / "common.cuh").write_text("// someone else's\n")
    assert kernel_dir() == site / "gpunet" / "kernels"


def test_locator_prefers_the_checkout_when_both_exist(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_source, "PACKAGE_DIR", layout(tmp_path, checkout=True, packaged=True))
    assert kernel_dir() == tmp_path / "kernels"  # the single source, never a stale built copy


def test_locator_error_names_both_places(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_source, "PACKAGE_DIR", layout(tmp_path, checkout=False, packaged=False))
    with pytest.raises(FileNotFoundError) as info:
        kernel_dir()
    message = str(info.value)
    assert str(tmp_path / "kernels") in message and str(tmp_path / "gpunet" / "kernels") in message
    assert "reinstall gpunet" in message


def test_cupy_backend_compiles_the_packaged_kernels(tmp_path, monkeypatch):
    package = layout(tmp_path / "site-packages", checkout=False, packaged=True)
    for name in KERNEL_FILES:
        shutil.copy(REPO / "kernels" / name, package / "kernels" / name)
    monkeypatch.setattr(kernel_source, "PACKAGE_DIR", package)
    backend = CupyBackend(Device("cuda-emu"), cupy_standin)
    x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    y = backend.to_numpy(backend.softmax(backend.asarray(x), 1))
    expected = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(y, expected / expected.sum(1, keepdims=True), rtol=1e-6)
    assert backend._modules["softmax"].code == kernel_source.kernel_source("softmax", package / "kernels")


def source_copy(target: Path) -> Path:
    """What the project's build reads: the build files, the package and kernels/ (no build artefacts)."""
    target.mkdir()
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(REPO / name, target / name)
    shutil.copytree(REPO / "kernels", target / "kernels")
    shutil.copytree(REPO / "gpunet", target / "gpunet", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return target


def build_wheel(project: Path, out: Path) -> Path:
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # offline
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out),
                             str(project)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("gpunet-*.whl")
    return wheel


def assert_ships_kernels(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {n for n in names if n.startswith("gpunet/kernels/")} == {f"gpunet/kernels/{k}" for k in KERNEL_FILES}
    assert "gpunet/backend/emulated/shim.h" in names and "gpunet/backend/kernel_source.py" in names
    assert not any(n.startswith("kernels/") for n in names)  # inside the package, not a top-level directory


def test_wheel_ships_every_kernel_source(tmp_path):
    assert_ships_kernels(build_wheel(source_copy(tmp_path / "src"), tmp_path / "wheel"))


def test_wheel_built_from_the_sdist_ships_every_kernel_source(tmp_path):
    project = source_copy(tmp_path / "src")
    result = subprocess.run([sys.executable, "-c", "from setuptools import build_meta; "
                             f"print(build_meta.build_sdist({str(tmp_path / 'sdist')!r}))"],
                            cwd=project, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    sdist = tmp_path / "sdist" / result.stdout.split()[-1]
    with tarfile.open(sdist) as tar:
        members = {Path(*Path(m).parts[1:]).as_posix() for m in tar.getnames()}
        assert {f"kernels/{k}" for k in KERNEL_FILES} <= members and "setup.py" in members
        tar.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    assert_ships_kernels(build_wheel(unpacked, tmp_path / "wheel"))
