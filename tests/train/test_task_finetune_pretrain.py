"""A finetune run that pre-trains itself (``task.pretrain``), through ``gpunet train`` on digits (CPU, shortened):
the pretraining data is the whole dataset's split restricted to its classes (no test image of the run is trained
on), ``checkpoints/pretrained.npz`` holds the network the fine-tuning started from and the pretraining's test
accuracy as a NumPy forward pass of it computes, and a run stopped by SIGTERM in either phase and continued with
--resume equals the uninterrupted run file for file (also when the interruption damaged pretrained.npz)."""
import itertools
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from gpunet.cli import main
from gpunet.config import ConfigError, load_config
from gpunet.data import load_dataset
from gpunet.runner.pretrain import pretraining_config
from gpunet.runner.run import Run, run
from gpunet.train.checkpoint import load_checkpoint
from gpunet.train.trainer import Trainer

from runcompare import assert_same_run

CONFIG = str(Path(__file__).resolve().parents[2] / "configs" / "transfer_digits.yaml")
# pretraining: 4 classes, 575 training images in batches of 32 -> 18 steps per epoch, 2 epochs (36 steps);
# fine-tuning: 250 images in batches of 25 -> 10 steps per epoch, 2 epochs
OVERRIDES = ["device=cpu", "trainer.epochs=2", "task.pretrain.epochs=2", "task.pretrain.classes=[0,1,2,3]",
             'task.freeze=["0"]']
PRETRAIN_STEPS = 36


def _train(out, *extra):
    return main(["train", CONFIG, *OVERRIDES, "--out", str(out), "--no-progress", *extra])


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    assert _train(out) == 0
    return out


def _sigterm_at(monkeypatch, call):
    """SIGTERM during the ``call``-th training step of this process (counted over both phases' Trainers)."""
    step, calls = Trainer._train_step, itertools.count(1)

    def signalled(self, x, y):
        if next(calls) == call:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, x, y)
    monkeypatch.setattr(Trainer, "_train_step", signalled)


def _forward(weights, x):
    """The 64-64-32-k ReLU network of ``weights`` (a state_dict) in float64 NumPy."""
    h = x.astype(np.float64)
    for layer in ("0", "2", "4"):
        h = h @ weights[f"{layer}.weight"].T.astype(np.float64) + weights[f"{layer}.bias"]
        h = np.maximum(h, 0) if layer != "4" else h
    return h


def test_one_run_pretrains_then_fine_tunes_from_the_pretrained_body(straight):
    summary = json.loads((straight / "summary.json").read_text())
    pretrained = load_checkpoint(straight / "checkpoints" / "pretrained.npz")
    assert pretrained.model["4.weight"].shape == (4, 32)  # the pretraining's own head: 4 classes
    assert pretrained.epoch == 2 and len(pretrained.history) == 2
    records = [json.loads(line) for line in (straight / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2] and records[1]["train_accuracy"] > 0.5
    old = load_dataset("digits", classes=[0, 1, 2, 3], flatten=True, normalize="scale", test_split=0.2,
                       validation_split=0.0, seed=0)
    assert summary["pretrain_train_size"] == len(old.train) == 575
    predicted = _forward(pretrained.model, old.test.x).argmax(axis=1)
    assert summary["pretrain_test_accuracy"] == pytest.approx(np.mean(predicted == old.test.y), abs=1e-12)
    assert summary["pretrain_test_accuracy"] > 0.6  # four classes: chance is 0.25
    final = load_checkpoint(straight / "checkpoints" / "last.npz").model
    np.testing.assert_array_equal(final["0.weight"], pretrained.model["0.weight"])  # frozen: as pretrained
    assert not np.array_equal(final["2.weight"], pretrained.model["2.weight"])
    assert 0.3 < summary["test_accuracy"] <= 1 and 0.3 < summary["test_scratch_accuracy"] <= 1
    rebuilt, _, _ = Run.from_checkpoint(str(straight / "checkpoints" / "last.npz"), announce_device=False)
    evaluation = rebuilt.evaluate("test")  # no pretraining: the checkpoint has the weights
    assert (evaluation["test_accuracy"], evaluation["test_scratch_accuracy"]) == \
        (summary["test_accuracy"], summary["test_scratch_accuracy"])


def test_the_pretraining_data_is_the_whole_datasets_split_of_its_classes():
    """Splits are drawn over all 1797 images before classes are picked: the pretraining trains on no image that
    the fine-tuning (or any class choice) tests on."""
    config = load_config(CONFIG, ["task.pretrain.classes=[0,1,2,3,4,5,6,7,8,9]"])  # overlapping the run's 5-9
    derived = pretraining_config(config)
    assert derived["data"]["classes"] == list(range(10)) and derived["data"]["train_per_class"] is None
    assert derived["optimizer"]["lr"] == 0.001 and derived["trainer"]["batch_size"] == 32
    from gpunet.config import build_dataset
    pre, fine = build_dataset(derived), build_dataset(config)
    whole = load_dataset("digits", flatten=True, normalize="scale", test_split=0.2, validation_split=0.0, seed=0)
    np.testing.assert_array_equal(pre.train.x, whole.train.x)
    np.testing.assert_array_equal(pre.test.x, whole.test.x)
    later = whole.test.y >= 5
    np.testing.assert_array_equal(fine.test.x, whole.test.x[later])  # the run's test images: pretraining's test


def test_sigterm_during_the_pretraining_then_resume_equals_the_uninterrupted_run(straight, tmp_path, monkeypatch,
                                                                               capsys):
    out = tmp_path / "run"
    _sigterm_at(monkeypatch, 25)  # step 7 of 18 of the pretraining's epoch 2
    assert _train(out) == 143
    assert not (out / "checkpoints" / "pretrained.npz").exists()
    assert load_checkpoint(out / "pretrain" / "checkpoints" / "last.npz").step == 25
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"saved {out}/pretrain/checkpoints/last.npz; continue with: gpunet train" in last and "--resume" in last
    monkeypatch.undo()
    assert _train(out, "--resume") == 0
    assert "resuming the pretraining from" in capsys.readouterr().err
    assert_same_run(out, straight)


def test_sigterm_during_the_fine_tuning_then_resume_equals_the_uninterrupted_run(straight, tmp_path, monkeypatch,
                                                                               capsys):
    out = tmp_path / "run"
    _sigterm_at(monkeypatch, PRETRAIN_STEPS + 13)  # step 3 of 10 of the fine-tuning's epoch 2
    assert _train(out) == 143
    assert load_checkpoint(out / "checkpoints" / "last.npz").step == 13
    pretrained = (out / "checkpoints" / "pretrained.npz").read_bytes()
    monkeypatch.undo()
    assert _train(out, "--resume") == 0
    assert "resuming the pretraining" not in capsys.readouterr().err
    assert (out / "checkpoints" / "pretrained.npz").read_bytes() == pretrained  # not trained again
    assert_same_run(out, straight)


def test_a_damaged_pretrained_npz_is_written_again_on_resume(straight, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _sigterm_at(monkeypatch, PRETRAIN_STEPS + 3)
    assert _train(out) == 143
    path = out / "checkpoints" / "pretrained.npz"
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    monkeypatch.undo()
    assert _train(out, "--resume") == 0
    assert "writing it again from the pretraining's checkpoints" in capsys.readouterr().err
    assert_same_run(out, straight)


@pytest.fixture(scope="module")
def short_on_cpu(tmp_path_factory):
    out = tmp_path_factory.mktemp("short") / "run"
    assert _train(out, "trainer.epochs=1", "task.pretrain.epochs=1") == 0
    return out


def test_every_backend_pretrains_and_fine_tunes_as_the_cpu_does(device, short_on_cpu, tmp_path):
    """One epoch of each phase on ``device`` (the CPU: a second run, bitwise the same): the pretrained network, the
    fine-tuned one and the baseline agree with the CPU's."""
    out = tmp_path / "run"
    assert _train(out, "trainer.epochs=1", "task.pretrain.epochs=1", f"device={device}") == 0
    for name in ("pretrained.npz", "last.npz"):
        mine, cpu = (load_checkpoint(run_dir / "checkpoints" / name) for run_dir in (out, short_on_cpu))
        for key, value in cpu.model.items():
            np.testing.assert_allclose(mine.model[key], value, rtol=1e-4, atol=1e-5, err_msg=f"{name} {key}")
        if name == "last.npz":
            for key, value in cpu.extra["task"]["state"]["scratch"].items():
                np.testing.assert_allclose(mine.extra["task"]["state"]["scratch"][key], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("override, message", [
    ("task.weights=w.npz", r"task: .*give either weights \(a file\) or pretrain"),
    ("task.pretrain={classes: [0, 1]}", r"task: .*pretrain: missing epochs; its keys are classes, epochs, lr, "
                                        r"batch_size"),
    ("task.pretrain={classes: [0], epochs: 2, rate: 1}", r"pretrain: unknown key\(s\) rate"),
    ("task.pretrain.classes=[1, 1]", r"pretrain: classes must be a list of distinct labels"),
    ("task.pretrain.epochs=0", r"pretrain: epochs must be an integer >= 1, got 0"),
    ("task.pretrain.lr=-1", r"pretrain: lr must be a number > 0 or null, got -1"),
])
def test_bad_pretrain_settings_are_config_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(CONFIG, [override])


def test_classes_the_dataset_lacks_are_named_before_the_run_directory_is_written(tmp_path):
    config = load_config(CONFIG, ["device=cpu", "task.pretrain.classes=[0, 12]"])
    with pytest.raises(ConfigError, match=r"task.pretrain.classes: the pretraining data: dataset 'digits': classes "
                                          r"\[12\] do not exist \(its labels are 0..9\)"):
        run(config, str(tmp_path / "run"), progress=False)
    assert not (tmp_path / "run").exists()
