"""scripts/profile_kernels.py: --emulate checks every case on cuda-emu against the CPU (and writes its CSV), without
a GPU the script refuses in one line, the case table covers every kernel family with a .cu file, the device's peaks
from its properties (H100 SXM vs PCIe), and the GPU path (only the raw launches between CUDA events, on preallocated
arrays, L2 flushed before each repetition; GB/s, GFLOP/s, fraction of the memory or compute floor, table and CSV) run
on the emulated device with H100 SXM properties and fake CUDA events on a clock that only the device's work
advances."""
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
                                    cudaDevAttrGlobalMemoryBusWidth=37, cudaDevAttrClockRate=13,
                                    cudaDevAttrL2CacheSize=38, cudaDevAttrMultiProcessorCount=16,
                                    deviceGetAttribute=lambda attr, index: (attributes or {})[attr])
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


# cudaDeviceProp of the two H100s (kHz, bits, bytes); values as the CUDA runtime reports them
H100_SXM = {"name": b"NVIDIA H100 80GB HBM3", "memoryClockRate": 2_619_000, "memoryBusWidth": 5120,
            "multiProcessorCount": 132, "clockRate": 1_980_000, "l2CacheSize": 50 << 20, "major": 9, "minor": 0}
H100_PCIE = {"name": b"NVIDIA H100 PCIe", "memoryClockRate": 1_593_000, "memoryBusWidth": 5120,
             "multiProcessorCount": 114, "clockRate": 1_755_000, "l2CacheSize": 50 << 20, "major": 9, "minor": 0}


def test_peaks_from_the_devices_own_properties_sxm_and_pcie():
    sxm = profile_kernels.device_peaks(_fake_cupy(H100_SXM), 0)
    assert (sxm.form_factor, sxm.l2_bytes, sxm.sms) == ("SXM", 50 << 20, 132)
    assert sxm.bandwidth == pytest.approx(3.352e12, rel=1e-3)  # NVIDIA: 3.35 TB/s
    assert sxm.fp32_flops == pytest.approx(132 * 128 * 2 * 1.98e9) == pytest.approx(66.9e12, rel=1e-3)  # 67 TF
    pcie = profile_kernels.device_peaks(_fake_cupy(H100_PCIE), 0)
    assert pcie.form_factor == "PCIe"
    assert pcie.bandwidth == pytest.approx(2.039e12, rel=1e-3)  # NVIDIA: 2.0 TB/s
    assert pcie.fp32_flops == pytest.approx(51.2e12, rel=1e-3)  # NVIDIA: 51 TFLOP/s
    assert sxm.describe() == ("NVIDIA H100 80GB HBM3 (SXM): peaks 3352 GB/s, 66.9 TFLOP/s fp32 (132 SMs at 1.98 "
                              "GHz), L2 50 MB")


def test_peaks_through_the_attributes_when_cuda_13_dropped_the_fields():
    a100 = {"name": b"NVIDIA A100-SXM4-80GB", "major": 8, "minor": 0, "multiProcessorCount": 108}
    peaks = profile_kernels.device_peaks(_fake_cupy(a100, {36: 1_593_000, 37: 5120, 13: 1_410_000, 38: 40 << 20}), 0)
    assert peaks.bandwidth == pytest.approx(2.039e12, rel=1e-3)  # A100 80 GB: 2.04 TB/s
    assert peaks.fp32_flops == pytest.approx(19.5e12, rel=1e-3)  # 64 FP32 lanes per SM on sm_80
    assert (peaks.form_factor, peaks.l2_bytes) == ("SXM", 40 << 20)


def test_unknown_architecture_has_no_compute_floor_and_the_memory_floor_decides():
    future = {**H100_SXM, "name": b"Some GPU", "major": 99, "minor": 0}
    peaks = profile_kernels.device_peaks(_fake_cupy(future), 0)
    assert peaks.fp32_flops is None and peaks.form_factor == ""
    bound, seconds = peaks.floor(3_352_000, 10**12)
    assert bound == "memory" and seconds == pytest.approx(1e-6, rel=1e-3)
    assert "fp32 peak unknown" in peaks.describe()


def test_case_inputs_are_identical_on_every_backend():
    from gpunet.backend import get_backend

    a = normal(get_backend("cpu"), np.random.default_rng(3), (4, 5))
    b = normal(get_backend("cuda-emu"), np.random.default_rng(3), (4, 5))
    np.testing.assert_array_equal(a, get_backend("cuda-emu").to_numpy(b))


# ----- the GPU path, on the emulated device ---------------------------------------------------------------------
H100_PEAK = 2 * 2_619_000e3 * 5120 / 8  # bytes/s, double data rate: 3.352 TB/s
H100_FLOPS = 132 * 128 * 2 * 1.98e9
LAUNCH_SECONDS, FLUSH_SECONDS = 2e-6, 100e-6  # GPU time per raw launch and per L2 flush on the fake device


def _smallest(kernel, label="", *sizes):
    """The table's case for ``kernel`` at the given sizes (default: its first check size)."""
    case = next(c for c in all_cases() if c.kernel == kernel and c.label == label)
    return dataclasses.replace(case, sizes=sizes or case.checks[:1])


@pytest.fixture
def fake_gpu(monkeypatch):
    """cuda-emu with an H100 SXM's properties and CUDA events on a fake GPU clock that only the device's work
    advances: LAUNCH_SECONDS per raw kernel launch, FLUSH_SECONDS per L2 flush. ``log`` lists, in order, the flushes,
    event records and launches (with the ids of their array arguments), and the device arrays made while a timed
    region is open."""
    from gpunet.backend import get_backend
    from gpunet.backend.emulated import cupy_standin, device_array

    runtime = get_backend("cuda-emu").xp.cuda.runtime
    props = {**runtime.getDeviceProperties(0), **H100_SXM}  # the stand-in's grid limits, an H100's figures
    monkeypatch.setattr(runtime, "getDeviceProperties", lambda index: dict(props))
    clock, log, timing = [0.0], [], [False]

    class Event:
        def record(self):
            self.time = clock[0]
            timing[0] = not timing[0]
            log.append(("start" if timing[0] else "end",))

        def synchronize(self):
            log.append(("synchronize",))

    monkeypatch.setattr(cupy_standin.cuda, "Event", Event, raising=False)
    monkeypatch.setattr(cupy_standin.cuda, "get_elapsed_time", lambda a, b: (b.time - a.time) * 1e3, raising=False)
    launch = cupy_standin._Kernel.__call__

    def timed_launch(self, grid, block, args, *, shared_mem=0):
        clock[0] += LAUNCH_SECONDS
        log.append(("launch", self.name, tuple(id(a) for a in args if isinstance(a, np.ndarray))))
        return launch(self, grid, block, args, shared_mem=shared_mem)

    monkeypatch.setattr(cupy_standin._Kernel, "__call__", timed_launch)
    flush = profile_kernels.L2Flush.__call__

    def timed_flush(self):
        clock[0] += FLUSH_SECONDS
        log.append(("flush", self.nbytes))
        return flush(self)

    monkeypatch.setattr(profile_kernels.L2Flush, "__call__", timed_flush)
    finalize = device_array.DeviceArray.__array_finalize__

    def noting_finalize(self, obj):
        if timing[0]:
            log.append(("array made while timing", self.shape))
        return finalize(self, obj)

    monkeypatch.setattr(device_array.DeviceArray, "__array_finalize__", noting_finalize)
    return log


def _timed_regions(log):
    """The entries between each start and end event."""
    regions, current = [], None
    for entry in log:
        if entry[0] == "start":
            current = []
        elif entry[0] == "end":
            regions.append(current)
            current = None
        elif current is not None:
            current.append(entry)
    return regions


def test_only_the_raw_launches_are_timed_on_preallocated_arrays_with_l2_flushed(fake_gpu, capsys):
    # the embedding backward runs argsort, bincount and cumsum (xp, with allocations) around its one kernel
    case = _smallest("embedding_backward")
    profile_kernels.profile([case], "cuda-emu", repeat=3, warmup=2, seed=0, csv_path=None)
    first_launch = next(i for i, e in enumerate(fake_gpu) if e[0] == "launch")  # the recording call
    replays = fake_gpu[first_launch + 1:]
    flushes = [e for e in replays if e[0] == "flush"]
    assert len(flushes) == 2 + 3 and all(e[1] == 2 * (50 << 20) for e in flushes)  # twice the 50 MB L2
    regions = _timed_regions(replays)
    assert len(regions) == 3
    recorded = fake_gpu[first_launch]
    for region in regions:
        assert region == [recorded]  # the kernel alone, on the very arrays the recording call made
    for i, entry in enumerate(replays):
        if entry[0] == "start":
            assert replays[i - 1][0] == "flush"  # flushed right before each timed region, never inside it
    assert replays[-1] == ("synchronize",)
    line = capsys.readouterr().out.splitlines()[2].split()
    assert line[-7:-5] == ["1", f"{LAUNCH_SECONDS * 1e6:.1f}"]  # one launch, 2 us: neither the flush nor the xp work


def test_gpu_path_times_each_case_and_size_and_writes_the_csv(fake_gpu, tmp_path, capsys):
    cases = [_smallest("sgd_update", "momentum,nesterov", {"n": 1000}, {"n": 37}), _smallest("max_pool2d"),
             _smallest("softmax_cross_entropy")]
    path = tmp_path / "timings.csv"
    profile_kernels.profile(cases, "cuda-emu", repeat=3, warmup=1, seed=0, csv_path=str(path))

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("device cuda-emu:0: NVIDIA H100 80GB HBM3 (SXM): peaks 3352 GB/s, 66.9 TFLOP/s fp32 (132 SMs "
                        "at 1.98 GHz), L2 50 MB; L2 flushed before every repetition")
    assert lines[1].split() == ["family", "kernel", "sizes", "launches", "time", "us", "GB/s", "GFLOP/s", "bound",
                                "floor", "us", "of", "floor"]
    assert lines[-1] == f"wrote {path}"
    # hand-worked: SGD on n = 1000 moves 20 bytes and does 6 FLOPs per element in one 2 us launch; memory floor
    # 20000 B / 3.352 TB/s = 5.97 ns = 0.3% of 2 us
    assert lines[2].split() == ["optimizers", "sgd_update[momentum,nesterov]", "n=1000", "1", "2.0", "10.0", "3.0",
                                "memory", "0.01", "0.3%"]
    assert lines[3].split()[2:] == ["n=37", "1", "2.0", f"{20 * 37 / 2e-6 / 1e9:.1f}", f"{6 * 37 / 2e-6 / 1e9:.1f}",
                                    "memory", f"{20 * 37 / H100_PEAK * 1e6:.2f}", f"{20 * 37 / 2e-6 / H100_PEAK:.1%}"]
    assert len(lines) == 2 + 4 + 1  # device, header, a line per case and size, "wrote"

    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == ("family", "kernel", "sizes", "implementation", "launches", "time_us",
                                            "gb_per_s", "gflop_per_s", "bound", "floor_us", "of_floor", "bytes",
                                            "flops")
        rows = list(reader)
    expected = [(case, sizes) for case in cases for sizes in case.sizes]
    assert [(r["family"], r["kernel"], r["sizes"]) for r in rows] == [
        (c.family, c.name, " ".join(f"{k}={v}" for k, v in s.items())) for c, s in expected]
    for row, (case, sizes) in zip(rows, expected):
        moved, flops = case.bytes(**sizes), case.flops(**sizes)
        launches = int(row["launches"])
        seconds = launches * LAUNCH_SECONDS
        assert row["implementation"] == f"kernels/{case.family}.cu"  # the CUDA kernel, not the xp reference
        assert launches >= 1 and (int(row["bytes"]), int(row["flops"])) == (moved, flops)
        assert float(row["time_us"]) == pytest.approx(seconds * 1e6)
        assert float(row["gb_per_s"]) == pytest.approx(moved / seconds / 1e9)
        assert float(row["gflop_per_s"]) == pytest.approx(flops / seconds / 1e9)
        floor = max(moved / H100_PEAK, flops / H100_FLOPS)
        assert row["bound"] == ("memory" if moved / H100_PEAK >= flops / H100_FLOPS else "compute")
        assert float(row["floor_us"]) == pytest.approx(floor * 1e6)
        assert float(row["of_floor"]) == pytest.approx(floor / seconds)
    first = rows[0]  # hand-worked, as in the table
    assert (float(first["gb_per_s"]), float(first["gflop_per_s"])) == pytest.approx((10.0, 3.0))
    assert float(first["of_floor"]) == pytest.approx(2e4 / 3.35232e12 / 2e-6)
    pool = rows[2]  # max pooling 2x3x9x11, 3x3/2 pad 1 -> 5x6 outputs: x read, y and int64 argmax written
    assert (int(pool["bytes"]), int(pool["flops"])) == (4 * 2 * 3 * 9 * 11 + 12 * 2 * 3 * 5 * 6, 9 * 2 * 3 * 5 * 6)


def test_a_compute_bound_case_is_measured_against_the_fp32_peak(fake_gpu, capsys):
    heavy = dataclasses.replace(_smallest("dropout_apply"), bytes=lambda **sizes: 1000,
                                flops=lambda **sizes: int(H100_FLOPS * 1e-6))  # 1 us of fp32 work, 0.3 ns of bytes
    profile_kernels.profile([heavy], "cuda-emu", repeat=1, warmup=0, seed=0, csv_path=None)
    line = capsys.readouterr().out.splitlines()[2].split()
    assert line[-3:] == ["compute", "1.00", "50.0%"]  # floor 1 us of a 2 us launch


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
