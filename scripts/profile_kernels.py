"""Time every gpunet kernel family on a CUDA GPU, or check the same cases on the CPU emulator.

    python scripts/profile_kernels.py [--csv results.csv] [--family pool] [--repeat 200] [--device cuda:0]
    python scripts/profile_kernels.py --emulate        # correctness only, reduced sizes, no timings

On a GPU each case of the table (``gpunet/testing/kernel_cases/<family>.py``, which the parity tests share) runs
through the CuPy backend and is timed with ``cupyx.profiler.benchmark``, which records CUDA events around each call
on the current stream and synchronises on them (CuPy docs: "Performance Best Practices", Benchmarking; API reference
``cupyx.profiler.benchmark``); the median GPU time gives achieved GB/s (the case's ideal bytes moved / time),
GFLOP/s and the fraction of the device's peak bandwidth. The peak is computed from the device attributes that
``cupy.cuda.runtime.getDeviceProperties`` returns (CuPy API reference, "Runtime API"; CUDA's cudaDeviceProp):
2 (double data rate) x memoryClockRate (kHz) x memoryBusWidth (bits) / 8.

``--emulate`` runs every case at its first check size on the emulated device "cuda-emu" (the real CuPy backend code,
each CUDA kernel executed by gpunet.backend.emulated) and on the CPU backend, and compares the results; it claims
no timings. Without a GPU and without ``--emulate`` the script says so in one line and exits with status 1.

``--csv PATH`` writes one row per case and size, with a header line. On a GPU (``TIMING_COLUMNS``):
family, kernel, sizes (``name=value`` pairs), implementation (the ``kernels/*.cu`` file or the xp reference),
time_us (median GPU time of one call, microseconds), gb_per_s (bytes / time, 1e9 bytes/s), gflop_per_s
(flops / time, 1e9 FLOP/s), peak_fraction (achieved bytes/s over the device's peak; ``nan`` when the device does
not report it), bytes and flops (per call, from the case table). Under ``--emulate`` (``CHECK_COLUMNS``):
family, kernel, sizes, implementation, max_abs_error (largest |cuda-emu - cpu| over the compared outputs; NaN in
both counts as equal, ``inf`` for a NaN in one only or a shape mismatch) and ok (``True`` when every output agrees
within the case's tolerance).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys

import numpy

from gpunet.testing import assert_close
from gpunet.testing.kernel_cases import all_cases

TIMING_COLUMNS = ("family", "kernel", "sizes", "implementation", "time_us", "gb_per_s", "gflop_per_s",
                  "peak_fraction", "bytes", "flops")
CHECK_COLUMNS = ("family", "kernel", "sizes", "implementation", "max_abs_error", "ok")


def _sizes_text(sizes: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sizes.items())


def peak_bandwidth(cupy, index: int) -> float | None:
    """Theoretical peak memory bandwidth of device ``index`` in bytes/s, from its clock and bus width."""
    props = cupy.cuda.runtime.getDeviceProperties(index)
    clock_khz, bus_bits = props.get("memoryClockRate"), props.get("memoryBusWidth")
    if not clock_khz or not bus_bits:  # builds against CUDA 13 dropped the fields: ask the attributes directly
        runtime = cupy.cuda.runtime
        clock_khz = runtime.deviceGetAttribute(runtime.cudaDevAttrMemoryClockRate, index)
        bus_bits = runtime.deviceGetAttribute(runtime.cudaDevAttrGlobalMemoryBusWidth, index)
    return 2.0 * clock_khz * 1e3 * bus_bits / 8 if clock_khz and bus_bits else None


def _select(cases, families):
    if not families:
        return cases
    known = sorted({c.family for c in cases})
    unknown = sorted(set(families) - set(known))
    if unknown:
        raise SystemExit(f"profile_kernels: no kernel family {', '.join(unknown)}; the table has {', '.join(known)}")
    return [c for c in cases if c.family in families]


def _max_error(got, expected) -> float:
    """Largest |got - expected| in float64; equal values (NaN in both included) agree, NaN in one or another shape
    is ``inf``."""
    if got.shape != expected.shape:
        return math.inf
    got, expected = got.astype(numpy.float64), expected.astype(numpy.float64)
    same = (got == expected) | (numpy.isnan(got) & numpy.isnan(expected))  # equal infinities included
    with numpy.errstate(invalid="ignore"):
        diff = numpy.where(same, 0.0, numpy.abs(got - expected))
    return float(numpy.nan_to_num(diff, nan=math.inf).max(initial=0.0))


def _agrees(got, expected, tolerance: dict) -> bool:
    try:
        assert_close(got, expected, **tolerance)
    except AssertionError:
        return False
    return True


def emulate(cases, seed: int, csv_path: str | None = None) -> int:
    """Run each case on cuda-emu and on the CPU; print one line per case (and write ``CHECK_COLUMNS`` rows to
    ``csv_path``); return the number of mismatches."""
    from gpunet.backend import get_backend

    emu, cpu = get_backend("cuda-emu"), get_backend("cpu")
    failures = 0
    rows = []
    for case in cases:
        sizes = case.checks[0]
        got, expected = (case.run(backend, sizes, seed) for backend in (emu, cpu))
        errors, ok = [], len(got) == len(expected)
        for a, b in zip(got, expected):
            errors.append(_max_error(a, b))
            ok &= _agrees(a, b, case.tolerance)
        max_error = max(errors, default=0.0)
        failures += not ok
        row = {"family": case.family, "kernel": case.name, "sizes": _sizes_text(sizes),
               "implementation": emu.kernel_implementation(case.kernel), "max_abs_error": max_error, "ok": ok}
        rows.append(row)
        print(f"{row['family']:<11} {row['kernel']:<40} {row['sizes']:<40} {row['implementation']:<22} "
              f"{'ok' if ok else f'MISMATCH max abs error {max_error:.3g}'}", flush=True)
    print(f"--emulate: {len(cases) - failures} of {len(cases)} cases agree between cuda-emu and cpu "
          "(correctness only; no timings)")
    if csv_path:
        _write_csv(csv_path, CHECK_COLUMNS, rows)
    return failures


def profile(cases, device: str, repeat: int, warmup: int, seed: int, csv_path: str | None) -> None:
    from cupyx.profiler import benchmark

    from gpunet.backend import get_backend

    backend = get_backend(device)
    cupy, index = backend.xp, backend.device.index  # the CuPy module the backend runs on
    props = cupy.cuda.runtime.getDeviceProperties(index)
    peak = peak_bandwidth(cupy, index)
    peak_text = f"{peak / 1e9:.0f} GB/s" if peak else "unknown"
    print(f"device {backend.device}: {props['name'].decode()}, peak memory bandwidth {peak_text}")
    header = f"{'family':<11} {'kernel':<40} {'sizes':<44} {'time us':>10} {'GB/s':>8} {'GFLOP/s':>9} {'of peak':>8}"
    print(header)
    rows = []
    for case in cases:  # check-only cases have no sizes
        for sizes in case.sizes:
            args = case.arguments(backend, sizes, seed)
            timing = benchmark(getattr(backend, case.kernel), args, n_repeat=repeat, n_warmup=warmup,
                               name=case.name, devices=(index,))
            seconds = statistics.median(float(t) for t in timing.gpu_times[0])
            moved, flops = case.bytes(**sizes), case.flops(**sizes)
            row = {"family": case.family, "kernel": case.name, "sizes": _sizes_text(sizes),
                   "implementation": backend.kernel_implementation(case.kernel), "time_us": seconds * 1e6,
                   "gb_per_s": moved / seconds / 1e9, "gflop_per_s": flops / seconds / 1e9,
                   "peak_fraction": moved / seconds / peak if peak else float("nan"), "bytes": moved, "flops": flops}
            rows.append(row)
            print(f"{row['family']:<11} {row['kernel']:<40} {row['sizes']:<44} {row['time_us']:>10.1f} "
                  f"{row['gb_per_s']:>8.1f} {row['gflop_per_s']:>9.1f} {row['peak_fraction']:>8.1%}", flush=True)
            del args
            cupy.get_default_memory_pool().free_all_blocks()
    if csv_path:
        _write_csv(csv_path, TIMING_COLUMNS, rows)


def _write_csv(path: str, columns: tuple, rows: list) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulate", action="store_true",
                        help="check every case on the CUDA emulator against the CPU backend (reduced sizes, no timings)")
    parser.add_argument("--csv", metavar="PATH",
                        help="also write the timings (with --emulate: the errors) to a CSV file, a row per case")
    parser.add_argument("--family", action="append", metavar="NAME", help="only this kernel family (repeatable)")
    parser.add_argument("--device", default="cuda:0", help="CUDA device to profile (default: cuda:0)")
    parser.add_argument("--repeat", type=int, default=100, help="timed calls per case (default: 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first, compilation included (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    args = parser.parse_args(argv)
    cases = _select(all_cases(), args.family)
    folder = os.path.dirname(os.path.abspath(args.csv)) if args.csv else None
    if folder and not os.path.isdir(folder):  # say so before the work, not after it
        raise SystemExit(f"profile_kernels: --csv {args.csv}: the folder {folder} does not exist; create it first")
    if args.emulate:
        return 1 if emulate(cases, args.seed, args.csv) else 0
    from gpunet.backend import DeviceError, cuda_unavailable_reason, parse_device

    try:
        device = parse_device(args.device)
    except DeviceError:
        device = None
    if device is None or device.kind != "cuda":
        raise SystemExit(f"profile_kernels: --device {args.device!r} is not a CUDA GPU; give cuda:N to time the "
                         "kernels, or --emulate to check them on the CPU emulator")
    reason = cuda_unavailable_reason(device.index)
    if reason is not None:
        print(f"profile_kernels: no CUDA GPU to profile ({reason}); use --emulate to check the kernels on the CPU "
              "emulator", file=sys.stderr)
        return 1
    profile(cases, args.device, args.repeat, args.warmup, args.seed, args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
