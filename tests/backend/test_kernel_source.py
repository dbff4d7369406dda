"""What ``cupy.RawModule`` gets changes with every kernel file, headers included: CuPy's on-disk cache key is the
source text plus the options (``cupy/cuda/compiler.py``), and the stand-in caches by exactly that key, so a header
change that did not reach the text would keep running the old build here as on a GPU machine."""
import re
import shutil

import numpy as np
import pytest

from gpunet.backend import cupy_backend, kernel_dir
from gpunet.backend.device import Device
from gpunet.backend.emulated import cupy_standin
from gpunet.backend.kernel_source import kernel_source
from gpunet.backend.registry import KERNELS, families
from gpunet.testing import nvrtc

BLOCK_REDUCE_RESULT = "T result = scratch[tid - lane];"
DOUBLED = "T result = op(scratch[tid - lane], scratch[tid - lane]);"  # softmax's (max, sum) with itself: sum doubled


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    """A copy of kernels/ the CUDA backend compiles from, a fresh disk cache, and no module in memory (a new
    process)."""
    folder = tmp_path / "kernels"
    shutil.copytree(kernel_dir(), folder)
    monkeypatch.setenv("GPUNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cupy_backend, "kernel_source", lambda family: kernel_source(family, folder))
    monkeypatch.setattr(cupy_standin, "_modules", {})
    return folder


def _edit_header(folder):
    header = folder / "common.cuh"
    assert BLOCK_REDUCE_RESULT in header.read_text()
    header.write_text(header.read_text().replace(BLOCK_REDUCE_RESULT, DOUBLED))


def _softmax_in_a_new_process(monkeypatch):
    monkeypatch.setattr(cupy_standin, "_modules", {})  # CuPy's memory cache is per process; its disk cache stays
    backend = cupy_backend.CupyBackend(Device("cuda-emu", 0), cupy_standin)
    x = backend.asarray(np.array([[0.0, 1.0, 2.0], [3.0, 3.0, 3.0]], dtype=np.float32))
    y = backend.xp.empty_like(x)
    backend.launch("softmax", "softmax_rows_f32", 2, 32, (x, y, np.int64(2), np.int64(3), np.int64(32)))
    return backend.to_numpy(y)


def test_the_source_inlines_every_header_and_keeps_file_and_line(kernels):
    text = kernel_source("softmax", kernels)
    assert "#include" not in text and "block_reduce" in text
    after_include = _line_after_include(kernels / "softmax.cu")
    assert re.findall(r'#line \d+ "[^"]+"', text) == ['#line 1 "softmax.cu"', '#line 1 "common.cuh"',
                                                      f'#line {after_include} "softmax.cu"']


def _line_after_include(path):
    lines = path.read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if line.startswith('#include "common.cuh"')) + 1


def test_editing_only_a_header_changes_what_raw_module_gets(kernels):
    before = kernel_source("softmax", kernels)
    _edit_header(kernels)
    after = kernel_source("softmax", kernels)
    assert before != after and DOUBLED in after


def test_a_header_change_reaches_the_kernels_through_cupys_disk_cache(kernels, monkeypatch):
    expected = np.array([[0.09003057, 0.24472847, 0.66524096], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(_softmax_in_a_new_process(monkeypatch), expected, rtol=1e-6)
    _edit_header(kernels)
    np.testing.assert_allclose(_softmax_in_a_new_process(monkeypatch), expected / 2, rtol=1e-6)


def test_the_stand_in_caches_by_source_text_and_options_only_as_cupy_does(kernels, monkeypatch):
    """The bug the inlining fixes, shown by the stand-in: a source naming its header keeps its first build."""
    code = (kernels / "softmax.cu").read_text()  # as RawModule got it before: #include "common.cuh", -I<dir>
    first = cupy_standin.RawModule(code=code, options=(f"-I{kernels}",))
    first.compile()
    _edit_header(kernels)
    monkeypatch.setattr(cupy_standin, "_modules", {})
    again = cupy_standin.RawModule(code=code, options=(f"-I{kernels}",))
    again.compile()
    assert again._module.library_path.read_bytes() == first._module.library_path.read_bytes()
    rebuilt = cupy_standin.RawModule(code=code, options=(f"-I{kernels}", f"-I{kernels}/."))
    rebuilt.compile()  # another key: built now, from the edited header
    assert rebuilt._module.library_path.read_bytes() != first._module.library_path.read_bytes()


@pytest.mark.parametrize("family", families())
def test_what_raw_module_gets_compiles_with_nvrtc_and_cupys_options_alone(family, tmp_path):
    """No include path needed; ``-ftz=true`` (which CuPy appends) makes float32 arithmetic flush subnormals."""
    path = tmp_path / f"{family}.cu"
    path.write_text(kernel_source(family))
    ptx = nvrtc.compile_file(path, "compute_80", options=("-ftz=true",), include_dirs=()).ptx
    entries = set(re.findall(r"\.entry (\w+)\(", ptx))
    assert {e for k in KERNELS.values() if k.family == family for e in k.entry_points} <= entries
    assert re.search(r"\.ftz\.f32", ptx)
