"""Time every gpunet kernel family on a CUDA GPU, or check the same cases on the CPU emulator.

    python scripts/profile_kernels.py [--csv results.csv] [--family pool] [--repeat 200] [--device cuda:0]
    python scripts/profile_kernels.py --emulate        # correctness only, reduced sizes, no timings

On a GPU each case of the table (``scripts/kernel_cases/<family>.py``) runs through the CuPy backend and is timed
with ``cupyx.profiler.benchmark``, which records CUDA events around each call on the current stream and
synchronises on them (CuPy docs: "Performance Best Practices", Benchmarking; API reference
``cupyx.profiler.benchmark``); the median GPU time gives achieved GB/s (the case's ideal bytes moved / time),
GFLOP/s and the fraction of the device's peak bandwidth. The peak is computed from the device attributes that
``cupy.cuda.runtime.getDeviceProperties`` returns (CuPy API reference, "Runtime API"; CUDA's cudaDeviceProp):
2 (double data rate) x memoryClockRate (kHz) x memoryBusWidth (bits) / 8.

``--emulate`` runs every case at its reduced size on the emulated device "cuda-emu" (the real CuPy backend code,
each CUDA kernel executed by gpunet.testing.cuda_emu) and on the CPU backend, and compares the results; it claims
no timings. Without a GPU and without ``--emulate`` the script says so in one line and exits with status 1.
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the case table next to this script

from kernel_cases import all_cases  # noqa: E402

COLUMNS = ("family", "kernel", "sizes", "implementation", "time_us", "gb_per_s", "gflop_per_s", "peak_fraction",
           "bytes", "flops")


def _sizes_text(sizes: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sizes.items())


def _arrays(value) -> tuple:
    """The arrays in a kernel's result (one array, a tuple of them, or None for in-place kernels)."""
    if value is None:
        return ()
    return tuple(value) if isinstance(value, tuple) else (value,)


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


def emulate(cases, seed: int) -> int:
    """Run each case on cuda-emu and on the CPU; print one line per case; return the number of mismatches."""
    from gpunet.backend import get_backend

    emu, cpu = get_backend("cuda-emu"), get_backend("cpu")
    failures = 0
    for case in cases:
        results = []
        for backend in (emu, cpu):
            args = case.args(backend, numpy.random.default_rng(seed), **case.emulate)
            result = getattr(backend, case.kernel)(*args)
            picked = case.outputs(result, args) if case.outputs else _arrays(result)
            results.append([backend.to_numpy(a) for a in picked])
        errors = []
        for got, expected in zip(*results):
            if got.shape != expected.shape or not numpy.allclose(got, expected, equal_nan=True, **case.tolerance):
                errors.append(float(numpy.max(numpy.abs(got.astype(float) - expected.astype(float))))
                              if got.shape == expected.shape else "shape")
        status = "ok" if not errors else f"MISMATCH {errors}"
        failures += bool(errors)
        print(f"{case.family:<11} {case.name:<40} {_sizes_text(case.emulate):<40} "
              f"{emu.kernel_implementation(case.kernel):<22} {status}", flush=True)
    print(f"--emulate: {len(cases) - failures} of {len(cases)} cases agree between cuda-emu and cpu "
          "(correctness only; no timings)")
    return failures


def profile(cases, device: str, repeat: int, warmup: int, seed: int, csv_path: str | None) -> None:
    import cupy
    from cupyx.profiler import benchmark

    from gpunet.backend import get_backend

    backend = get_backend(device)
    index = backend.device.index
    props = cupy.cuda.runtime.getDeviceProperties(index)
    peak = peak_bandwidth(cupy, index)
    peak_text = f"{peak / 1e9:.0f} GB/s" if peak else "unknown"
    print(f"device {backend.device}: {props['name'].decode()}, peak memory bandwidth {peak_text}")
    header = f"{'family':<11} {'kernel':<40} {'sizes':<44} {'time us':>10} {'GB/s':>8} {'GFLOP/s':>9} {'of peak':>8}"
    print(header)
    rows = []
    for case in cases:
        for sizes in case.sizes:
            args = case.args(backend, numpy.random.default_rng(seed), **sizes)
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
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        print(f"wrote {csv_path}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulate", action="store_true",
                        help="check every case on the CUDA emulator against the CPU backend (reduced sizes, no timings)")
    parser.add_argument("--csv", metavar="PATH", help="also write the timings to a CSV file")
    parser.add_argument("--family", action="append", metavar="NAME", help="only this kernel family (repeatable)")
    parser.add_argument("--device", default="cuda:0", help="CUDA device to profile (default: cuda:0)")
    parser.add_argument("--repeat", type=int, default=100, help="timed calls per case (default: 100)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls first, compilation included (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default: 0)")
    args = parser.parse_args(argv)
    cases = _select(all_cases(), args.family)
    if args.emulate:
        return 1 if emulate(cases, args.seed) else 0
    from gpunet.backend import cuda_unavailable_reason, parse_device

    reason = cuda_unavailable_reason(parse_device(args.device).index or 0)
    if reason is not None:
        print(f"profile_kernels: no CUDA GPU to profile ({reason}); use --emulate to check the kernels on the CPU "
              "emulator", file=sys.stderr)
        return 1
    profile(cases, args.device, args.repeat, args.warmup, args.seed, args.csv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
