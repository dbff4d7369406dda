"""scripts/gpu_acceptance.py: ``--emulate`` runs the whole plan on cuda-emu and writes its report, CSVs and runs;
without a GPU it refuses in one line; a step that fails is reported and the others still run; the GPU branch of the
environment check on a fake CuPy; the GPU-vs-CPU metric rule on worked values."""
import csv
import dataclasses
import subprocess
import sys
import types
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from gpunet.backend import registry

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_acceptance.py"
sys.path.insert(0, str(SCRIPT.parent))

import gpu_acceptance  # noqa: E402


def run(*args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_emulate_runs_the_whole_plan_and_writes_one_report(tmp_path):
    out = tmp_path / "acceptance"
    done = run("--emulate", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.splitlines()[-1] == f"gpu_acceptance: PASS; report: {out / 'report.md'}"
    report = (out / "report.md").read_text()
    assert report.startswith("# gpunet GPU acceptance: PASS\n")
    for i, title in enumerate(("Environment", "Test suite", "Kernels against their references", "Kernel profile",
                               "Training: GPU against CPU"), 1):
        assert f"| {i}. {title} | PASS |" in report and f"## {i}. {title}: PASS" in report

    # the test suite ran with GPUNET_TEST_DEVICES: cuda-emu added by it, cuda-emu:1 (a default device) gone
    names = [case.get("name") for case in ElementTree.parse(out / "pytest.xml").getroot().iter("testcase")]
    assert any(name.endswith("[cuda-emu]") for name in names) and any(name.endswith("[cpu]") for name in names)
    assert not any("cuda-emu:1" in name for name in names)

    families = {case.family for case in gpu_acceptance.emulated_plan().kernel_cases}
    assert families == set(registry.families())  # one case of every kernels/<family>.cu
    with open(out / "kernel_check.csv", newline="") as f:
        checks = list(csv.DictReader(f))
    assert {row["family"] for row in checks} == families and all(row["ok"] == "True" for row in checks)
    with open(out / "kernel_profile.csv", newline="") as f:
        profile = list(csv.DictReader(f))
    assert {row["family"] for row in profile} == families
    assert all(int(row["launches"]) >= 1 and float(row["time_us"]) > 0 for row in profile)
    assert all(row["bound"] == "unknown" for row in profile)  # the emulator has no peaks: no fraction claimed

    assert sorted(p.name for p in (out / "runs").iterdir()) == ["cnn_digits-cpu", "cnn_digits-cuda-emu",
                                                                 "mlp_digits-cpu", "mlp_digits-cuda-emu"]
    assert "| mlp_digits.yaml | PASS | test_accuracy" in report


def test_without_a_gpu_the_script_says_so_in_one_line_and_fails(tmp_path):
    done = run("--out", str(tmp_path / "out"))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("gpu_acceptance: no usable CUDA GPU here (")
    assert "--emulate" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_device_that_is_not_a_gpu_and_a_used_folder_are_refused(tmp_path):
    done = run("--device", "cpu", "--out", str(tmp_path / "out"))
    assert done.returncode == 1 and done.stderr.startswith("gpu_acceptance: --device 'cpu' is not a CUDA GPU")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    done = run("--emulate", "--out", str(tmp_path / "used"))
    assert done.returncode == 1 and "already holds files; nothing was changed" in done.stderr
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["notes.txt"]


def test_a_failing_step_is_reported_and_the_next_steps_still_run(tmp_path):
    calls = []

    def broken(plan, out, step):
        calls.append("broken")
        raise RuntimeError("the GPU fell off the bus\nsecond line")

    def fine(plan, out, step):
        calls.append("fine")
        step.summary = "all good"

    steps, report = gpu_acceptance.run_plan(gpu_acceptance.emulated_plan(), tmp_path, ["--emulate"],
                                            steps=(("Broken", broken), ("Fine", fine)))
    assert calls == ["broken", "fine"]
    assert [(s.title, s.status, s.summary) for s in steps] == [
        ("Broken", "FAIL", "RuntimeError: the GPU fell off the bus"), ("Fine", "PASS", "all good")]
    text = report.read_text()
    assert text.startswith("# gpunet GPU acceptance: FAIL\n")
    assert "| 1. Broken | FAIL | RuntimeError: the GPU fell off the bus |" in text
    assert "raise RuntimeError" in text  # the traceback is in the report


def test_metrics_agree_within_two_percent_plus_two_hundredths():
    rows = gpu_acceptance.compare_metrics({"test_accuracy": 0.95, "test_loss": 0.1225, "val_loss": float("nan")},
                                          {"test_accuracy": 0.97, "test_loss": 0.1, "val_loss": 0.5, "train_loss": 1})
    assert rows[0][0] == "test_accuracy" and rows[0][3]  # |0.95 - 0.97| = 0.02 <= 0.02 + 0.0194
    assert gpu_acceptance.compare_metrics({"test_loss": 0.1215}, {"test_loss": 0.1})[0][3]  # 0.0215 <= 0.022
    assert rows[1][:3] == ("test_loss", 0.1225, 0.1) and not rows[1][3]  # 0.0225 > 0.02 + 0.002
    assert [r[0] for r in rows] == ["test_accuracy", "test_loss", "train_loss", "val_loss"]
    assert not rows[2][3] and not rows[3][3]  # missing on the GPU (nan), NaN on the GPU


def _fake_cupy(fail_cublas=False):
    props = {"name": b"NVIDIA H100 80GB HBM3", "major": 9, "minor": 0, "totalGlobalMem": 80 * 2**30,
             "memoryClockRate": 2_619_000, "memoryBusWidth": 5120, "multiProcessorCount": 132,
             "clockRate": 1_980_000, "l2CacheSize": 50 << 20}

    def handle():
        if fail_cublas:
            raise OSError("libcublas.so.12: cannot open shared object file")
        return 1

    runtime = types.SimpleNamespace(driverGetVersion=lambda: 12040, runtimeGetVersion=lambda: 12090,
                                    getDeviceCount=lambda: 1, getDeviceProperties=lambda index: props)
    cuda = types.SimpleNamespace(runtime=runtime, nvrtc=types.SimpleNamespace(getVersion=lambda: (12, 9)),
                                 cublas=types.SimpleNamespace(getVersion=lambda h: 120903),
                                 device=types.SimpleNamespace(get_cublas_handle=handle))
    return types.SimpleNamespace(__version__="14.2.0", cuda=cuda)


def test_environment_check_of_a_gpu_machine_on_a_fake_cupy(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py missing: a warning, not a failure
    plan = dataclasses.replace(gpu_acceptance.emulated_plan(), emulated=False)  # probes run on cuda-emu
    step = gpu_acceptance.Step("Environment")
    gpu_acceptance.check_environment(plan, tmp_path, step, cupy=_fake_cupy())
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in step.lines[2:]}
    assert rows["NVIDIA driver (CUDA version it supports)"] == ["PASS", "12.4 |"]
    assert rows["CUDA runtime"] == ["PASS", "12.9 |"] and rows["CuPy"] == ["PASS", "14.2.0 |"]
    assert rows["cuda:0"][1].startswith("compute capability 9.0, 80 GiB; NVIDIA H100 80GB HBM3 (SXM): peaks 3352 GB/s")
    assert rows["NVRTC"] == ["PASS", "12.9 |"] and rows["cuBLAS"] == ["PASS", "120903 |"]
    assert rows["NVML (telemetry)"][0] == "WARN" and "pip install" in rows["NVML (telemetry)"][1]
    assert step.status == "PASS" and step.summary.endswith("(1 warnings)")

    failing = gpu_acceptance.Step("Environment")
    gpu_acceptance.check_environment(plan, tmp_path, failing, cupy=_fake_cupy(fail_cublas=True))
    assert failing.status == "FAIL" and failing.summary == "failed: cuBLAS"
    assert any("OSError: libcublas.so.12: cannot open shared object file" in line for line in failing.lines)


@pytest.mark.slow
def test_emulated_training_step_on_every_digits_config_with_all_its_data(tmp_path):
    """The emulated plan's training step on the shipped configs that train on the digits (always here), one epoch on
    all of the data (slow: about a minute)."""
    configs = tuple(sorted((ROOT / "configs").glob("*digits.yaml")))
    assert len(configs) >= 3
    plan = dataclasses.replace(gpu_acceptance.emulated_plan(), configs=configs, config_overrides=())
    step = gpu_acceptance.Step("Training")
    gpu_acceptance.train_configs(plan, tmp_path, step)
    assert step.status == "PASS" and "skipped" not in step.summary, "\n".join(step.lines)
