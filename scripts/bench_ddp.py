"""Data-parallel scaling on the CPU: one training epoch of LeNet-5 on mnist5k with 1 rank, 2 ranks (each
single-threaded) and 1 rank with 2 threads, all in the same run; prints epoch times, the speed-up and efficiency
against 1 rank with 1 thread, the time spent in the gradient all-reduce (packing, MPI, waiting, unpacking) and the
load average (the machine may be shared).

    python scripts/bench_ddp.py [--epochs 3] [--repeats 3] [--batch-size 64]

Each configuration runs ``--epochs`` epochs under ``mpiexec`` (the ``mpi`` extra: pip install "gpunet[mpi]"),
``--repeats`` times, the configurations taking turns so that machine noise hits all alike; the first epoch of each
launch is a warm-up, the median over the others is reported (global batch ``--batch-size`` in all three). The
all-reduce time is the time in the gradient-ready hook during backward (packing a bucket whose gradients are ready
and starting its all-reduce; "in backward") plus the time in ``average_gradients`` after backward (starting the
rest, waiting, which includes waiting for the slower rank, and unpacking).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker(epochs: int, batch_size: int) -> None:
    """One rank: train LeNet-5 on mnist5k for ``epochs`` epochs; rank 0 prints the epoch and all-reduce times."""
    import gpunet as gn
    from gpunet.data import DataLoader, load_dataset
    from gpunet.models import lenet5
    from gpunet.train import Trainer
    from gpunet.train.distributed import DataParallel, world

    ranks = world()
    gn.set_device("cpu")
    gn.manual_seed(0)
    data = load_dataset("mnist5k", normalize="scale", seed=0)
    model = lenet5(input_size=28)
    trainer = Trainer(model, gn.nn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                      metrics=())
    spent = {"hook": 0.0, "after": 0.0}  # seconds in the all-reduce during backward (its hook) and after it
    if ranks.distributed:
        from gpunet.train import distributed

        def timed(function, key):
            def call(*args, **kwargs):
                started = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    spent[key] += time.perf_counter() - started
            return call

        # the hook packs and starts each bucket once its gradients are ready, inside backward; average_gradients
        # starts the rest, waits for every rank and unpacks
        distributed._Reducer.gradient_ready = timed(distributed._Reducer.gradient_ready, "hook")
        trainer.distributed = DataParallel(ranks)
        trainer.distributed.average_gradients = timed(trainer.distributed.average_gradients, "after")
    loader = DataLoader(data.train, batch_size, shuffle=True, seed=0, num_replicas=ranks.size, rank=ranks.rank)
    epoch_times, hook_times, after_times = [], [], []
    for epoch in range(1, epochs + 1):
        spent.update(hook=0.0, after=0.0)
        started = time.perf_counter()
        trainer.fit(loader, epochs=epoch)
        epoch_times.append(time.perf_counter() - started)
        hook_times.append(spent["hook"])
        after_times.append(spent["after"])
    if ranks.rank == 0:
        print(json.dumps({"epoch_s": epoch_times, "hook_s": hook_times, "after_s": after_times,
                          "batches": len(loader), "samples": loader.num_samples,
                          "parameters": sum(p.numel() for p in model.parameters())}))


def measure(ranks: int, threads: int, epochs: int, batch_size: int) -> dict:
    from gpunet.train.distributed import mpiexec_path

    env = dict(os.environ, PYTHONPATH=str(ROOT), **{v: str(threads) for v in THREAD_VARIABLES})
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    command = [mpiexec_path(), "-n", str(ranks), "--oversubscribe", "--bind-to", "none", sys.executable,
               __file__, "--worker", "--epochs", str(epochs), "--batch-size", str(batch_size)]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"bench_ddp: {ranks} rank(s) failed:\n{result.stderr}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per launch (the first is a warm-up)")
    parser.add_argument("--repeats", type=int, default=3, help="launches per configuration, taking turns")
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.epochs, args.batch_size)
    before = " ".join(f"{v:.2f}" for v in os.getloadavg())
    runs = {(1, 1): [], (2, 1): [], (1, 2): []}
    for _ in range(args.repeats):
        for ranks, threads in runs:
            runs[ranks, threads].append(measure(ranks, threads, args.epochs, args.batch_size))
    for key, reports in runs.items():
        skip = 1 if args.epochs > 1 else 0

        def median(name):
            return statistics.median(t for r in reports for t in r[name][skip:])
        runs[key] = {**reports[0], "epoch": median("epoch_s"), "hook": median("hook_s"), "after": median("after_s")}
    base = runs[1, 1]
    print(f"LeNet-5 ({base['parameters']} parameters) on mnist5k: {base['samples']} training samples, global batch "
          f"{args.batch_size} ({base['batches']} steps), median of {args.repeats} x {max(args.epochs - 1, 1)} epochs, CPU")
    print(f"load average before: {before}, after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} "
          f"{os.getloadavg()[2]:.2f} (1, 5, 15 min)")
    print(f"{'configuration':<22} {'epoch s':>8} {'speed-up':>9} {'efficiency':>11} {'all-reduce s':>13} "
          f"{'in backward s':>14} {'all-reduce %':>13}")
    for (ranks, threads), r in runs.items():
        speedup = base["epoch"] / r["epoch"]
        total = r["hook"] + r["after"]
        print(f"{f'{ranks} rank(s) x {threads} thread(s)':<22} {r['epoch']:8.2f} {speedup:9.2f} "
              f"{speedup / (ranks * threads):11.2f} {total:13.3f} {r['hook']:14.3f} {100 * total / r['epoch']:12.1f}%")

if __name__ == "__main__":
    main()
