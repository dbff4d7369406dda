"""scripts/profile_kernels.py: --emulate checks every case on cuda-emu against the CPU, without a GPU the script
refuses in one line, the case table covers every kernel family with a .cu file, the peak-bandwidth formula."""
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from gpunet.backend.cupy_backend import CUDA_KERNELS

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import profile_kernels  # noqa: E402
from kernel_cases import Case, all_cases, normal  # noqa: E402


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPTS / "profile_kernels.py"), *args], capture_output=True,
                          text=True, timeout=600)


def test_emulate_runs_every_case_and_exits_zero():
    done = run("--emulate")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    cases = all_cases()
    assert lines[-1].startswith(f"--emulate: {len(cases)} of {len(cases)} cases agree")
    for case in cases:
        line = next(line for line in lines if line.split()[:2] == [case.family, case.name])
        assert line.endswith(" ok") and f"kernels/{case.family}.cu" in line  # the CUDA kernel ran, not the reference


def test_without_a_gpu_the_script_says_so_in_one_line_and_fails():
    done = run()
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("profile_kernels: no CUDA GPU to profile (")
    assert "--emulate" in done.stderr


def test_the_table_covers_every_kernel_family_with_a_cuda_file():
    kernels_by_family = {}
    for case in all_cases():
        assert CUDA_KERNELS.get(case.kernel) == case.family, f"{case.kernel} is not a kernel of {case.family}.cu"
        kernels_by_family.setdefault(case.family, set()).add(case.kernel)
    for kernel, family in CUDA_KERNELS.items():
        assert kernel in kernels_by_family.get(family, ()), f"no profiling case for {kernel} ({family}.cu)"


def test_a_kernel_that_disagrees_with_the_cpu_is_reported(capsys):
    def args(backend, rng, n):  # the emulated device gets shifted inputs: its softmax must differ
        x = rng.standard_normal((2, n)).astype(np.float32)
        return (backend.asarray(x * (2.0 if backend.name == "cupy" else 1.0)), -1)

    broken = Case("softmax", "softmax", args, bytes=lambda n: n, flops=lambda n: n, sizes=(), emulate={"n": 5})
    assert profile_kernels.emulate([broken], seed=0) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_unknown_family_is_named():
    done = run("--emulate", "--family", "nope")
    assert done.returncode != 0 and "no kernel family nope" in done.stderr


def _fake_cupy(props, attributes=None):
    runtime = types.SimpleNamespace(getDeviceProperties=lambda index: props, cudaDevAttrMemoryClockRate=36,
                                    cudaDevAttrGlobalMemoryBusWidth=37,
                                    deviceGetAttribute=lambda attr, index: (attributes or {})[attr])
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


def test_peak_bandwidth_from_memory_clock_and_bus_width():
    h100 = _fake_cupy({"memoryClockRate": 2_619_000, "memoryBusWidth": 5120})  # kHz, bits (H100 SXM HBM3)
    assert profile_kernels.peak_bandwidth(h100, 0) == pytest.approx(3.352e12, rel=1e-3)
    no_fields = _fake_cupy({}, {36: 1_593_000, 37: 5120})  # A100 80 GB (2.04 TB/s), through the attributes
    assert profile_kernels.peak_bandwidth(no_fields, 0) == pytest.approx(2.039e12, rel=1e-3)


def test_case_inputs_are_identical_on_every_backend():
    from gpunet.backend import get_backend

    a = normal(get_backend("cpu"), np.random.default_rng(3), (4, 5))
    b = normal(get_backend("cuda-emu"), np.random.default_rng(3), (4, 5))
    np.testing.assert_array_equal(a, get_backend("cuda-emu").to_numpy(b))
