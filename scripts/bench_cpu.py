"""Framework overhead on the CPU: one training epoch of seed 001's digits network, gpunet against PyTorch.

The network is 64-50-10 with a sigmoid hidden layer, softmax cross-entropy, plain SGD, batch 100, float32, on
the scikit-learn digits (the same 1797 images for both). Epochs of the two frameworks alternate so that machine
noise hits both alike; the script prints each one's median epoch time and the ratio gpunet / PyTorch
(the target is at most 0.8).

    python scripts/bench_cpu.py [--repeats 40] [--batch-size 100]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def load_digits_float32():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit('bench_cpu: needs scikit-learn for the digits: pip install "gpunet[datasets]"')
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


def epoch_runner(fw, x, y, batch_size, weights):
    """A function that trains the digits network for one epoch and returns the last loss, written once for
    ``fw``: the ``gpunet`` or the ``torch`` module (the same names, arguments and weight layout)."""
    net = fw.nn.Sequential(fw.nn.Linear(64, 50), fw.nn.Sigmoid(), fw.nn.Linear(50, 10))
    net.load_state_dict({k: fw.tensor(v) for k, v in weights.items()})
    opt = fw.optim.SGD(net.parameters(), lr=0.1)
    batches = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]

    def epoch():
        for xb, yb in batches:
            loss = fw.nn.functional.cross_entropy(net(fw.tensor(xb)), fw.tensor(yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return epoch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="timed epochs per framework")
    parser.add_argument("--batch-size", type=int, default=100)
    args = parser.parse_args(argv)

    x, y = load_digits_float32()
    try:
        import torch
    except ImportError:
        sys.exit('bench_cpu: needs PyTorch as the reference: pip install "gpunet[test]"')
    import gpunet as gn

    gn.set_device("cpu")
    rng = np.random.default_rng(0)
    bound1, bound2 = 1 / np.sqrt(64), 1 / np.sqrt(50)
    weights = {
        "0.weight": rng.uniform(-bound1, bound1, (50, 64)).astype(np.float32),
        "0.bias": rng.uniform(-bound1, bound1, 50).astype(np.float32),
        "2.weight": rng.uniform(-bound2, bound2, (10, 50)).astype(np.float32),
        "2.bias": rng.uniform(-bound2, bound2, 10).astype(np.float32),
    }
    runners = {"gpunet": epoch_runner(gn, x, y, args.batch_size, weights),
               "pytorch": epoch_runner(torch, x, y, args.batch_size, weights)}
    first_losses = {name: run() for name, run in runners.items()}  # warm-up, and a sanity check
    if abs(first_losses["gpunet"] - first_losses["pytorch"]) > 1e-4:
        sys.exit(f"bench_cpu: the two frameworks disagree after one epoch: {first_losses}")
    times = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(t) for name, t in times.items()}
    ratio = medians["gpunet"] / medians["pytorch"]
    print(f"digits 64-50-10 sigmoid, SGD, batch {args.batch_size}, {len(x)} samples, float32; "
          f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    for name, t in times.items():
        q = statistics.quantiles(t, n=4)
        print(f"{name:8s} median {medians[name] * 1e3:7.3f} ms/epoch  (quartiles {q[0] * 1e3:.3f} - {q[2] * 1e3:.3f})")
    print(f"ratio gpunet/pytorch = {ratio:.3f}  (target <= 0.8: {'met' if ratio <= 0.8 else 'NOT met'})")
    return 0 if ratio <= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
