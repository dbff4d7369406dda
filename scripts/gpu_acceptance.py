"""The acceptance run for the first machine with a CUDA GPU: one command, one Markdown report.

    python scripts/gpu_acceptance.py [--out DIR] [--device cuda:0] [--epochs 3] [--all-tests]
    python scripts/gpu_acceptance.py --emulate [--out DIR]     # the same plan, quick, on the CPU emulator

Steps, each reported PASS, FAIL or SKIP (with the reason) in ``DIR/report.md``:

1. **Environment**: NVIDIA driver and CUDA runtime versions, CuPy, every device (name, compute capability, memory,
   peaks), NVRTC (version, and a compile of every kernel file through CuPy), cuBLAS (version, a float32 matmul
   against NumPy), NVML (driver version, temperature and power per device; missing nvidia-ml-py is a WARN).
2. **Test suite**: ``pytest tests`` in a subprocess with ``GPUNET_TEST_DEVICES`` set to the default devices plus the
   GPU (``cpu,cuda-emu,cuda-emu:1,cuda:0``; every GPU with ``--device all``), so every device-parametrised test
   also runs on the GPU; the default selection (``-m "not slow"``), everything with ``--all-tests``. JUnit XML in
   ``DIR/pytest.xml``.
3. **Kernels against their references**: every case of ``gpunet/testing/kernel_cases`` at its profiling sizes (real
   data shapes: 4096 x 32000 softmax, 64 x 64 x 112 x 112 pooling, ...) on the GPU and on the CPU (NumPy),
   compared with the case's tolerance; ``DIR/kernel_check.csv``.
4. **Kernel profile**: ``scripts/profile_kernels.py``'s timing of every case (raw launches, L2 flushed, fraction of
   the memory or compute floor at the device's own peaks); ``DIR/kernel_profile.csv``.
5. **Training**: every shipped config (``configs/*.yaml``) for ``--epochs`` epochs on the GPU and on the CPU from
   the same seed, run directories under ``DIR/runs``; the final train/val/test loss and metrics of the two agree
   within ``|gpu - cpu| <= 0.02 + 0.02 |cpu|`` (float32 on two devices drifts apart over epochs; a kernel bug
   does not stay inside that). A config whose dataset is not on this machine is skipped with the loader's message.

``--emulate`` runs the same steps on the emulated device ``cuda-emu`` as a quick rehearsal (the test suite runs it,
``tests/scripts/test_gpu_acceptance.py``): a few test files on ``cpu,cuda-emu``, one kernel case per family at its
first check size, the profile of those cases (emulator times: no GPU's, and no peaks), and one epoch of
``mlp_digits`` and ``cnn_digits`` on 25 % of the digits data. Without a GPU and without ``--emulate`` the script says
so in one line and exits with status 1.

Exit status: 0 when no step failed, 1 when one did (or there is no GPU), 2 for bad arguments (argparse).
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import os
import platform
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import profile_kernels  # noqa: E402

DEFAULT_TEST_DEVICES = ("cpu", "cuda-emu", "cuda-emu:1")
METRIC_TOLERANCE = (0.02, 0.02)  # absolute, relative: |gpu - cpu| <= atol + rtol |cpu|
PASS, FAIL, SKIP, WARN = "PASS", "FAIL", "SKIP", "WARN"


@dataclass(frozen=True)
class Plan:
    """What a run does: the full plan on a GPU, or the quick rehearsal on cuda-emu."""

    device: str  # the device under test
    emulated: bool
    test_devices: tuple
    test_args: tuple  # pytest arguments (paths, options)
    kernel_cases: tuple
    kernel_sizes: object  # case -> the sizes to compare at
    profile_repeat: int
    profile_warmup: int
    configs: tuple  # config files
    config_overrides: tuple
    epochs: int


def gpu_plan(device: str, count: int, epochs: int, all_tests: bool) -> Plan:
    from gpunet.testing.kernel_cases import all_cases

    devices = [f"cuda:{i}" for i in range(count)] if device == "all" else [device]
    return Plan(device=devices[0], emulated=False, test_devices=(*DEFAULT_TEST_DEVICES, *devices),
                test_args=("tests", *(("-m", "") if all_tests else ())), kernel_cases=tuple(all_cases()),
                kernel_sizes=lambda case: case.sizes or case.checks[:1], profile_repeat=100, profile_warmup=10,
                configs=tuple(sorted((ROOT / "configs").glob("*.yaml"))), config_overrides=(), epochs=epochs)


def emulated_plan() -> Plan:
    from gpunet.testing.kernel_cases import all_cases

    first_of_family = {}
    for case in all_cases():
        first_of_family.setdefault(case.family, dataclasses.replace(case, sizes=case.checks[:1]))
    return Plan(device="cuda-emu", emulated=True, test_devices=("cpu", "cuda-emu"),
                test_args=("tests/nn/test_nn_dropout_apply.py", "tests/backend/test_tf32.py"),
                kernel_cases=tuple(first_of_family.values()), kernel_sizes=lambda case: case.checks[:1],
                profile_repeat=2, profile_warmup=0,
                configs=(ROOT / "configs" / "mlp_digits.yaml", ROOT / "configs" / "cnn_digits.yaml"),
                config_overrides=("data.val_split=0.55",), epochs=1)  # 0.8 x 0.45 x 1797: ~650 of 1797 digits


@dataclass
class Step:
    title: str
    status: str = PASS
    summary: str = ""
    lines: list = field(default_factory=list)  # Markdown: the step's details
    seconds: float = 0.0


def _table(header: tuple, rows) -> list:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]


# ----- 1. environment --------------------------------------------------------------------------------------------
def _version(number: int) -> str:
    return f"{number // 1000}.{number % 1000 // 10}"  # CUDA's 12040 -> 12.4


def _probe(rows: list, what: str, probe, required: bool = True) -> bool:
    """Append (what, status, result or the error's first line) to ``rows``; True when ``probe`` worked."""
    try:
        rows.append((what, PASS, probe()))
        return True
    except Exception as exc:  # each probe reports its own failure and the others still run
        first_line = (str(exc).splitlines() or [""])[0]
        rows.append((what, FAIL if required else WARN, f"{type(exc).__name__}: {first_line}"))
        return False


def _nvml(rows: list, count: int) -> None:
    def probe():
        try:
            import pynvml
        except ImportError:
            raise RuntimeError('nvidia-ml-py is not installed: pip install "gpunet[cuda]"') from None
        pynvml.nvmlInit()
        parts = [f"driver {pynvml.nvmlSystemGetDriverVersion()}"]
        for index in range(count):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            temperature = pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
            power = pynvml.nvmlDeviceGetPowerUsage(handle) / 1000
            parts.append(f"GPU {index}: {temperature} C, {power:.0f} W")
        return "; ".join(parts)

    _probe(rows, "NVML (telemetry)", probe, required=False)


def _matmul_check(backend) -> str:
    rng = numpy.random.default_rng(0)
    a, b = rng.standard_normal((512, 256)).astype(numpy.float32), rng.standard_normal((256, 384)).astype(numpy.float32)
    got = backend.to_numpy(backend.xp.matmul(backend.asarray(a), backend.asarray(b)))
    exact = a.astype(numpy.float64) @ b.astype(numpy.float64)
    error = float(numpy.linalg.norm(got - exact) / numpy.linalg.norm(exact))
    if error > 1e-5:
        raise RuntimeError(f"float32 matmul relative error {error:.2e} (expected < 1e-5: is TF32 on?)")
    return f"float32 512x256 @ 256x384 relative error {error:.1e}"


def check_environment(plan: Plan, out: Path, step: Step, cupy=None) -> None:
    """Versions and a working probe of every CUDA piece gpunet uses (``cupy``: the CuPy module, for tests)."""
    from gpunet.backend import get_backend

    rows = []
    rows.append(("Python / NumPy", PASS, f"{platform.python_version()} / {numpy.__version__}"))
    if plan.emulated:
        from gpunet.backend.emulated.build import compiler_version

        rows.append(("CUDA device", PASS, "emulated: cuda-emu (gpunet's CuPy stand-in, kernels run by the CUDA "
                                          "emulator on the CPU); no driver, CuPy, cuBLAS or NVML is used"))
        _probe(rows, "emulator compiler", lambda: compiler_version().splitlines()[0])
        _probe(rows, "NVRTC (cuda-bindings, no GPU)", lambda: "%d.%d" % __import__(
            "gpunet.testing.nvrtc", fromlist=["version"]).version(), required=False)
        count = 0
    else:
        import cupy as real_cupy

        cupy = cupy or real_cupy
        runtime = cupy.cuda.runtime
        _probe(rows, "NVIDIA driver (CUDA version it supports)", lambda: _version(runtime.driverGetVersion()))
        _probe(rows, "CUDA runtime", lambda: _version(runtime.runtimeGetVersion()))
        rows.append(("CuPy", PASS, cupy.__version__))
        count = runtime.getDeviceCount()
        for index in range(count):
            def describe(index=index):
                props = runtime.getDeviceProperties(index)
                peaks = profile_kernels.device_peaks(cupy, index)
                return (f"compute capability {props['major']}.{props['minor']}, "
                        f"{props['totalGlobalMem'] / 2**30:.0f} GiB; {peaks.describe()}")
            _probe(rows, f"cuda:{index}", describe)
        _probe(rows, "NVRTC", lambda: "%d.%d" % cupy.cuda.nvrtc.getVersion())
        _probe(rows, "cuBLAS", lambda: str(cupy.cuda.cublas.getVersion(cupy.cuda.device.get_cublas_handle())))
        _nvml(rows, count)
    backend = get_backend(plan.device)
    _probe(rows, f"gpunet kernels compile on {plan.device}",
           lambda: f"{len(backend.warmup())} kernel families: " + ", ".join(
               f"{family} {seconds:.1f} s" for family, seconds in sorted(backend.compile_seconds.items())))
    _probe(rows, f"matmul on {plan.device}", lambda: _matmul_check(backend))
    step.lines = _table(("check", "status", "result"), rows)
    failed = [row[0] for row in rows if row[1] == FAIL]
    step.status = FAIL if failed else PASS
    warnings = sum(row[1] == WARN for row in rows)
    step.summary = f"failed: {', '.join(failed)}" if failed else f"{len(rows)} checks" + (
        f" ({warnings} warnings)" if warnings else "")


# ----- 2. test suite ---------------------------------------------------------------------------------------------
def run_tests(plan: Plan, out: Path, step: Step) -> None:
    xml = out / "pytest.xml"
    env = {**os.environ, "GPUNET_TEST_DEVICES": ",".join(plan.test_devices), "PYTHONPATH": os.pathsep.join(
        filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))}
    command = [sys.executable, "-m", "pytest", *plan.test_args, "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    (out / "pytest.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if not xml.exists():
        step.status, step.summary = FAIL, f"pytest exited with {done.returncode} and wrote no report"
        step.lines = ["```", *(done.stdout + done.stderr).splitlines()[-20:], "```"]
        return
    suites = ElementTree.parse(xml).getroot()
    suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    by_device = {}
    failed = []
    for case in suite.iter("testcase"):
        name = case.get("name", "")
        device = next((d for d in plan.test_devices if f"[{d}]" in name or f"[{d}-" in name or f"-{d}]" in name),
                      "")
        by_device[device] = by_device.get(device, 0) + 1
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(f"{case.get('classname')}::{name}")
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    step.status = PASS if done.returncode == 0 and not failed else FAIL
    step.summary = (f"{passed} passed, {counts['failures'] + counts['errors']} failed, {counts['skipped']} skipped "
                    f"on devices {', '.join(plan.test_devices)}")
    step.lines = [f"`GPUNET_TEST_DEVICES={','.join(plan.test_devices)} python -m pytest "
                  f"{' '.join(plan.test_args)}` (log: `pytest.log`, JUnit XML: `pytest.xml`)", "",
                  *_table(("device parameter", "tests"), sorted((d or "(none)", n) for d, n in by_device.items()))]
    if failed:
        step.lines += ["", "Failed:", *(f"- `{name}`" for name in failed[:50])]


# ----- 3. kernels against their references ----------------------------------------------------------------------
def check_kernels(plan: Plan, out: Path, step: Step, seed: int = 0) -> None:
    rows = list(profile_kernels.compare(plan.kernel_cases, plan.device, seed, plan.kernel_sizes))
    profile_kernels.write_csv(str(out / "kernel_check.csv"), profile_kernels.CHECK_COLUMNS, rows)
    bad = [row for row in rows if not row["ok"]]
    step.status = FAIL if bad or not rows else PASS
    step.summary = f"{len(rows) - len(bad)} of {len(rows)} cases agree with the CPU (`kernel_check.csv`)"
    step.lines = _table(("family", "kernel", "sizes", "max abs error", "ok"),
                        ((r["family"], r["kernel"], r["sizes"], f"{r['max_abs_error']:.3g}", r["ok"]) for r in rows))


# ----- 4. profile ------------------------------------------------------------------------------------------------
def profile_all(plan: Plan, out: Path, step: Step, seed: int = 0) -> None:
    rows = profile_kernels.profile(plan.kernel_cases, plan.device, plan.profile_repeat, plan.profile_warmup, seed,
                                   str(out / "kernel_profile.csv"))
    timed = [row for row in rows if row["launches"]]
    step.status = PASS if timed else FAIL
    note = " (emulator times, not a GPU's)" if plan.emulated else ""
    step.summary = f"{len(timed)} of {len(rows)} cases timed{note} (`kernel_profile.csv`)"
    step.lines = _table(("kernel", "sizes", "launches", "time us", "GB/s", "bound", "of floor"),
                        ((r["kernel"], r["sizes"], r["launches"], f"{r['time_us']:.1f}", f"{r['gb_per_s']:.1f}",
                          r["bound"], f"{r['of_floor']:.1%}") for r in rows))


# ----- 5. training -----------------------------------------------------------------------------------------------
def _final_numbers(summary: dict) -> dict:
    return {k: float(v) for k, v in summary.items()
            if k.startswith(("train_", "val_", "test_")) and isinstance(v, (int, float)) and not isinstance(v, bool)}


def compare_metrics(gpu: dict, cpu: dict, tolerance=METRIC_TOLERANCE) -> list:
    """(key, gpu, cpu, agrees) for every final metric of the CPU run."""
    atol, rtol = tolerance
    rows = []
    for key, expected in sorted(cpu.items()):
        got = gpu.get(key, float("nan"))
        rows.append((key, got, expected, abs(got - expected) <= atol + rtol * abs(expected)))  # NaN: False
    return rows


def train_configs(plan: Plan, out: Path, step: Step) -> None:
    from gpunet.config import load_config
    from gpunet.data import DatasetError
    from gpunet.runner.run import run

    rows, failed, skipped = [], [], []
    for path in plan.configs:
        summaries = {}
        try:
            for device in (plan.device, "cpu"):
                overrides = [f"device={device}", f"trainer.epochs={plan.epochs}", *plan.config_overrides]
                run_dir = out / "runs" / f"{path.stem}-{device.replace(':', '')}"
                started = time.perf_counter()
                summary = run(load_config(str(path), overrides), str(run_dir), config_name=path.stem,
                              progress=False, announce_device=False)
                summaries[device] = (_final_numbers(summary), time.perf_counter() - started)
        except DatasetError as exc:
            skipped.append(path.name)
            rows.append((path.name, SKIP, f"data not available: {(str(exc).splitlines() or [''])[0]}", "", ""))
            continue
        except Exception as exc:  # a config that does not train is this step's failure, not the script's
            failed.append(path.name)
            rows.append((path.name, FAIL, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}", "", ""))
            continue
        (gpu, gpu_seconds), (cpu, cpu_seconds) = summaries[plan.device], summaries["cpu"]
        compared = compare_metrics(gpu, cpu)
        bad = [key for key, _, _, agrees in compared if not agrees]
        if bad or not compared:
            failed.append(path.name)
        shown = "; ".join(f"{key} {g:.4g} vs {c:.4g}" for key, g, c, _ in compared if key.startswith("test_")) or \
            "; ".join(f"{key} {g:.4g} vs {c:.4g}" for key, g, c, _ in compared[:3])
        verdict = (f"differ: {', '.join(bad)}; " if bad else "") + shown
        rows.append((path.name, FAIL if bad or not compared else PASS, verdict, f"{gpu_seconds:.1f}",
                     f"{cpu_seconds:.1f}"))
    step.status = FAIL if failed else PASS
    step.summary = (f"{len(rows) - len(failed) - len(skipped)} of {len(rows)} configs agree after {plan.epochs} "
                    f"epoch(s)" + (f", {len(skipped)} skipped (no data)" if skipped else ""))
    atol, rtol = METRIC_TOLERANCE
    step.lines = [f"Final metrics agree when |{plan.device} - cpu| <= {atol} + {rtol} |cpu| (overrides: "
                  f"trainer.epochs={plan.epochs}{''.join(', ' + o for o in plan.config_overrides)}); runs in `runs/`.",
                  "", *_table(("config", "status", f"{plan.device} vs cpu", f"{plan.device} s", "cpu s"), rows)]


# ----- the report ------------------------------------------------------------------------------------------------
def _git_commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def write_report(steps: list, plan: Plan, out: Path, argv: list) -> Path:
    import gpunet

    overall = FAIL if any(s.status == FAIL for s in steps) else PASS
    lines = [f"# gpunet GPU acceptance: {overall}", "",
             f"- when: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; host {platform.node()}",
             f"- gpunet {gpunet.__version__} (commit {_git_commit()}); command: "
             f"`python scripts/gpu_acceptance.py {' '.join(argv)}`",
             f"- device under test: {plan.device}" + (" (emulated: a rehearsal of the plan, no GPU)" if plan.emulated
                                                       else ""), "",
             *_table(("step", "status", "summary", "seconds"),
                     ((f"{i}. {s.title}", s.status, s.summary, f"{s.seconds:.0f}") for i, s in enumerate(steps, 1)))]
    for i, s in enumerate(steps, 1):
        lines += ["", f"## {i}. {s.title}: {s.status}", "", s.summary, "", *s.lines]
    path = out / "report.md"
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


STEPS = (("Environment", check_environment), ("Test suite", run_tests),
         ("Kernels against their references", check_kernels), ("Kernel profile", profile_all),
         ("Training: GPU against CPU", train_configs))


def run_plan(plan: Plan, out: Path, argv: list, steps=STEPS) -> tuple[list, Path]:
    """Run every step (a step that raises is reported FAIL with its traceback; the next ones still run) and write
    the report; returns the steps and the report's path."""
    done = []
    for title, function in steps:
        step, started = Step(title), time.perf_counter()
        print(f"gpu_acceptance: {title} ...", flush=True)
        try:
            function(plan, out, step)
        except Exception as exc:
            step.status, step.summary = FAIL, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
            step.lines = ["```", *traceback.format_exc().splitlines(), "```"]
        step.seconds = time.perf_counter() - started
        print(f"gpu_acceptance: {title}: {step.status} - {step.summary}", flush=True)
        done.append(step)
    return done, write_report(done, plan, out, argv)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulate", action="store_true",
                        help="rehearse the plan on the CPU emulator (quick subset; no GPU needed)")
    parser.add_argument("--out", metavar="DIR", help="folder for the report, CSVs and runs; must not exist or be empty "
                        "(default: gpu-acceptance-<UTC time>)")
    parser.add_argument("--device", default="cuda:0", help="the GPU to accept: cuda:N, or all (default: cuda:0)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs per config and device (default: 3)")
    parser.add_argument("--all-tests", action="store_true", help="run the slow tests too")
    args = parser.parse_args(argv)
    out = Path(args.out or f"gpu-acceptance-{datetime.datetime.now(datetime.timezone.utc):%Y%m%d-%H%M%S}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        print(f"gpu_acceptance: --out {out} already holds files; nothing was changed. Choose a new folder",
              file=sys.stderr)
        return 1
    if args.emulate:
        plan = emulated_plan()
    else:
        from gpunet.backend import DeviceError, cuda_unavailable_reason, parse_device
        from gpunet.backend.device import cuda_libraries_missing

        try:
            device = None if args.device == "all" else parse_device(args.device)
        except DeviceError:
            device = False
        if device is False or (device is not None and device.kind != "cuda"):
            print(f"gpu_acceptance: --device {args.device!r} is not a CUDA GPU; give cuda:N or all (or --emulate to "
                  "rehearse on the CPU emulator)", file=sys.stderr)
            return 1
        index = 0 if device is None else device.index
        reason = cuda_unavailable_reason(index)
        if reason is None:
            import cupy

            reason = cuda_libraries_missing(cupy, index)
        if reason is not None:
            print(f"gpu_acceptance: no usable CUDA GPU here ({reason}); run it on a machine with an NVIDIA GPU, or "
                  "--emulate to rehearse the plan on the CPU emulator", file=sys.stderr)
            return 1
        import cupy

        plan = gpu_plan("all" if device is None else str(device), cupy.cuda.runtime.getDeviceCount(), args.epochs,
                        args.all_tests)
    out.mkdir(parents=True, exist_ok=True)
    steps, report = run_plan(plan, out, argv)
    failed = [s.title for s in steps if s.status == FAIL]
    print(f"gpu_acceptance: {'FAIL (' + ', '.join(failed) + ')' if failed else 'PASS'}; report: {report}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
