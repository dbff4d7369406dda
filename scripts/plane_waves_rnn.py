#!/usr/bin/env python
"""Seed 000's next-frame prediction of plane waves (its eq. 22), in one dimension, with an LSTM.

Each sequence is a damped travelling wave sampled on a grid of ``--points`` positions x in [0, 1):

    c(x, t) = 1/2 sin(k x + omega t + theta0) exp(-beta t) + 1/2,    t = 0, dt, 2 dt, ...,  dt = 0.005 s

with the seed's ranges, drawn uniformly per sequence: wavelength 2 pi/|k| in [0.3, 0.6] (the sign of k, the
direction of travel, at random: the 1-D form of a random wave vector), period 2 pi/omega in [0.03, 0.06],
2 pi/beta in [1.5, 6], theta0 in [0, 2 pi]. As in the seed, half the sequences train and half test.

An LSTM (batch_first) reads frames 0..t and a Linear layer maps its hidden state to frame t+1, for every t at once;
the loss is the MSE over all predicted frames, minimised with Adam. The test MSE is printed beside the persistence
baseline, which predicts frame t+1 = frame t: a model that learnt nothing about the motion does no better.

    python scripts/plane_waves_rnn.py [--epochs 60] [--frames 40] [--points 32] [--device cpu]
"""
from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gpunet as gn  # noqa: E402  (after the path is set, so a source checkout works uninstalled)
from gpunet.data import DataLoader  # noqa: E402

from example_device import add_device_argument, use_device

F = gn.nn.functional
DT = 0.005  # seconds between frames (seed 000)


def plane_waves(sequences, frames, points, rng, dt=DT):
    """``sequences`` waves of eq. 22 in 1-D, ``frames`` time steps each on ``points`` positions in [0, 1):
    float32 array (sequences, frames, points) with values in [0, 1]."""
    def uniform(low, high):
        return rng.uniform(low, high, size=(sequences, 1, 1))
    k = 2 * math.pi / uniform(0.3, 0.6) * rng.choice([-1.0, 1.0], size=(sequences, 1, 1))
    omega = 2 * math.pi / uniform(0.03, 0.06)
    beta = 2 * math.pi / uniform(1.5, 6.0)
    theta0 = uniform(0.0, 2 * math.pi)
    x = np.arange(points) / points
    t = (np.arange(frames) * dt)[:, None]
    return (0.5 * np.sin(k * x + omega * t + theta0) * np.exp(-beta * t) + 0.5).astype(np.float32)


class NextFrame(gn.nn.Module):
    """LSTM over the frames, then Linear from each hidden state to the next frame."""

    def __init__(self, points, hidden):
        super().__init__()
        self.lstm = gn.nn.LSTM(points, hidden, batch_first=True)
        self.head = gn.nn.Linear(hidden, points)

    def forward(self, frames):
        output, _ = self.lstm(frames)
        return self.head(output)


def persistence_mse(waves):
    """MSE of predicting every frame t+1 as frame t."""
    return float(np.mean((waves[:, 1:] - waves[:, :-1]) ** 2, dtype=np.float64))


def model_mse(model, waves):
    """MSE of the model's predictions of frames 1.. from the frames before them."""
    with gn.no_grad():
        prediction = model(gn.tensor(waves[:, :-1])).numpy()
    return float(np.mean((prediction - waves[:, 1:]) ** 2, dtype=np.float64))


def train(sequences=512, frames=40, points=32, hidden=64, epochs=60, batch_size=32, lr=1e-2, seed=0, log=print):
    """Generate the waves (half train, half test), train; returns a dict with per-epoch ``train_loss``, the test
    ``test_mse`` and ``persistence_mse``, and the ``model``."""
    gn.manual_seed(seed)
    waves = plane_waves(sequences, frames, points, np.random.default_rng(seed))
    train_waves, test_waves = waves[:sequences // 2], waves[sequences // 2:]
    model = NextFrame(points, hidden)
    optimizer = gn.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(train_waves, batch_size=batch_size, shuffle=True, seed=seed)
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for batch in loader:
            batch = gn.tensor(batch)
            loss = F.mse_loss(model(batch[:, :-1]), batch[:, 1:])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        losses.append(total / len(loader))
        log(f"epoch {epoch + 1:3d}/{epochs}  train MSE {losses[-1]:.5f}")
    return {"train_loss": losses, "test_mse": model_mse(model, test_waves),
            "persistence_mse": persistence_mse(test_waves), "model": model}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=512, help="waves generated, half train, half test (512)")
    parser.add_argument("--frames", type=int, default=40, help="frames per sequence (default 40; the seed uses 200)")
    parser.add_argument("--points", type=int, default=32, help="grid positions per frame (default 32)")
    parser.add_argument("--hidden", type=int, default=64, help="LSTM hidden size (default 64)")
    parser.add_argument("--epochs", type=int, default=60, help="default 60")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    parser.add_argument("--seed", type=int, default=0, help="gn.manual_seed and the wave parameters (default 0)")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    for name in ("epochs", "batch_size", "hidden", "points"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.sequences < 2 or args.frames < 2:
        parser.error("--sequences and --frames must be at least 2 (half the sequences test; a frame predicts the next)")
    use_device(parser, args.device)
    results = train(args.sequences, args.frames, args.points, args.hidden, args.epochs, args.batch_size, args.lr,
                    args.seed)
    print(f"test MSE {results['test_mse']:.5f}, persistence baseline (frame t+1 = frame t) "
          f"{results['persistence_mse']:.5f}, ratio {results['test_mse'] / results['persistence_mse']:.3f}")
    return results


if __name__ == "__main__":
    main()
