"""Augmentation in training: exact resume (mid-epoch and through the command), training batches only, the sample
grid in the run directory, and training metrics with MixUp's class-probability labels."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import gpunet
from gpunet import nn, optim
from gpunet.cli import main
from gpunet.data import DataLoader, load_dataset, transforms as T
from gpunet.train import Trainer
from gpunet.train.plots import AUGMENTED_SAMPLES

from runcompare import assert_same_run
from trainhelpers import StopAfter, assert_same_weights, without_time

CNN = Path(__file__).resolve().parents[2] / "configs" / "cnn_digits.yaml"
AUGMENT = ("data.augment=[{type: RandomAffine, degrees: 10, translate: [0.1, 0.1]}, {type: RandomErasing, p: 0.3}, "
           "{type: GaussianNoise, sigma: 0.05}, {type: MixUp, alpha: 0.4}]")


@pytest.fixture(scope="module")
def images():
    return load_dataset("digits", normalize="scale", seed=0)  # (1, 8, 8) images


def augment():
    return T.Compose([T.RandomCrop(8, padding=1), T.RandomAffine(10, interpolation="bilinear"),
                      T.CutMix(1.0, num_classes=10)])


def train(data, epochs, callbacks=(), resume=None):
    gpunet.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                      callbacks=list(callbacks))
    loader = DataLoader(data.train, 64, shuffle=True, seed=0, transform=augment())
    trainer.fit(loader, DataLoader(data.validation, 256), epochs, resume=resume)
    return trainer


def test_resume_from_the_middle_of_an_epoch_with_augmentation_is_exact(images, tmp_path):
    straight = train(images, 3)
    path = str(tmp_path / "mid.npz")
    with pytest.raises(KeyboardInterrupt):
        train(images, 3, [StopAfter(path, epoch=2, step=9)])
    resumed = train(images, 3, [StopAfter(path, epoch=99, step=0)], resume=path)
    assert without_time(resumed.history) == without_time(straight.history)
    assert_same_weights(resumed.model, straight.model)
    plain = Trainer(straight.model, nn.CrossEntropyLoss(), None)  # augmentation changed the training
    gpunet.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10))
    unaugmented = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    unaugmented.fit(DataLoader(images.train, 64, shuffle=True, seed=0), epochs=1)
    assert unaugmented.history["train_loss"][0] != straight.history["train_loss"][0]
    assert plain.evaluate(DataLoader(images.validation, 256))["loss"] == pytest.approx(straight.history["val_loss"][-1])


def gpunet_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out, err


def test_a_resumed_augmented_run_equals_an_uninterrupted_one(tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    gpunet_cli(capsys, "train", CNN, "device=cpu", AUGMENT, "trainer.epochs=2", "--out", straight, "--no-progress")
    gpunet_cli(capsys, "train", CNN, "device=cpu", AUGMENT, "trainer.epochs=1", "--out", split, "--no-progress")
    grid = split / AUGMENTED_SAMPLES
    written = grid.stat().st_mtime_ns
    gpunet_cli(capsys, "train", CNN, "trainer.epochs=2", "--out", split, "--resume", "--no-progress")
    assert_same_run(split, straight)  # every file: metrics, checkpoints, summary, config (times aside)
    assert grid.stat().st_mtime_ns == written  # the resumed run keeps the grid it wrote at its start
    assert (split / "config.yaml").read_text().count("MixUp") == 1


def test_only_training_batches_are_augmented_and_the_grid_shows_the_first(tmp_path, capsys, monkeypatch):
    calls = []
    forward = T.Compose.forward

    def spy(self, x, y, generator):
        calls.append(len(x))
        return forward(self, x, y, generator)
    monkeypatch.setattr(T.Compose, "forward", spy)
    run_dir = tmp_path / "r"
    out, _ = gpunet_cli(capsys, "train", CNN, "device=cpu", AUGMENT, "trainer.epochs=1", "--out", run_dir,
                        "--no-progress")
    summary = json.loads(out.strip().splitlines()[-1])
    data = load_dataset("digits", normalize="scale", test_split=0.2, seed=0)
    batches = -(-len(data.train) // 100)  # batch_size 100 in cnn_digits.yaml
    # the grid (the first batch once more), then every training batch; never validation or test data
    assert calls == [100] + [100] * (batches - 1) + [len(data.train) % 100]
    assert 0 <= summary["train_accuracy"] <= 1 and "test_accuracy" in summary
    image = pytest.importorskip("matplotlib.image").imread(run_dir / AUGMENTED_SAMPLES)
    assert image.ndim == 3 and image.shape[0] > 200


def test_the_grid_is_only_written_with_augmentation_and_matplotlib(tmp_path, capsys, monkeypatch):
    gpunet_cli(capsys, "train", CNN, "device=cpu", "trainer.epochs=1", "--out", tmp_path / "plain", "--no-progress")
    assert not (tmp_path / "plain" / AUGMENTED_SAMPLES).exists()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    _, err = gpunet_cli(capsys, "train", CNN, "device=cpu", AUGMENT, "trainer.epochs=1", "--out", tmp_path / "r",
                        "--no-progress")
    assert "gpunet: plots skipped: matplotlib is not installed (pip install matplotlib)" in err
    assert not list((tmp_path / "r").glob("*.png"))


def test_training_metrics_count_class_probability_labels_as_their_likeliest_class():
    outputs = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0]], np.float32)
    soft = np.array([[0.7, 0.3, 0.0], [0.6, 0.4, 0.0], [0.0, 0.1, 0.9]], np.float32)
    model = nn.Linear(3, 3)
    model.weight.data[...] = np.eye(3, dtype=np.float32)  # the model returns its input
    model.bias.data[...] = 0
    trainer = Trainer(model, nn.CrossEntropyLoss(), None, metrics=("accuracy",))
    results = trainer.evaluate(DataLoader((outputs, soft), 3))
    assert results["accuracy"] == pytest.approx(2 / 3)  # rows 0 and 2 right, row 1 (class 0) wrong
    expected = -(soft * (outputs - np.log(np.exp(outputs).sum(axis=1, keepdims=True)))).sum(axis=1).mean()
    assert results["loss"] == pytest.approx(expected, rel=1e-6)  # cross-entropy with probability targets
