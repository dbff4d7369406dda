"""CPU speed against PyTorch, same run: training epochs of small networks, gpunet and PyTorch alternating.

Cases (``--case``, default all):

- ``digits``: one epoch of seed 001's digits network (64-50-10, sigmoid hidden layer, softmax cross-entropy, plain
  SGD, batch 100, the 1797 scikit-learn digits); target ratio at most 0.8 (framework overhead).
- ``imdb``: one epoch of seed 000's IMDB model (Embedding(5000, 15), LSTM(10), Linear(10, 1), BCE with logits,
  Adam, 1024 sequences of 200 tokens, batch 128); target at most 1.0 (bar 1.2).
- ``lstm256``: one training step of a larger LSTM (hidden 256, input 128, batch 64, 100 steps; forward, backward,
  Adam step); target at most 1.1.
- ``digits_cnn``: one epoch of seed 001's digits CNN (``configs/cnn_digits.yaml``: 3x3 convolution with 10 filters,
  'same' padding, ReLU, 2x2 max pooling, 160-50-10), SGD, batch 100, on the digits; target at most 0.7.
- ``lenet5``: one epoch of LeNet-5 (seed 002's layer table, 28x28 inputs with padding 2 in the first convolution,
  tanh, 2x2 average pooling, 61,706 parameters), SGD, batch 128, 2560 random images; target at most 1.0 (bar 1.2).
- ``cifar_block``: forward + backward of a CIFAR-size block (3->32 3x3, ReLU, 2x2 max pool, 32->64 3x3, ReLU) on a
  batch of 64 32x32 images; target at most 1.2.
- ``max_pool``: 2x2 max pooling forward + backward of (64, 32, 28, 28) and (100, 10, 8, 8); target at most 1.0.

Runs of the two frameworks alternate so that machine noise hits both alike; the script prints each one's median
and the ratio gpunet / PyTorch, float32, both at the same thread count (``--threads``, default 1).

    python scripts/bench_cpu.py [--case NAME|all] [--repeats N] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def alternate(runners, repeats):
    """Time ``repeats`` calls of each runner ({name: function}), alternating; {name: [seconds]}. Each runner is
    called once first (warm-up); those first results come back as well: (times, first)."""
    first = {name: run() for name, run in runners.items()}
    times = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times, first


def report(title, times, target, unit="epoch"):
    """Print each framework's median (and quartiles) and the ratio gpunet / pytorch against ``target``; the ratio."""
    medians = {name: statistics.median(t) for name, t in times.items()}
    ratio = medians["gpunet"] / medians["pytorch"]
    print(title)
    for name, t in times.items():
        q = statistics.quantiles(t, n=4) if len(t) > 1 else (t[0], t[0], t[0])
        print(f"  {name:8s} median {medians[name] * 1e3:9.3f} ms/{unit}  (quartiles {q[0] * 1e3:.3f} - "
              f"{q[2] * 1e3:.3f})")
    print(f"  ratio gpunet/pytorch = {ratio:.3f}  (target <= {target}: {'met' if ratio <= target else 'NOT met'})")
    return ratio


def set_threads(threads):
    """The same number of intra-op / BLAS threads for PyTorch and NumPy (through threadpoolctl)."""
    import torch

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        sys.exit("bench: --threads needs threadpoolctl: pip install threadpoolctl")
    threadpool_limits(threads)
    torch.set_num_threads(threads)


def _check_agree(case, first, tolerance):
    if abs(first["gpunet"] - first["pytorch"]) > tolerance * max(1.0, abs(first["pytorch"])):
        sys.exit(f"bench_cpu {case}: the two frameworks disagree after the first run: {first}")


# --- digits: seed 001's network -------------------------------------------------------------------------------

def load_digits_float32():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit('bench_cpu: needs scikit-learn for the digits: pip install "gpunet[datasets]"')
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int64)


def digits_epoch(fw, x, y, batch_size, weights):
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


def digits_case(gn, torch, repeats):
    batch_size = 100
    x, y = load_digits_float32()
    rng = np.random.default_rng(0)
    bound1, bound2 = 1 / np.sqrt(64), 1 / np.sqrt(50)
    weights = {
        "0.weight": rng.uniform(-bound1, bound1, (50, 64)).astype(np.float32),
        "0.bias": rng.uniform(-bound1, bound1, 50).astype(np.float32),
        "2.weight": rng.uniform(-bound2, bound2, (10, 50)).astype(np.float32),
        "2.bias": rng.uniform(-bound2, bound2, 10).astype(np.float32),
    }
    times, first = alternate({"gpunet": digits_epoch(gn, x, y, batch_size, weights),
                              "pytorch": digits_epoch(torch, x, y, batch_size, weights)}, repeats or 40)
    _check_agree("digits", first, 1e-4)
    return report(f"digits 64-50-10 sigmoid, SGD, batch {batch_size}, {len(x)} samples, one epoch", times, 0.8)


# --- recurrent networks ---------------------------------------------------------------------------------------

def epoch_runner(fw, net, optimizer, loss_fn, x, y, batch_size):
    """A function that trains ``net`` (of framework ``fw``) for one epoch over (x, y) in batches of ``batch_size``
    with ``loss_fn(output, target)`` and ``optimizer``, and returns the last batch's loss."""
    batches = [(fw.tensor(x[i:i + batch_size]), fw.tensor(y[i:i + batch_size])) for i in range(0, len(x), batch_size)]

    def epoch():
        for xb, yb in batches:
            loss = loss_fn(net(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return loss.item()

    return epoch


class SequenceClassifier:
    """Seed 000's sentiment model for ``fw`` (gpunet or torch): Embedding -> LSTM (batch first) -> Linear on the
    last hidden state; one logit per sequence."""

    def __init__(self, fw, vocabulary, embedding, hidden):
        self.embedding = fw.nn.Embedding(vocabulary, embedding)
        self.lstm = fw.nn.LSTM(embedding, hidden, batch_first=True)
        self.head = fw.nn.Linear(hidden, 1)
        self.modules = {"embedding": self.embedding, "lstm": self.lstm, "head": self.head}

    def __call__(self, tokens):
        _, (h, _) = self.lstm(self.embedding(tokens))
        return self.head(h[0])[:, 0]

    def parameters(self):
        return [p for m in self.modules.values() for p in m.parameters()]


def _same_weights(ours, theirs):
    for name, module in theirs.modules.items():
        ours.modules[name].load_state_dict({k: v.detach().numpy() for k, v in module.state_dict().items()})


def imdb_case(gn, torch, repeats):
    vocabulary, embedding, hidden, samples, length, batch_size = 5000, 15, 10, 1024, 200, 128
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, vocabulary, (samples, length))
    labels = rng.integers(0, 2, samples).astype(np.float32)
    torch.manual_seed(0)
    models = {"pytorch": SequenceClassifier(torch, vocabulary, embedding, hidden),
              "gpunet": SequenceClassifier(gn, vocabulary, embedding, hidden)}
    _same_weights(models["gpunet"], models["pytorch"])

    def runner(fw):
        model = models["gpunet" if fw is gn else "pytorch"]
        return epoch_runner(fw, model, fw.optim.Adam(model.parameters(), lr=1e-3),
                            fw.nn.functional.binary_cross_entropy_with_logits, tokens, labels, batch_size)

    times, first = alternate({"gpunet": runner(gn), "pytorch": runner(torch)}, repeats or 10)
    _check_agree("imdb", first, 1e-3)
    return report(f"IMDB: Embedding({vocabulary}, {embedding}), LSTM({hidden}), Linear({hidden}, 1), BCE with "
                  f"logits, Adam, {samples} sequences of {length}, batch {batch_size}, one epoch", times, 1.0)


def lstm256_case(gn, torch, repeats):
    inputs, hidden, batch, steps = 128, 256, 64, 100
    x = np.random.default_rng(0).standard_normal((steps, batch, inputs)).astype(np.float32)
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(inputs, hidden)
    ours = gn.nn.LSTM(inputs, hidden)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})

    def step_runner(fw, lstm):
        opt = fw.optim.Adam(lstm.parameters(), lr=1e-4)
        xs = fw.tensor(x)

        def step():
            out, _ = lstm(xs)
            loss = (out * out).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item()

        return step

    times, first = alternate({"gpunet": step_runner(gn, ours), "pytorch": step_runner(torch, theirs)},
                             repeats or 10)
    _check_agree("lstm256", first, 1e-3)
    return report(f"LSTM {inputs} -> {hidden}, batch {batch}, {steps} steps: forward, backward, Adam step", times,
                  1.1, unit="step")


CASES = {"digits": digits_case, "imdb": imdb_case, "lstm256": lstm256_case}


# --- convolutional networks -----------------------------------------------------------------------------------

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
    """{"gpunet": network, "pytorch": network} from ``build``, both holding PyTorch's initial weights."""
    torch.manual_seed(0)
    theirs = build(torch)
    ours = build(gn)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return {"gpunet": ours, "pytorch": theirs}


def training_case(gn, torch, build, x, y, batch_size, repeats, title, target):
    """One SGD epoch (softmax cross-entropy) of ``build``'s network over (x, y), alternating; the ratio."""
    nets = shared_weights(gn, torch, build)
    times, first = alternate({name: epoch_runner(fw, nets[name], fw.optim.SGD(nets[name].parameters(), lr=0.05),
                                                 fw.nn.functional.cross_entropy, x, y, batch_size)
                              for name, fw in (("gpunet", gn), ("pytorch", torch))}, repeats)
    _check_agree(title.split(":")[0], first, 1e-3)
    return report(f"{title}, SGD, batch {batch_size}, {len(x)} samples, one epoch", times, target)


def digits_cnn_case(gn, torch, repeats):
    x, y = load_digits_float32()
    return training_case(gn, torch, digits_cnn, x.reshape(-1, 1, 8, 8), y, 100, repeats or 40,
                         "digits_cnn: seed 001's digits CNN", 0.7)


def lenet5_case(gn, torch, repeats):
    rng = np.random.default_rng(0)
    x = rng.random((2560, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, len(x))
    return training_case(gn, torch, lenet5, x, y, 128, repeats or 10, "lenet5: LeNet-5 28x28, tanh, average pooling",
                         1.0)


def step_case(gn, torch, forwards, x, gy, repeats, title, target):
    """forwards[name](x) and its backward with the upstream gradient gy (x's gradient too), alternating; the
    ratio."""
    def step_runner(fw, forward):
        xt, gyt = fw.tensor(x, requires_grad=True), fw.tensor(gy)

        def step():
            xt.grad = None
            forward(xt).backward(gyt)
            return float(xt.grad.sum())

        return step

    frameworks = {"gpunet": gn, "pytorch": torch}
    times, first = alternate({name: step_runner(fw, forwards[name]) for name, fw in frameworks.items()}, repeats)
    _check_agree(title.split(":")[0], first, 1e-3)
    return report(title, times, target, unit="step")


def cifar_block_case(gn, torch, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 32, 32), dtype=np.float32)
    gy = rng.standard_normal((64, 64, 13, 13), dtype=np.float32)
    return step_case(gn, torch, shared_weights(gn, torch, cifar_block), x, gy, repeats or 20,
                     "cifar_block: 3->32 3x3, ReLU, max pool 2, 32->64 3x3, ReLU; batch 64, forward+backward", 1.2)


def max_pool_case(gn, torch, repeats):
    """The larger of the two shapes' ratios (both printed)."""
    rng = np.random.default_rng(0)
    forwards = {"gpunet": lambda t: gn.nn.functional.max_pool2d(t, 2),
                "pytorch": lambda t: torch.nn.functional.max_pool2d(t, 2)}
    ratios = []
    for shape in ((64, 32, 28, 28), (100, 10, 8, 8)):
        x = rng.standard_normal(shape, dtype=np.float32)
        gy = rng.standard_normal((*shape[:2], shape[2] // 2, shape[3] // 2), dtype=np.float32)
        ratios.append(step_case(gn, torch, forwards, x, gy, repeats or 40,
                                f"max_pool: 2x2 of {'x'.join(map(str, shape))}, forward+backward", 1.0))
    return max(ratios)


CONV_CASES = {"digits_cnn": digits_cnn_case, "lenet5": lenet5_case, "cifar_block": cifar_block_case,
              "max_pool": max_pool_case}
CASES.update(CONV_CASES)
TARGETS = {"digits": 0.8, "imdb": 1.0, "lstm256": 1.1, "digits_cnn": 0.7, "lenet5": 1.0, "cifar_block": 1.2,
           "max_pool": 1.0}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=(*CASES, "all"), default="all")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per framework (default per case)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS / intra-op threads for both frameworks")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        sys.exit('bench_cpu: needs PyTorch as the reference: pip install "gpunet[test]"')
    import gpunet as gn

    gn.set_device("cpu")
    set_threads(args.threads)
    print(f"numpy {np.__version__}, torch {torch.__version__}, {args.threads} thread(s) each")
    met = [CASES[name](gn, torch, args.repeats) <= TARGETS[name]
           for name in (CASES if args.case == "all" else (args.case,))]
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
