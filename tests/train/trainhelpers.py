"""Helpers of the training tests: small models and trainers built the same way every time."""
import numpy as np

import gpunet
from gpunet import nn, optim
from gpunet.data import DataLoader
from gpunet.train import Callback, Trainer
from gpunet.train.checkpoint import save_checkpoint


def mlp(sizes, activation=nn.Tanh, dropout=0.0):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def make_trainer(dataset, sizes, seed=0, lr=0.5, callbacks=(), dropout=0.1, metrics=("accuracy",), batch_size=32,
                 scheduler=True, **options):
    """A seeded trainer with dropout (RNG), shuffling (loader position), momentum (optimizer state) and a StepLR
    (scheduler state): everything exact resume must carry; ``options`` go to the Trainer (``device``, ...). Returns
    (trainer, train_loader, val_loader)."""
    gpunet.manual_seed(seed)
    model = mlp(sizes, dropout=dropout)
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    sched = optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5) if scheduler else None
    trainer = Trainer(model, nn.CrossEntropyLoss(), optimizer, sched, callbacks=list(callbacks), metrics=metrics,
                      **options)
    train = DataLoader(dataset.train, batch_size, shuffle=True, seed=seed)
    val = DataLoader(dataset.validation, 128) if dataset.validation is not None else None
    return trainer, train, val


def without_time(epochs):
    return [{k: v for k, v in e.items() if k != "time"} for e in epochs]


def assert_same_on_devices(device, fit, rel=2e-4, abs=1e-5):
    """``fit()`` (a fresh seeded run, returning its history) gives the same epochs' figures on the CPU and on
    ``device``, each made current in turn; returns ``device``'s epochs."""
    import pytest

    histories = []
    for name in ("cpu", device):
        gpunet.set_device(name)
        histories.append(without_time(fit()))
    for a, b in zip(*histories):
        b = {k: v for k, v in b.items() if k != "host_syncs"}  # the waits for a CUDA device (the CPU logs none)
        assert a.keys() == b.keys()
        for key in a:
            assert b[key] == pytest.approx(a[key], rel=rel, abs=abs), key
    return histories[1]


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)


class Scripted(Callback):
    """Overwrites a logged value with a scripted sequence (runs before the other callbacks), to drive monitors."""

    order = -10

    def __init__(self, key, values):
        self.key, self.values = key, list(values)

    def on_epoch_end(self, epoch, logs):
        logs[self.key] = self.values[epoch - 1]


class Recorder(Callback):
    """Keeps a copy of the weights at the end of every epoch."""

    def __init__(self, order=200):
        self.order = order
        self.weights = {}

    def on_epoch_end(self, epoch, logs):
        self.weights[epoch] = {k: v.copy() for k, v in self.trainer.model.state_dict().items()}


class StopAfter(Callback):
    """Saves a checkpoint after batch ``step`` of epoch ``epoch`` and raises to simulate a crash."""

    def __init__(self, path, epoch, step):
        self.path, self.epoch, self.step = path, epoch, step

    def on_batch_end(self, step, logs):
        if self.trainer.epoch + 1 == self.epoch and step == self.step:
            save_checkpoint(self.path, self.trainer.checkpoint())
            raise KeyboardInterrupt
