"""Callbacks, each driven through a real Trainer (monitored values scripted where the behaviour depends on them)."""
import csv
import io
import json
import math
import re

import numpy as np
import pytest

import gpunet
from gpunet import nn
from gpunet.train import (CSVLogger, EarlyStopping, JSONLLogger, ModelCheckpoint, ProgressBar, ReduceLROnPlateau,
                          TerminateOnNaN)
from gpunet.train.callbacks import resolve_mode
from gpunet.train.checkpoint import load_checkpoint
from trainhelpers import Recorder, Scripted, make_trainer, without_time


def _fit(dataset, epochs, callbacks, **kwargs):
    trainer, train, val = make_trainer(dataset, [2, 8, 2], callbacks=callbacks, **kwargs)
    trainer.fit(train, val, epochs=epochs)
    return trainer


@pytest.mark.parametrize("monitor, mode", [("val_loss", "min"), ("val_accuracy", "max"), ("train_f1", "max"),
                                           ("val_top5_accuracy", "max"), ("val_mae", "min")])
def test_auto_mode_follows_the_metric(monitor, mode):
    assert resolve_mode(monitor, "auto") == mode


def test_early_stopping_stops_after_patience_epochs_without_improvement(xor):
    # best 0.8 at epoch 2; epochs 3 and 4 do not improve -> with patience 2 training stops after epoch 4
    stopper = EarlyStopping(monitor="val_loss", patience=2)
    trainer = _fit(xor, 10, [Scripted("val_loss", [1.0, 0.8, 0.85, 0.9, 0.1, 0.1]), stopper])
    assert len(trainer.history) == 4
    assert stopper.state_dict()["best"] == 0.8 and stopper.best_epoch == 2 and stopper.stopped_epoch == 4
    assert "val_loss has not improved for 2 epoch(s)" in trainer.stop_reason


def test_early_stopping_min_delta_and_max_mode(xor):
    # improvements must exceed 0.05: 0.52 and 0.54 over 0.5 do not count
    stopper = EarlyStopping(monitor="val_accuracy", patience=2, min_delta=0.05)
    trainer = _fit(xor, 10, [Scripted("val_accuracy", [0.5, 0.52, 0.54, 0.9]), stopper])
    assert len(trainer.history) == 3 and stopper.best == 0.5


def test_early_stopping_restores_the_best_weights(xor):
    trained = Recorder(order=-5)  # sees the weights before EarlyStopping acts
    stopper = EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    trainer = _fit(xor, 10, [Scripted("val_loss", [3.0, 1.0, 2.0, 2.5]), stopper, trained])
    assert len(trainer.history) == 3
    final = trainer.model.state_dict()
    assert not all(np.array_equal(final[k], trained.weights[3][k]) for k in final)
    for key, value in trained.weights[2].items():
        np.testing.assert_array_equal(final[key], value)


def test_model_checkpoint_writes_best_last_and_keeps_n(xor, tmp_path):
    checkpointer = ModelCheckpoint(tmp_path / "ckpt", monitor="val_loss", keep=2)
    recorder = Recorder()
    _fit(xor, 5, [Scripted("val_loss", [3.0, 1.0, 2.0, 0.5, 4.0]), checkpointer, recorder])
    best, last = load_checkpoint(tmp_path / "ckpt" / "best.npz"), load_checkpoint(tmp_path / "ckpt" / "last.npz")
    assert best.epoch == 4 and last.epoch == 5
    for key, value in recorder.weights[4].items():
        np.testing.assert_array_equal(best.model[key], value)
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("epoch-*.npz")) == ["epoch-0004.npz", "epoch-0005.npz"]
    assert checkpointer.state_dict()["best_score"] == 0.5


def test_model_checkpoint_every_n_epochs(xor, tmp_path):
    checkpointer = ModelCheckpoint(tmp_path / "ckpt", monitor=None, save_best=False, keep=5, every_n_epochs=2)
    _fit(xor, 5, [checkpointer])
    assert sorted(p.name for p in (tmp_path / "ckpt").glob("*.npz")) == ["epoch-0002.npz", "epoch-0004.npz",
                                                                        "last.npz"]
    assert load_checkpoint(tmp_path / "ckpt" / "last.npz").epoch == 4


class Poison(gpunet.nn.Module):
    """Passes its input through until ``armed``, then multiplies it by NaN."""

    def __init__(self):
        super().__init__()
        self.armed = False

    def forward(self, x):
        return x * float("nan") if self.armed else x


def test_terminate_on_nan_names_epoch_and_step_and_keeps_the_last_good_checkpoint(xor, tmp_path, capsys):
    poison = Poison()
    recorder = Recorder()

    class Arm(gpunet.train.Callback):
        def on_batch_end(self, step, logs):
            if self.trainer.epoch + 1 == 3 and step == 2:
                poison.armed = True

    checkpointer = ModelCheckpoint(tmp_path / "ckpt", monitor="val_loss")
    trainer, train, val = make_trainer(xor, [2, 8, 2], callbacks=[Arm(), TerminateOnNaN(), checkpointer, recorder])
    trainer.model.add_module("poison", poison)
    trainer.fit(train, val, epochs=6)
    assert trainer.stopped_on_error and len(trainer.history) == 2
    assert "loss is nan at epoch 3, step 3 of the epoch" in trainer.stop_reason
    assert "at epoch 3, step 3" in capsys.readouterr().err
    last = load_checkpoint(tmp_path / "ckpt" / "last.npz")
    assert last.epoch == 2 and last.extra["partial_epoch"] is None
    for key, value in recorder.weights[2].items():
        np.testing.assert_array_equal(last.model[key], value)
        assert np.all(np.isfinite(last.model[key]))


def test_reduce_lr_on_plateau_callback_follows_pytorch_rules(xor):
    # PyTorch: patience 1 -> the lr halves after the 2nd epoch in a row without improvement (epochs 3 and 5)
    reducer = ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1)
    trainer = _fit(xor, 5, [Scripted("val_loss", [1.0] * 5), reducer], scheduler=False, lr=0.4)
    assert trainer.history["lr"] == [0.4, 0.4, 0.4, 0.2, 0.2]
    assert trainer.optimizer.param_groups[0]["lr"] == 0.1


def test_jsonl_and_csv_loggers_write_one_record_per_epoch(xor, tmp_path):
    jsonl, table = JSONLLogger(tmp_path / "m.jsonl"), CSVLogger(tmp_path / "m.csv")
    trainer = _fit(xor, 3, [jsonl, table])
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert records == trainer.history.epochs
    with open(tmp_path / "m.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_loss"]) for r in rows] == trainer.history["val_loss"]  # floats written exactly (repr)
    assert list(rows[0]) == list(trainer.history.epochs[0])


def test_loggers_on_resume_drop_records_after_the_checkpoint(xor, tmp_path):
    path = tmp_path / "m.jsonl"
    straight = _fit(xor, 4, [JSONLLogger(tmp_path / "straight.jsonl")])
    first = _fit(xor, 3, [JSONLLogger(path), ModelCheckpoint(tmp_path / "ckpt", keep=5)])
    assert len(first.history) == 3
    trainer, train, val = make_trainer(xor, [2, 8, 2], callbacks=[JSONLLogger(path), ModelCheckpoint(tmp_path / "c2")])
    trainer.fit(train, val, epochs=4, resume=str(tmp_path / "ckpt" / "epoch-0002.npz"))  # as if epoch 3 were lost
    records = [json.loads(line) for line in path.read_text().splitlines()]
    expected = [json.loads(line) for line in (tmp_path / "straight.jsonl").read_text().splitlines()]
    assert without_time(records) == without_time(expected)


def test_progress_prints_one_plain_line_per_epoch_when_not_a_terminal(xor):
    stream = io.StringIO()
    _fit(xor, 3, [ProgressBar(stream=stream)])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and all(line.startswith(f"epoch {i + 1}/3 train_loss=") for i, line in enumerate(lines))
    assert "\r" not in stream.getvalue()
    assert all(re.search(r" \(\d+ ms\)$| \(\d+\.\d s\)$", line) for line in lines)  # fast epochs in ms


def test_progress_lines_every_n_steps(xor):
    stream = io.StringIO()
    _fit(xor, 1, [ProgressBar(style="lines", log_every=2, stream=stream)], batch_size=32)  # 5 batches
    lines = stream.getvalue().splitlines()
    assert [line.split(" loss")[0] for line in lines[:2]] == ["epoch 1/1 step 2/5", "epoch 1/1 step 4/5"]
    assert len(lines) == 3


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_a_live_bar_on_a_terminal(xor):
    stream = Terminal()
    _fit(xor, 2, [ProgressBar(stream=stream)], batch_size=32)
    text = stream.getvalue()
    assert text.count("\r") >= 10 and "[" + "=" * 30 + "] 5/5" in text
    assert text.count("\n") == 2


def test_callback_state_errors_are_clear(xor):
    with pytest.raises(ValueError, match="monitors 'val_f1', which is not logged"):
        _fit(xor, 1, [EarlyStopping(monitor="val_f1")])
    with pytest.raises(ValueError, match="patience must be an integer >= 0"):
        EarlyStopping(patience=-1)



def test_early_stopping_never_counts_nan_as_an_improvement(xor):
    stopper = EarlyStopping(monitor="val_loss", patience=1)
    trainer = _fit(xor, 5, [Scripted("val_loss", [1.0, math.nan, 0.5]), stopper])
    assert len(trainer.history) == 2 and stopper.best == 1.0


def test_model_checkpoint_and_early_stopping_state_survive_a_resume_through_the_trainer(xor, tmp_path):
    # the sequence: 2 epochs, the last the best so far, resumed to 5 where every score is worse: best stays 2
    scores = [3.0, 1.0, 2.0, 1.5, 1.2]

    def callbacks(directory):
        return [Scripted("val_loss", scores), EarlyStopping("val_loss", patience=3),
                ModelCheckpoint(directory, monitor="val_loss", keep=1)]
    straight = _fit(xor, 5, callbacks(tmp_path / "straight"))
    _fit(xor, 2, callbacks(tmp_path / "resumed"))
    trainer, train, val = make_trainer(xor, [2, 8, 2], callbacks=callbacks(tmp_path / "resumed"))
    trainer.fit(train, val, epochs=5, resume=str(tmp_path / "resumed" / "last.npz"))
    assert straight.stop_reason == trainer.stop_reason  # early stopping's counter went on from 1, not 0
    assert trainer.stop_reason.startswith("EarlyStopping: val_loss has not improved for 3 epoch(s)")
    for name in ("best.npz", "last.npz"):
        a, b = load_checkpoint(tmp_path / "straight" / name), load_checkpoint(tmp_path / "resumed" / name)
        assert a.epoch == b.epoch and a.extra["callbacks"] == b.extra["callbacks"]
    assert load_checkpoint(tmp_path / "resumed" / "best.npz").epoch == 2
    assert trainer.callbacks[-1].manager.best_epoch == 2
    again, train, val = make_trainer(xor, [2, 8, 2], callbacks=callbacks(tmp_path / "resumed"))
    again.fit(train, val, epochs=8, resume=str(tmp_path / "resumed" / "last.npz"))
    assert again.epoch == 5 and again.stop_reason == straight.stop_reason  # a stopped run stays stopped


def test_loggers_repair_a_torn_last_line_and_refill_lost_records(xor, tmp_path):
    straight = _fit(xor, 4, [JSONLLogger(tmp_path / "s.jsonl"), CSVLogger(tmp_path / "s.csv")])
    _fit(xor, 2, [JSONLLogger(tmp_path / "m.jsonl"), CSVLogger(tmp_path / "m.csv"), ModelCheckpoint(tmp_path / "c")])
    with open(tmp_path / "m.jsonl", "a") as f:
        f.write('{"epoch": 3, "train_loss": 0.2')  # torn
    lines = (tmp_path / "m.csv").read_text().splitlines(keepends=True)
    (tmp_path / "m.csv").write_text(lines[0] + lines[2] + "3,0.5")  # epoch 1 lost, a torn row
    trainer, train, val = make_trainer(xor, [2, 8, 2], callbacks=[JSONLLogger(tmp_path / "m.jsonl"),
                                                                  CSVLogger(tmp_path / "m.csv")])
    trainer.fit(train, val, epochs=4, resume=str(tmp_path / "c" / "last.npz"))
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert without_time(records) == without_time(straight.history.epochs)
    with open(tmp_path / "m.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["val_loss"]) for r in rows] == straight.history["val_loss"]
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]


def test_progress_counts_every_step_and_shows_the_loss_of_the_latest_log_point():
    """As on a CUDA device: the Trainer logs a loss only at its log points (steps 2 and 4 here); the bar moves every
    step and shows the latest logged loss, the lines print it at theirs."""
    class FakeTrainer:
        steps_per_epoch, epochs, epoch = 4, 1, 0

    bar, lines = ProgressBar(stream=Terminal()), ProgressBar(style="lines", log_every=1, stream=io.StringIO())
    for callback in (bar, lines):
        callback.set_trainer(FakeTrainer())
        callback.on_epoch_begin(1)
        for step in range(1, 5):
            callback.on_batch_end(step, {"global_step": step, **({"loss": 0.5 / step} if step % 2 == 0 else {})})
    frames = bar.stream.getvalue().split("\r")[1:]
    assert [re.search(r"\] (\d/4) ", f).group(1) for f in frames] == ["1/4", "2/4", "3/4", "4/4"]
    assert ["loss" in f for f in frames] == [False, True, True, True]
    assert "loss 0.2500" in frames[1] and "loss 0.2500" in frames[2] and "loss 0.1250" in frames[3]
    assert lines.stream.getvalue().splitlines() == ["epoch 1/1 step 1/4", "epoch 1/1 step 2/4 loss=0.25",
                                                    "epoch 1/1 step 3/4 loss=0.25", "epoch 1/1 step 4/4 loss=0.125"]
