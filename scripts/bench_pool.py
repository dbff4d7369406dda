"""CPU time of 2x2 max pooling, forward plus backward, gpunet (NumPy) against PyTorch, alternating the two.

Shapes: 100x10x8x8 (the digits CNN's pooling layer, one batch) and 64x32x28x28 (an MNIST-sized layer), float32.
Prints each framework's median time per forward+backward and the ratio gpunet / PyTorch. PyTorch runs on one
thread by default, as NumPy's pooling does (--torch-threads 0 keeps PyTorch's own choice).

    python scripts/bench_pool.py [--repeats 50] [--torch-threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

SHAPES = ((100, 10, 8, 8), (64, 32, 28, 28))


def gpunet_step(x, gy):
    import gpunet as gn

    gn.set_device("cpu")
    xt, gyt = gn.tensor(x, requires_grad=True), gn.tensor(gy)

    def step():
        xt.grad = None
        gn.nn.functional.max_pool2d(xt, 2).backward(gyt)

    return step


def torch_step(x, gy, threads):
    try:
        import torch
    except ImportError:
        sys.exit('bench_pool: needs PyTorch as the reference: pip install "gpunet[test]"')
    if threads:
        torch.set_num_threads(threads)
    xt, gyt = torch.tensor(x, requires_grad=True), torch.tensor(gy)

    def step():
        xt.grad = None
        torch.nn.functional.max_pool2d(xt, 2).backward(gyt)

    return step


def median_ms(steps, repeats):
    """Median milliseconds per call of each step, the steps called in turn."""
    times = [[] for _ in steps]
    for _ in range(repeats):
        for step, record in zip(steps, times):
            start = time.perf_counter()
            step()
            record.append(time.perf_counter() - start)
    return [1e3 * statistics.median(t) for t in times]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--torch-threads", type=int, default=1, help="PyTorch's CPU threads (0: its default)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'shape':>16}  {'gpunet ms':>9}  {'torch ms':>8}  ratio")
    for shape in SHAPES:
        x = rng.standard_normal(shape, dtype=np.float32)
        gy = rng.standard_normal((*shape[:2], shape[2] // 2, shape[3] // 2), dtype=np.float32)
        steps = [gpunet_step(x, gy), torch_step(x, gy, args.torch_threads)]
        for step in steps:  # warm up
            step()
        ours, theirs = median_ms(steps, args.repeats)
        print(f"{'x'.join(map(str, shape)):>16}  {ours:9.3f}  {theirs:8.3f}  {ours / theirs:5.2f}")


if __name__ == "__main__":
    main()
