"""Convolution speed on the CPU: gpunet conv2d forward + backward against PyTorch (CPU), float32, one layer at a time.

Shapes: seed 001's digits CNN (N=100, 1x8x8, 10 filters 3x3, padding 'same'), the two layers of seed 000's CIFAR
CNN (N=64, 3x32x32 -> 32 filters 3x3; 32x15x15 -> 64 filters 3x3) and LeNet-5's two (N=128, 1x28x28 -> 6 5x5,
padding 2; 6x14x14 -> 16 5x5). Each step computes y = conv2d(x, w, b) and backpropagates a fixed upstream gradient
to x, w and b. Timing, report and thread setting are ``bench_cpu``'s (alternating runs, medians, ratios); the
whole-network figures are in ``bench_cpu`` too.

    python scripts/bench_conv.py [--repeats 20] [--threads 1]
"""
from __future__ import annotations

import argparse

import numpy as np

from bench_cpu import alternate, report, set_threads

SHAPES = [  # name, x shape, weight shape, padding
    ("digits 1x8x8 -> 10 3x3 same", (100, 1, 8, 8), (10, 1, 3, 3), "same"),
    ("cifar 3x32x32 -> 32 3x3", (64, 3, 32, 32), (32, 3, 3, 3), 0),
    ("cifar 32x15x15 -> 64 3x3", (64, 32, 15, 15), (64, 32, 3, 3), 0),
    ("lenet 1x28x28 -> 6 5x5 pad 2", (128, 1, 28, 28), (6, 1, 5, 5), 2),
    ("lenet 6x14x14 -> 16 5x5", (128, 6, 14, 14), (16, 6, 5, 5), 0),
]


def conv_step(fw, x, w, b, gy, padding):
    """conv2d forward and backward to x, w and b for ``fw`` (``gpunet`` or ``torch``); returns x's gradient sum."""
    tx, tw, tb = (fw.tensor(v, requires_grad=True) for v in (x, w, b))
    g = fw.tensor(gy)

    def step():
        tx.grad = tw.grad = tb.grad = None
        fw.nn.functional.conv2d(tx, tw, tb, padding=padding).backward(g)
        return float(tx.grad.sum())

    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per framework and shape")
    parser.add_argument("--threads", type=int, default=1, help="BLAS / intra-op threads for both frameworks")
    args = parser.parse_args(argv)
    import torch

    import gpunet as gn

    gn.set_device("cpu")
    set_threads(args.threads)
    rng = np.random.default_rng(0)
    for name, x_shape, w_shape, padding in SHAPES:
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32) * 0.1
        b = rng.standard_normal(w_shape[0], dtype=np.float32)
        out = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=padding).shape
        gy = rng.standard_normal(tuple(out), dtype=np.float32)
        times, _ = alternate({fw.__name__.replace("torch", "pytorch"): conv_step(fw, x, w, b, gy, padding)
                              for fw in (gn, torch)}, args.repeats)
        report(f"conv2d {name}, batch {x_shape[0]}, forward+backward", times, 1.2, unit="step")  # the block's bar


if __name__ == "__main__":
    main()
