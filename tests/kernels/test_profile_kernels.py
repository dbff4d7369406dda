"""scripts/profile_kernels.py: --emulate checks every case on cuda-emu against the CPU (and writes its CSV), without
a GPU the script refuses in one line, the case table covers every kernel family with a .cu file, the peak-bandwidth
formula, and the GPU path (timing, GB/s, GFLOP/s, fraction of peak, table and CSV) run on the emulated device with a
fake ``cupyx.profiler.benchmark`` and H100 memory properties."""
import csv
import dataclasses
import math
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from gpunet.backend.registry import KERNELS

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))

import profile_kernels  # noqa: E402
from gpunet.testing.kernel_cases import Case, all_cases, normal  # noqa: E402


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
        assert KERNELS[case.kernel].family == case.family, f"{case.kernel} is not a kernel of {case.family}.cu"
        kernels_by_family.setdefault(case.family, set()).add(case.kernel)
    for kernel, declared in KERNELS.items():
        if declared.family is not None:
            assert kernel in kernels_by_family.get(declared.family, ()), f"no profiling case for {kernel}"


def test_a_kernel_that_disagrees_with_the_cpu_is_reported(capsys):
    def args(backend, rng, n):  # the emulated device gets shifted inputs: its softmax must differ
        x = rng.standard_normal((2, n)).astype(np.float32)
        return (backend.asarray(x * (2.0 if backend.name == "cupy" else 1.0)), -1)

    broken = Case("softmax", args, checks={"n": 5}, bytes=lambda n: n, flops=lambda n: n, sizes=())
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


# ----- the GPU path, on the emulated device ---------------------------------------------------------------------
H100 = {"memoryClockRate": 2_619_000, "memoryBusWidth": 5120}  # kHz, bits: H100 SXM HBM3
H100_PEAK = 2 * 2_619_000e3 * 5120 / 8  # bytes/s, double data rate: 3.352 TB/s
GPU_TIMES = (5e-6, 1e-6, 2e-6)  # per repeat, seconds: median 2 us (the mean, 2.67 us, would be wrong)
CPU_TIMES = (1.0, 1.0, 1.0)  # host times, far from the GPU's: a row using them is wrong by 5 orders


def _smallest(kernel, label="", *sizes):
    """The table's case for ``kernel`` at the given sizes (default: its first check size)."""
    case = next(c for c in all_cases() if c.kernel == kernel and c.label == label)
    return dataclasses.replace(case, sizes=sizes or case.checks[:1])


@pytest.fixture
def fake_gpu(monkeypatch):
    """cuda-emu with an H100's memory clock and bus width, and a ``cupyx.profiler.benchmark`` that runs the kernel
    (on the emulator) ``n_warmup + n_repeat`` times and reports GPU_TIMES, in CuPy's own result type."""
    from cupyx.profiler._time import _PerfCaseResult

    from gpunet.backend import get_backend

    runtime = get_backend("cuda-emu").xp.cuda.runtime
    props = {**runtime.getDeviceProperties(0), **H100}
    monkeypatch.setattr(runtime, "getDeviceProperties", lambda index: props)
    calls = []

    def benchmark(func, args=(), kwargs={}, n_repeat=10000, *, name=None, n_warmup=10, max_duration=math.inf,
                  devices=None):
        assert isinstance(args, tuple) and isinstance(devices, tuple)  # as the real benchmark requires
        for _ in range(n_warmup + n_repeat):
            func(*args, **kwargs)
        calls.append({"name": name, "n_repeat": n_repeat, "n_warmup": n_warmup, "devices": devices})
        ts = np.array([CPU_TIMES[:n_repeat], GPU_TIMES[:n_repeat]], dtype=np.float64)
        return _PerfCaseResult(name, ts, devices)  # cpu_times = ts[0], gpu_times = ts[1:] (one row per device)

    monkeypatch.setattr("cupyx.profiler.benchmark", benchmark)
    return calls


def test_gpu_path_times_each_case_and_size_and_writes_the_csv(fake_gpu, tmp_path, capsys):
    cases = [_smallest("sgd_update", "momentum,nesterov", {"n": 1000}, {"n": 37}), _smallest("max_pool2d"),
             _smallest("softmax_cross_entropy")]
    path = tmp_path / "timings.csv"
    profile_kernels.profile(cases, "cuda-emu", repeat=3, warmup=1, seed=0, csv_path=str(path))

    assert fake_gpu == [{"name": case.name, "n_repeat": 3, "n_warmup": 1, "devices": (0,)}
                        for case in cases for _ in case.sizes]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "device cuda-emu:0: gpunet CUDA emulator (CPU), peak memory bandwidth 3352 GB/s"
    assert lines[1].split() == ["family", "kernel", "sizes", "time", "us", "GB/s", "GFLOP/s", "of", "peak"]
    assert lines[-1] == f"wrote {path}"
    # hand-worked: SGD on n = 1000 moves 20 bytes and does 6 FLOPs per element in 2 us
    assert lines[2].split() == ["optimizers", "sgd_update[momentum,nesterov]", "n=1000", "2.0", "10.0", "3.0", "0.3%"]
    assert lines[3].split()[2:] == ["n=37", "2.0", f"{20 * 37 / 2e-6 / 1e9:.1f}", f"{6 * 37 / 2e-6 / 1e9:.1f}",
                                    f"{20 * 37 / 2e-6 / H100_PEAK:.1%}"]
    assert len(lines) == 2 + 4 + 1  # device, header, a line per case and size, "wrote"

    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == ("family", "kernel", "sizes", "implementation", "time_us", "gb_per_s",
                                            "gflop_per_s", "peak_fraction", "bytes", "flops")
        rows = list(reader)
    expected = [(case, sizes) for case in cases for sizes in case.sizes]
    assert [(r["family"], r["kernel"], r["sizes"]) for r in rows] == [
        (c.family, c.name, " ".join(f"{k}={v}" for k, v in s.items())) for c, s in expected]
    for row, (case, sizes) in zip(rows, expected):
        moved, flops = case.bytes(**sizes), case.flops(**sizes)
        assert row["implementation"] == f"kernels/{case.family}.cu"  # the CUDA kernel, not the xp reference
        assert (int(row["bytes"]), int(row["flops"])) == (moved, flops)
        assert float(row["time_us"]) == pytest.approx(2.0)
        assert float(row["gb_per_s"]) == pytest.approx(moved / 2e-6 / 1e9)
        assert float(row["gflop_per_s"]) == pytest.approx(flops / 2e-6 / 1e9)
        assert float(row["peak_fraction"]) == pytest.approx(moved / 2e-6 / H100_PEAK)
    first = rows[0]  # hand-worked, as in the table
    assert (float(first["gb_per_s"]), float(first["gflop_per_s"])) == pytest.approx((10.0, 3.0))
    assert float(first["peak_fraction"]) == pytest.approx(1e10 / 3.35232e12)
    pool = rows[2]  # max pooling 2x3x9x11, 3x3/2 pad 1 -> 5x6 outputs: x read, y and int64 argmax written
    assert (int(pool["bytes"]), int(pool["flops"])) == (4 * 2 * 3 * 9 * 11 + 12 * 2 * 3 * 5 * 6, 9 * 2 * 3 * 5 * 6)


def test_gpu_path_without_a_csv_writes_no_file(fake_gpu, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    profile_kernels.profile([_smallest("dropout_apply")], "cuda-emu", repeat=1, warmup=0, seed=0, csv_path=None)
    assert list(tmp_path.iterdir()) == []
    out = capsys.readouterr().out
    assert "wrote" not in out and len(out.splitlines()) == 3


# ----- --emulate --csv --------------------------------------------------------------------------------------------
def _read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == ("family", "kernel", "sizes", "implementation", "max_abs_error", "ok")
        return list(reader)


def test_emulate_csv_has_a_row_per_case_with_its_error(tmp_path, capsys):
    path = tmp_path / "check.csv"
    assert profile_kernels.main(["--emulate", "--family", "pool", "--csv", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {path}"
    rows = _read_rows(path)
    pool = [c for c in all_cases() if c.family == "pool"]
    assert [r["kernel"] for r in rows] == [c.name for c in pool]
    for row, case in zip(rows, pool):
        assert row["sizes"] == " ".join(f"{k}={v}" for k, v in case.checks[0].items())
        assert row["implementation"] == "kernels/pool.cu" and row["ok"] == "True"
        assert 0.0 <= float(row["max_abs_error"]) <= 1e-5


def test_emulate_csv_records_a_mismatch_and_its_size(tmp_path):
    def args(backend, rng, n):  # the emulated device gets doubled inputs: its softmax must differ
        x = rng.standard_normal((2, n)).astype(np.float32)
        return (backend.asarray(x * (2.0 if backend.name == "cupy" else 1.0)), -1)

    broken = Case("softmax", args, checks={"n": 5}, bytes=lambda n: n, flops=lambda n: n, sizes=())
    path = tmp_path / "check.csv"
    assert profile_kernels.emulate([broken], seed=0, csv_path=str(path)) == 1
    [row] = _read_rows(path)
    x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32).astype(np.float64)

    def softmax(z):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    assert row["ok"] == "False" and row["sizes"] == "n=5"
    assert float(row["max_abs_error"]) == pytest.approx(np.abs(softmax(2 * x) - softmax(x)).max(), rel=1e-5)


def test_max_error_counts_nan_in_both_as_equal_and_in_one_as_infinite():
    a = np.array([1.0, np.nan, np.inf, 2.0], dtype=np.float32)
    assert profile_kernels._max_error(a, np.array([1.5, np.nan, np.inf, 2.0])) == 0.5
    assert profile_kernels._max_error(a, np.array([1.0, 0.0, np.inf, 2.0])) == math.inf
    assert profile_kernels._max_error(a, a[:3]) == math.inf


def test_csv_into_a_missing_folder_is_refused_before_any_work(tmp_path):
    done = run("--emulate", "--csv", str(tmp_path / "nope" / "out.csv"))
    assert done.returncode != 0 and done.stdout == ""
    assert f"the folder {tmp_path / 'nope'} does not exist" in done.stderr


def test_a_device_that_is_not_a_cuda_gpu_is_refused():
    for device in ("cuda-emu", "cpu", "gpu7"):
        done = run("--device", device)
        assert done.returncode != 0 and done.stdout == ""
        assert done.stderr == (f"profile_kernels: --device '{device}' is not a CUDA GPU; give cuda:N to time the "
                               "kernels, or --emulate to check them on the CPU emulator\n")
