"""Time every gpunet kernel family on a CUDA GPU, or check the same cases on the CPU emulator.

    python scripts/profile_kernels.py [--csv results.csv] [--family pool] [--repeat 100] [--device cuda:0]
    python scripts/profile_kernels.py --emulate        # correctness only, reduced sizes, no timings

On a GPU each case of the table (``gpunet/testing/kernel_cases/<family>.py``, which the parity tests share) is called
once through the CuPy backend, which records the raw kernel launches the call makes (``backend.launch``: the kernels of
``kernels/<family>.cu`` with their grid, block and arguments, the outputs it allocated included). Only those launches
are timed, replayed on the preallocated arrays: per repetition, L2 is flushed (a memset of twice the device's L2
size), then a CUDA event is recorded, the launches are issued, and a second event is recorded; the time is the
elapsed time between the two events (``cupy.cuda.get_elapsed_time``), median over the repetitions. So the timing
holds neither the Python work of the call (argument checks, allocations, the launcher's arithmetic) nor the other
kernels a call runs around its own (the embedding backward's argsort and bincount, a reference's xp operations),
and every repetition reads its inputs from HBM, not from L2 (a case smaller than L2 would otherwise run from cache and
exceed the memory "peak"). The flush also keeps the GPU busy while the host records the start event and issues the
launches, so host launch overhead does not show as GPU time (the method of Triton's ``do_bench``).

The device's own peaks come from its properties (``cupy.cuda.runtime.getDeviceProperties``, CUDA's cudaDeviceProp, or
``deviceGetAttribute`` where CUDA 13 dropped a field): memory bandwidth 2 (double data rate) x memoryClockRate x
memoryBusWidth / 8; fp32 FLOP/s (non-tensor) = multiProcessorCount x FP32 lanes per SM of the architecture x 2 (a fused
multiply-add) x clockRate; L2 = l2CacheSize. An H100 SXM (132 SMs, 1.98 GHz, HBM3) thus gets 3.35 TB/s and 66.9
TFLOP/s, an H100 PCIe (114 SMs, 1.755 GHz, HBM2e) 2.04 TB/s and 51.2 TFLOP/s; the form factor shown is read from the
device name. Per kernel the floor is the larger of bytes / bandwidth (memory-bound) and FLOPs / fp32 peak
(compute-bound), ``bound`` says which, and ``of_floor`` = floor / measured time (1 = at the floor).

``--emulate`` runs every case at its first check size on the emulated device "cuda-emu" (the real CuPy backend code,
each CUDA kernel executed by gpunet.backend.emulated) and on the CPU backend, and compares the results; it claims
no timings. Without a GPU and without ``--emulate`` the script says so in one line and exits with status 1.

``--csv PATH`` writes one row per case and size, with a header line. On a GPU (``TIMING_COLUMNS``):
family, kernel, sizes (``name=value`` pairs), implementation (the ``kernels/*.cu`` file or the xp reference),
launches (raw kernel launches per call; 0 for a kernel that runs its xp reference, which is not timed), time_us
(median GPU time of those launches, microseconds), gb_per_s (bytes / time, 1e9 bytes/s), gflop_per_s (flops / time),
bound (``memory``, ``compute``, or ``unknown`` without peaks), floor_us (the floor of the call at the device's
peaks), of_floor (floor / time; ``nan`` without peaks), bytes and flops (per call, from the case table). Under
``--emulate`` (``CHECK_COLUMNS``): family, kernel, sizes, implementation, max_abs_error (largest |cuda-emu - cpu|
over the compared outputs; NaN in both counts as equal, ``inf`` for a NaN in one only or a shape mismatch) and ok
(``True`` when every output agrees within the case's tolerance).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
from dataclasses import dataclass

import numpy

from gpunet.testing import assert_close
from gpunet.testing.kernel_cases import all_cases

TIMING_COLUMNS = ("family", "kernel", "sizes", "implementation", "launches", "time_us", "gb_per_s", "gflop_per_s",
                  "bound", "floor_us", "of_floor", "bytes", "flops")
CHECK_COLUMNS = ("family", "kernel", "sizes", "implementation", "max_abs_error", "ok")


def _sizes_text(sizes: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sizes.items())


# FP32 lanes (CUDA cores) per SM by compute capability (CUDA C Programming Guide, "Arithmetic Instructions"
# throughput table: 32-bit floating-point add, multiply, multiply-add per clock per SM).
FP32_LANES_PER_SM = {(7, 0): 64, (7, 2): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128,
                     (9, 0): 128, (10, 0): 128, (10, 3): 128, (12, 0): 128, (12, 1): 128}
FLUSH_FALLBACK_BYTES = 256 << 20  # flush buffer when the device does not report its L2 size


@dataclass(frozen=True)
class DevicePeaks:
    """A device's own peak figures, from its properties (None where it does not report them)."""

    name: str
    form_factor: str  # "SXM", "PCIe", "NVL" or "" (from the name)
    bandwidth: float | None  # bytes/s
    fp32_flops: float | None  # FLOP/s, non-tensor
    l2_bytes: int | None
    sms: int | None
    clock_hz: float | None

    def describe(self) -> str:
        form = f" ({self.form_factor})" if self.form_factor else ""
        parts = [f"{self.bandwidth / 1e9:.0f} GB/s" if self.bandwidth else "memory bandwidth unknown",
                 f"{self.fp32_flops / 1e12:.1f} TFLOP/s fp32 ({self.sms} SMs at {self.clock_hz / 1e9:.3g} GHz)"
                 if self.fp32_flops else "fp32 peak unknown",
                 f"L2 {self.l2_bytes / 2**20:.0f} MB" if self.l2_bytes else "L2 size unknown"]
        return f"{self.name}{form}: peaks {', '.join(parts)}"

    def floor(self, moved: int, flops: int) -> tuple[str, float]:
        """("memory" or "compute", seconds): the call's floor at the known peaks (("unknown", nan) without any)."""
        memory = moved / self.bandwidth if self.bandwidth else math.nan
        compute = flops / self.fp32_flops if self.fp32_flops else math.nan
        if math.isnan(memory) and math.isnan(compute):
            return "unknown", math.nan
        return ("compute", compute) if math.isnan(memory) or compute > memory else ("memory", memory)


def _form_factor(name: str) -> str:
    upper = name.upper()
    for form, marks in (("PCIe", ("PCIE",)), ("NVL", ("NVL",)), ("SXM", ("SXM", "HBM3"))):
        if any(mark in upper for mark in marks):  # H100 SXM5 names itself "NVIDIA H100 80GB HBM3"
            return form
    return ""


def device_peaks(cupy, index: int) -> DevicePeaks:
    """Device ``index``'s peak memory bandwidth, fp32 FLOP/s and L2 size, from its properties."""
    runtime = cupy.cuda.runtime
    props = runtime.getDeviceProperties(index)

    def value(key, attribute):  # builds against CUDA 13 dropped some fields: ask the attribute directly
        found = props.get(key)
        if not found and hasattr(runtime, attribute):
            try:
                found = runtime.deviceGetAttribute(getattr(runtime, attribute), index)
            except Exception:  # an attribute this driver does not know
                found = None
        return int(found) if found else None

    memory_khz, bus_bits = value("memoryClockRate", "cudaDevAttrMemoryClockRate"), \
        value("memoryBusWidth", "cudaDevAttrGlobalMemoryBusWidth")
    sms, clock_khz = value("multiProcessorCount", "cudaDevAttrMultiProcessorCount"), \
        value("clockRate", "cudaDevAttrClockRate")
    lanes = FP32_LANES_PER_SM.get((props.get("major"), props.get("minor")))
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return DevicePeaks(name=name, form_factor=_form_factor(name),
                       bandwidth=2.0 * memory_khz * 1e3 * bus_bits / 8 if memory_khz and bus_bits else None,
                       fp32_flops=2.0 * sms * lanes * clock_khz * 1e3 if sms and lanes and clock_khz else None,
                       l2_bytes=value("l2CacheSize", "cudaDevAttrL2CacheSize"), sms=sms,
                       clock_hz=clock_khz * 1e3 if clock_khz else None)


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


def compare(cases, device: str, seed: int, sizes_of=lambda case: case.checks[:1]):
    """Run each case on ``device`` and on the CPU at each of ``sizes_of(case)`` (default: its first check size) and
    yield a ``CHECK_COLUMNS`` row per case and size as it is done."""
    from gpunet.backend import get_backend

    backend, cpu = get_backend(device), get_backend("cpu")
    for case in cases:
        for sizes in sizes_of(case):
            got, expected = (case.run(b, sizes, seed) for b in (backend, cpu))
            errors, ok = [], len(got) == len(expected)
            for a, b in zip(got, expected):
                errors.append(_max_error(a, b))
                ok &= _agrees(a, b, case.tolerance)
            yield {"family": case.family, "kernel": case.name, "sizes": _sizes_text(sizes),
                   "implementation": backend.kernel_implementation(case.kernel),
                   "max_abs_error": max(errors, default=0.0), "ok": ok}


def emulate(cases, seed: int, csv_path: str | None = None) -> int:
    """Run each case on cuda-emu and on the CPU; print one line per case (and write ``CHECK_COLUMNS`` rows to
    ``csv_path``); return the number of mismatches."""
    rows = []
    for row in compare(cases, "cuda-emu", seed):
        rows.append(row)
        verdict = "ok" if row["ok"] else f"MISMATCH max abs error {row['max_abs_error']:.3g}"
        print(f"{row['family']:<11} {row['kernel']:<40} {row['sizes']:<40} {row['implementation']:<22} {verdict}",
              flush=True)
    failures = sum(not row["ok"] for row in rows)
    print(f"--emulate: {len(rows) - failures} of {len(rows)} cases agree between cuda-emu and cpu "
          "(correctness only; no timings)")
    if csv_path:
        write_csv(csv_path, CHECK_COLUMNS, rows)
    return failures


class L2Flush:
    """Evicts the device's L2 when called: a memset of twice its size (256 MB when the size is unknown)."""

    def __init__(self, xp, l2_bytes: int | None):
        self.nbytes = 2 * l2_bytes if l2_bytes else FLUSH_FALLBACK_BYTES
        self._buffer = xp.empty(self.nbytes, dtype=numpy.uint8)

    def __call__(self) -> None:
        self._buffer.fill(0)  # CuPy: cudaMemsetAsync on the current stream


def recorded_launches(backend, case, args) -> list:
    """Call ``case``'s fused kernel once on ``args``; return its raw kernel launches, each a function of no arguments
    that launches again on the same (preallocated) arrays."""
    launches = []
    original = backend.launch

    def record(family, kernel, blocks, threads, launch_args, shared_mem=0):
        launches.append(backend.prepare_launch(family, kernel, blocks, threads, launch_args, shared_mem))
        return original(family, kernel, blocks, threads, launch_args, shared_mem)

    backend.launch = record  # an instance attribute: the class's method is untouched
    try:
        getattr(backend, case.kernel)(*args)
    finally:
        del backend.launch
    return launches


def time_launches(cupy, launches: list, flush, repeat: int, warmup: int) -> list:
    """GPU seconds of ``launches`` (run in order) per repetition: CUDA events around the launches only, L2 flushed
    before each (the current device must be the backend's)."""
    for _ in range(warmup):
        flush()
        for launch in launches:
            launch()
    events = [(cupy.cuda.Event(), cupy.cuda.Event()) for _ in range(repeat)]
    for start, end in events:
        flush()  # L2 cold; and the GPU is busy with it while the host issues what follows
        start.record()
        for launch in launches:
            launch()
        end.record()
    events[-1][1].synchronize()
    return [cupy.cuda.get_elapsed_time(start, end) * 1e-3 for start, end in events]  # milliseconds -> seconds


def profile(cases, device: str, repeat: int, warmup: int, seed: int, csv_path: str | None) -> list:
    """Time every case at each of its sizes on ``device``; print the table (and write ``csv_path``); return the
    ``TIMING_COLUMNS`` rows."""
    from gpunet.backend import get_backend

    backend = get_backend(device)
    cupy, index = backend.xp, backend.device.index  # the CuPy module the backend runs on
    peaks = device_peaks(cupy, index)
    print(f"device {backend.device}: {peaks.describe()}; L2 flushed before every repetition")
    print(f"{'family':<11} {'kernel':<40} {'sizes':<44} {'launches':>8} {'time us':>10} {'GB/s':>8} {'GFLOP/s':>9} "
          f"{'bound':>7} {'floor us':>9} {'of floor':>8}")
    rows = []
    with backend.activate():
        flush = L2Flush(cupy, peaks.l2_bytes)
        for case in cases:  # check-only cases have no sizes
            for sizes in case.sizes:
                args = case.arguments(backend, sizes, seed)
                launches = recorded_launches(backend, case, args)
                seconds = statistics.median(time_launches(cupy, launches, flush, repeat, warmup)) if launches \
                    else math.nan
                moved, flops = case.bytes(**sizes), case.flops(**sizes)
                bound, floor = peaks.floor(moved, flops)
                row = {"family": case.family, "kernel": case.name, "sizes": _sizes_text(sizes),
                       "implementation": backend.kernel_implementation(case.kernel), "launches": len(launches),
                       "time_us": seconds * 1e6, "gb_per_s": moved / seconds / 1e9,
                       "gflop_per_s": flops / seconds / 1e9, "bound": bound, "floor_us": floor * 1e6,
                       "of_floor": floor / seconds, "bytes": moved, "flops": flops}
                rows.append(row)
                print(f"{row['family']:<11} {row['kernel']:<40} {row['sizes']:<44} {row['launches']:>8} "
                      f"{row['time_us']:>10.1f} {row['gb_per_s']:>8.1f} {row['gflop_per_s']:>9.1f} {bound:>7} "
                      f"{row['floor_us']:>9.2f} {row['of_floor']:>8.1%}", flush=True)
                del args, launches
                cupy.get_default_memory_pool().free_all_blocks()
    if csv_path:
        write_csv(csv_path, TIMING_COLUMNS, rows)
    return rows


def write_csv(path: str, columns: tuple, rows: list) -> None:
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
    parser.add_argument("--warmup", type=int, default=10,
                        help="untimed replays of the launches before the timed ones (default: 10)")
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
