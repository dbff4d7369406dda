"""CPU speed of gpunet against PyTorch, measured in the same run: each case's two runners alternate so that
machine noise hits both alike; the script prints each one's median time and the ratio gpunet / PyTorch against
the case's target, and exits 1 when a target is missed.

Cases (float32, the same weights and data for both frameworks):

- ``mlp``: one training epoch of seed 001's digits network, 64-50-10 with a sigmoid hidden layer, softmax
  cross-entropy, plain SGD, batch 100, on the scikit-learn digits (1797 images); target 0.8.
- ``digits_cnn``: one training epoch of seed 001's digits CNN (``configs/cnn_digits.yaml``: 3x3 convolution with
  10 filters, 'same' padding, ReLU, 2x2 max pooling, 160-50-10), SGD, batch 100, on the digits; target 0.7.
- ``lenet5``: one training epoch of LeNet-5 (seed 002's layer table, 28x28 inputs with padding 2 in the first
  convolution, tanh, 2x2 average pooling, 61,706 parameters), SGD, batch 128, on --lenet-samples random images;
  target 1.0 (bar 1.2).
- ``cifar_block``: forward + backward of a CIFAR-size convolutional block (3->32 3x3, ReLU, 2x2 max pool,
  32->64 3x3, ReLU) on a batch of 64 32x32 images; target 1.2.
- ``max_pool``: 2x2 max pooling forward + backward of (64, 32, 28, 28) and of (100, 10, 8, 8); target 1.0.

    python scripts/bench_cpu.py [--cases mlp lenet5 ...] [--repeats 40] [--threads 1]
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


def alternate(runners, repeats):
    """Seconds of each call of each runner ({name: function}), the runners called in turn ``repeats`` times."""
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def report(title, times, target, unit="epoch"):
    """Print each runner's median and quartiles (ms per ``unit``) and the ratio gpunet / PyTorch against
    ``target``; True when the target is met."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratio = medians["gpunet"] / medians["pytorch"]
    print(title)
    for name, t in times.items():
        q = statistics.quantiles(t, n=4)
        print(f"  {name:8s} median {medians[name] * 1e3:8.3f} ms/{unit}  (quartiles {q[0] * 1e3:.3f} - {q[2] * 1e3:.3f})")
    print(f"  ratio gpunet/pytorch = {ratio:.3f}  (target <= {target}: {'met' if ratio <= target else 'NOT met'})")
    return ratio <= target


def bench_mlp(gn, torch, args):
    x, y = load_digits_float32()
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
    return report(f"mlp: digits 64-50-10 sigmoid, SGD, batch {args.batch_size}, {len(x)} samples",
                  alternate(runners, args.repeats), 0.8)


# ----- convolutional networks ---------------------------------------------------------------------------------------
def digits_cnn(fw):
    """Seed 001's digits CNN (configs/cnn_digits.yaml), built from ``fw.nn`` (``gpunet`` or ``torch``)."""
    nn = fw.nn
    return nn.Sequential(nn.Conv2d(1, 10, 3, padding="same"), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(160, 50), nn.ReLU(), nn.Linear(50, 10))


def lenet5(fw):
    """LeNet-5 for 28x28 inputs (padding 2 in the first convolution): 61,706 parameters for 10 classes."""
    nn = fw.nn
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, 10))


def cifar_block(fw):
    """A CIFAR-size convolutional block, 3 -> 32 -> 64 channels on 32x32 images (seed 000's first layers)."""
    nn = fw.nn
    return nn.Sequential(nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU())


def shared_weights(gn, torch, build):
    """The two frameworks' networks from ``build``, both holding PyTorch's initial weights."""
    torch.manual_seed(0)
    theirs = build(torch)
    ours = build(gn)
    ours.load_state_dict({k: gn.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    return ours, theirs


def train_runner(fw, net, x, y, batch_size, lr=0.05):
    """One SGD training epoch of ``net`` (softmax cross-entropy) over (x, y) in batches; returns the last loss."""
    opt = fw.optim.SGD(net.parameters(), lr=lr)
    batches = [(fw.tensor(x[i:i + batch_size]), fw.tensor(y[i:i + batch_size])) for i in range(0, len(x), batch_size)]

    def epoch():
        for xb, yb in batches:
            loss = fw.nn.functional.cross_entropy(net(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item()

    return epoch


def compare_training(gn, torch, build, x, y, batch_size, repeats, title, target):
    nets = shared_weights(gn, torch, build)
    runners = {name: train_runner(fw, net, x, y, batch_size)
               for name, fw, net in zip(("gpunet", "pytorch"), (gn, torch), nets)}
    first_losses = {name: run() for name, run in runners.items()}  # warm-up, and a sanity check
    if abs(first_losses["gpunet"] - first_losses["pytorch"]) > 1e-3:
        sys.exit(f"bench_cpu: {title}: the two frameworks disagree after one epoch: {first_losses}")
    return report(f"{title}, SGD, batch {batch_size}, {len(x)} samples", alternate(runners, repeats), target)


def bench_digits_cnn(gn, torch, args):
    x, y = load_digits_float32()
    return compare_training(gn, torch, digits_cnn, x.reshape(-1, 1, 8, 8), y, 100, args.repeats,
                            "digits_cnn: seed 001's digits CNN", 0.7)


def bench_lenet5(gn, torch, args):
    rng = np.random.default_rng(0)
    x = rng.random((args.lenet_samples, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, args.lenet_samples)
    return compare_training(gn, torch, lenet5, x, y, 128, max(3, args.repeats // 4),
                            "lenet5: LeNet-5 28x28, tanh, average pooling", 1.0)


def step_runner(fw, forward, x, gy):
    """forward(x) and its backward with the upstream gradient gy, the input's gradient included."""
    xt, gyt = fw.tensor(x, requires_grad=True), fw.tensor(gy)

    def step():
        xt.grad = None
        forward(xt).backward(gyt)

    return step


def compare_steps(gn, torch, forwards, x, gy, repeats, title, target):
    runners = {name: step_runner(fw, forwards[name], x, gy) for name, fw in (("gpunet", gn), ("pytorch", torch))}
    for run in runners.values():  # warm-up
        run()
    return report(title, alternate(runners, repeats), target, unit="step")


def bench_cifar_block(gn, torch, args):
    ours, theirs = shared_weights(gn, torch, cifar_block)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 32, 32), dtype=np.float32)
    gy = rng.standard_normal((64, 64, 13, 13), dtype=np.float32)
    return compare_steps(gn, torch, {"gpunet": ours, "pytorch": theirs}, x, gy, args.repeats,
                         "cifar_block: 3->32 3x3, ReLU, max pool 2, 32->64 3x3, ReLU; batch 64, forward+backward", 1.2)


def bench_max_pool(gn, torch, args):
    rng = np.random.default_rng(0)
    met = True
    for shape in ((64, 32, 28, 28), (100, 10, 8, 8)):
        x = rng.standard_normal(shape, dtype=np.float32)
        gy = rng.standard_normal((*shape[:2], shape[2] // 2, shape[3] // 2), dtype=np.float32)
        forwards = {"gpunet": lambda t: gn.nn.functional.max_pool2d(t, 2),
                    "pytorch": lambda t: torch.nn.functional.max_pool2d(t, 2)}
        met &= compare_steps(gn, torch, forwards, x, gy, args.repeats,
                             f"max_pool: 2x2 of {'x'.join(map(str, shape))}, forward+backward", 1.0)
    return met


CASES = {"mlp": bench_mlp, "digits_cnn": bench_digits_cnn, "lenet5": bench_lenet5, "cifar_block": bench_cifar_block,
         "max_pool": bench_max_pool}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES), help="cases to run")
    parser.add_argument("--repeats", type=int, default=40, help="timed runs per framework (lenet5: a quarter)")
    parser.add_argument("--batch-size", type=int, default=100, help="the mlp case's batch size")
    parser.add_argument("--lenet-samples", type=int, default=2560, help="images in the lenet5 case's epoch")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for NumPy's BLAS and for PyTorch (default: each library's own choice; on a "
                             "machine busy with other work, 1 gives the steadier comparison)")
    args = parser.parse_args(argv)

    try:
        import torch
    except ImportError:
        sys.exit('bench_cpu: needs PyTorch as the reference: pip install "gpunet[test]"')
    import gpunet as gn

    gn.set_device("cpu")
    if args.threads:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            sys.exit("bench_cpu: --threads needs threadpoolctl: pip install threadpoolctl")
        threadpool_limits(args.threads)
        torch.set_num_threads(args.threads)
    print(f"float32; numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    met = [CASES[name](gn, torch, args) for name in args.cases]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
