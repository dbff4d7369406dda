"""Convolution speed on the CPU: gpunet conv2d forward + backward against PyTorch (CPU), float32.

Shapes: seed 001's digits CNN (N=100, 1x8x8, 10 filters 3x3, padding 'same') and the two layers of seed 000's
CIFAR CNN (N=64, 3x32x32 -> 32 filters 3x3; 32x15x15 -> 64 filters 3x3). Each step computes y = conv2d(x, w, b)
and backpropagates a fixed upstream gradient to x, w and b. The two frameworks alternate step by step so that
machine noise hits both alike; the script prints each one's median time and the ratio gpunet / PyTorch.

    python scripts/bench_conv.py [--repeats 20] [--threads N]

``--threads N`` limits both NumPy's BLAS and PyTorch to N threads (set before either is imported). On a machine
whose cores are busy with other work, multi-threaded BLAS calls can stall for many milliseconds waiting for a
core; ``--threads 1`` gives the steadier comparison there.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

SHAPES = [  # name, x shape, weight shape, padding
    ("digits 1x8x8 -> 10 3x3 same", (100, 1, 8, 8), (10, 1, 3, 3), "same"),
    ("cifar 3x32x32 -> 32 3x3", (64, 3, 32, 32), (32, 3, 3, 3), 0),
    ("cifar 32x15x15 -> 64 3x3", (64, 32, 15, 15), (64, 32, 3, 3), 0),
]


def gpunet_step(x, w, b, gy, padding):
    import gpunet as gn

    gn.set_device("cpu")
    tx, tw, tb = (gn.tensor(v, requires_grad=True) for v in (x, w, b))
    g = gn.tensor(gy)

    def step():
        tx.grad = tw.grad = tb.grad = None
        gn.nn.functional.conv2d(tx, tw, tb, padding=padding).backward(g)

    return step


def torch_step(x, w, b, gy, padding):
    import torch

    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    g = torch.tensor(gy)

    def step():
        tx.grad = tw.grad = tb.grad = None
        torch.nn.functional.conv2d(tx, tw, tb, padding=padding).backward(g)

    return step


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per framework and shape")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for NumPy's BLAS and for PyTorch (default: each library's choice)")
    args = parser.parse_args(argv)
    if args.threads:  # read by OpenBLAS / MKL / OpenMP when they load, so before numpy and torch are imported
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{'shape':32} {'gpunet ms':>10} {'torch ms':>10} {'ratio':>7}")
    for name, x_shape, w_shape, padding in SHAPES:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
        b = rng.standard_normal(w_shape[0], dtype=np.float32)
        out = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=padding).shape
        gy = rng.standard_normal(tuple(out), dtype=np.float32)
        ours, theirs = gpunet_step(x, w, b, gy, padding), torch_step(x, w, b, gy, padding)
        for _ in range(3):  # warm up both
            ours()
            theirs()
        times = {"gpunet": [], "torch": []}
        for _ in range(args.repeats):
            times["gpunet"].append(timed(ours))
            times["torch"].append(timed(theirs))
        g, t = statistics.median(times["gpunet"]) * 1e3, statistics.median(times["torch"]) * 1e3
        print(f"{name:32} {g:10.2f} {t:10.2f} {g / t:7.2f}")


if __name__ == "__main__":
    main()
