"""Every kernel file (kernels/*.cu and the emulator's test kernels) compiles with NVRTC, the
compiler CuPy uses, for sm_70, sm_80 and sm_90, without warnings from our sources."""

import re
import warnings
from pathlib import Path

import pytest

from gpunet.testing import nvrtc
from gpunet.backend.emulated import parse_kernels

KERNEL_FILES = sorted(nvrtc.KERNELS_DIR.glob("*.cu")) + sorted((Path(__file__).parent / "cuda_src").glob("*.cu"))
SOURCE_WARNING = re.compile(r"^\S+\.cuh?\(\d+\): warning", re.M)


def test_kernel_files_are_found():
    assert nvrtc.KERNELS_DIR / "softmax.cu" in KERNEL_FILES


@pytest.mark.parametrize("arch", nvrtc.ARCHS)
@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.name)
def test_kernel_file_compiles_for_arch(path, arch):
    result = nvrtc.compile_file(path, arch)
    assert not SOURCE_WARNING.search(result.log), f"NVRTC warnings for {path.name} ({arch}):\n{result.log}"
    if result.log:  # NVRTC's own notices, e.g. that compute_70 is deprecated: shown, not fatal
        warnings.warn(f"NVRTC on {path.name} ({arch}): {result.log}", stacklevel=1)
    target = re.search(r"^\.target (\w+)", result.ptx, re.M).group(1)
    assert target == arch.replace("compute_", "sm_")
    entries = set(re.findall(r"\.entry (\w+)\(", result.ptx))
    assert entries == set(parse_kernels(path.read_text(), str(path)))


def test_compile_error_raises_with_the_log(tmp_path):
    bad = tmp_path / "bad.cu"
    bad.write_text('#include "common.cuh"\nextern "C" __global__ void k(float* y) { y[0] = undefined_name; }\n')
    with pytest.raises(nvrtc.NvrtcError, match=r'(?s)bad\.cu.*compute_80.*bad\.cu\(2\): error: identifier "undefined_name"'):
        nvrtc.compile_file(bad, "compute_80")


def test_source_warnings_are_reported_in_the_log(tmp_path):
    src = tmp_path / "warn.cu"
    src.write_text('extern "C" __global__ void k(float* y) { int unused = 3; y[0] = 1.0f; }\n')
    result = nvrtc.compile_file(src, "compute_80")
    assert SOURCE_WARNING.search(result.log) and "unused" in result.log


def test_a_clean_compile_leaves_pythons_shared_bytes_alone(tmp_path):
    """NVRTC writes its log and PTX into the buffers it is given; a clean compile's log is one byte, and
    ``b" " * 1`` is Python's shared one-byte object, so writing into a bytes buffer turned every b" " in the process
    into b"\\x00" (torch.load then failed on files torch.save had just written)."""
    source = tmp_path / "clean.cu"
    source.write_text('extern "C" __global__ void one(float *x) { x[0] = 1.0f; }\n')
    result = nvrtc.compile_file(source, "compute_80")
    assert result.log == "" and ".entry one" in result.ptx
    assert b" " * 1 == bytes([32]) and b" ".strip() == b""
