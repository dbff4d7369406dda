"""LSTM forward + backward on the CPU, gpunet against PyTorch, on the same weights and inputs.

Cases: seed 000's IMDB model (batch 128, 200 steps, embedding 15 -> hidden 10) and a bigger one (batch 64,
100 steps, 128 -> hidden 128). One iteration is a forward pass, a loss on the last hidden state (many-to-one, as
the seed's sentiment model) and a backward pass to the input and every weight. The frameworks alternate so that
machine noise hits both alike; the script prints each one's median and the ratio gpunet / PyTorch (timing and
threads as ``bench_cpu.py``, whose training-epoch cases carry the speed targets; this one isolates the layer).

    python scripts/bench_rnn.py [--repeats 10] [--case imdb|big|all] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from bench_cpu import alternate, report, set_threads

CASES = {  # name: (batch, steps, input size, hidden size)
    "imdb": (128, 200, 15, 10),
    "big": (64, 100, 128, 128),
}
TARGETS = {"imdb": 1.0, "big": 1.1}  # those of bench_cpu.py's training cases of the same models


def runners(batch, steps, inputs, hidden):
    try:
        import torch
    except ImportError:
        sys.exit('bench_rnn: needs PyTorch as the reference: pip install "gpunet[test]"')
    import gpunet as gn

    gn.set_device("cpu")
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(inputs, hidden)
    ours = gn.nn.LSTM(inputs, hidden)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((steps, batch, inputs)).astype(np.float32)

    def run_torch():
        tx = torch.tensor(x, requires_grad=True)
        theirs.zero_grad()
        _, (h, _) = theirs(tx)
        (h * h).sum().backward()
        return float(tx.grad.abs().sum())

    def run_gpunet():
        gx = gn.tensor(x, requires_grad=True)
        ours.zero_grad()
        _, (h, _) = ours(gx)
        (h * h).sum().backward()
        return float(gx.grad.abs().sum().item())

    return {"gpunet": run_gpunet, "pytorch": run_torch}


def bench(name, repeats):
    batch, steps, inputs, hidden = CASES[name]
    times, first = alternate(runners(batch, steps, inputs, hidden), repeats)
    if not np.isclose(first["gpunet"], first["pytorch"], rtol=1e-3):  # both compute the same thing
        sys.exit(f"bench_rnn: the two frameworks disagree on the input gradient: {first}")
    return report(f"LSTM {name}: batch {batch}, {steps} steps, {inputs} -> {hidden}, float32, forward + backward",
                  times, TARGETS[name], unit="pass")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed iterations per framework")
    parser.add_argument("--case", choices=(*CASES, "all"), default="all")
    parser.add_argument("--threads", type=int, default=1, help="BLAS / intra-op threads for both frameworks")
    args = parser.parse_args(argv)
    import torch

    set_threads(args.threads)
    print(f"numpy {np.__version__}, torch {torch.__version__}, {args.threads} thread(s) each")
    for name in CASES if args.case == "all" else (args.case,):
        bench(name, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
