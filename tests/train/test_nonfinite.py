"""A NaN or infinite training loss: training stops by default (naming the epoch and step, keeping the last good
checkpoint, exit status 1 from the command), or goes on with ``on_nonfinite="continue"``; either way every JSON
file of the run stays strict JSON (non-finite values as null, named under ``nonfinite``)."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

import gpunet
from gpunet.cli import main
from gpunet.train import ModelCheckpoint, Trainer
from gpunet.train.checkpoint import load_checkpoint
from gpunet.train.strict_json import dumps, finite

from trainhelpers import Recorder, make_trainer

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "configs" / "mlp_digits.yaml"
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                                        "ignore:invalid value:RuntimeWarning")


def _strict(text: str):
    """Parse ``text`` as standard JSON: NaN, Infinity and -Infinity are refused."""
    def refuse(constant):
        raise ValueError(f"not standard JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


class Poison(gpunet.nn.Module):
    """Multiplies its input by NaN during global step ``step`` and after it (training mode only)."""

    def __init__(self, step):
        super().__init__()
        self.step, self.calls = step, 0

    def forward(self, x):
        if self.training:
            self.calls += 1
        return x * float("nan") if self.calls >= self.step else x


def test_a_nan_loss_stops_training_by_default_and_the_last_good_checkpoint_stays(xor, tmp_path, capsys):
    recorder = Recorder()
    trainer, train, val = make_trainer(xor, [2, 8, 2], batch_size=16,
                                       callbacks=[ModelCheckpoint(tmp_path / "ckpt", monitor="val_loss"), recorder])
    trainer.model.add_module("poison", Poison(step=2 * 9 + 4))  # 9 steps per epoch: step 4 of epoch 3
    trainer.fit(train, val, epochs=6)
    assert trainer.stopped_on_error and len(trainer.history) == 2 and trainer.global_step == 22
    message = ("non-finite loss: the training loss is nan at epoch 3, step 4 of the epoch (global step 22); "
               "training stopped. Lower the learning rate (optimizer.lr) or clip the gradients (trainer.grad_clip)")
    assert trainer.stop_reason.startswith(message) and message in capsys.readouterr().err
    last = load_checkpoint(tmp_path / "ckpt" / "last.npz")
    assert last.epoch == 2 and last.extra["partial_epoch"] is None
    for key, value in recorder.weights[2].items():
        assert np.all(np.isfinite(value))
        np.testing.assert_array_equal(last.model[key], value)


def test_on_nonfinite_continue_trains_every_epoch(xor):
    gpunet.manual_seed(0)
    trainer, train, val = make_trainer(xor, [2, 8, 2], batch_size=16)
    trainer.on_nonfinite = "continue"
    trainer.model.add_module("poison", Poison(step=5))
    history = trainer.fit(train, val, epochs=3)
    assert not trainer.stopped_on_error and len(history) == 3
    assert all(math.isnan(loss) for loss in history["train_loss"])


def test_on_nonfinite_accepts_only_stop_or_continue(xor):
    with pytest.raises(ValueError, match="on_nonfinite must be 'stop' or 'continue', got 'ignore'"):
        Trainer(gpunet.nn.Linear(2, 2), gpunet.nn.MSELoss(), None, on_nonfinite="ignore")


def test_the_issues_reproduction_exits_1_naming_epoch_step_and_the_remedy(tmp_path, capsys):
    status = main(["train", str(DIGITS), "optimizer.lr=1e30", "--out", str(tmp_path / "R"), "--no-progress"])
    err = capsys.readouterr().err
    assert status == 1, err
    assert "non-finite loss: the training loss is nan at epoch 1, step 3 of the epoch" in err
    assert "Lower the learning rate (optimizer.lr) or clip the gradients (trainer.grad_clip)" in err
    assert err.strip().splitlines()[-1] == ("gpunet train: error: training did not finish (non-finite loss stopped "
                                            "it at epoch 1); no checkpoint had been written yet")
    assert not (tmp_path / "R" / "summary.json").exists()


def test_continuing_on_nan_writes_strict_json_with_the_nonfinite_keys_named(tmp_path, capsys):
    out = tmp_path / "R"
    status = main(["train", str(DIGITS), "optimizer.lr=1e30", "trainer.on_nonfinite=continue", "trainer.epochs=2",
                   "--out", str(out), "--no-progress"])
    stdout, err = capsys.readouterr()
    assert status == 0, err
    records = [_strict(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert record["train_loss"] is None and record["val_loss"] is None
        assert record["nonfinite"] == ["train_loss", "val_loss"]
        assert 0 <= record["train_accuracy"] <= 1
    summary = _strict((out / "summary.json").read_text())
    assert summary["nonfinite"] == ["train_loss", "val_loss", "test_loss"] and summary["test_loss"] is None
    assert _strict(stdout.strip().splitlines()[-1])["nonfinite"] == ["train_loss", "val_loss", "test_loss"]


def test_finite_replaces_every_nonfinite_number_and_names_it():
    record = {"epoch": 3, "loss": float("nan"), "acc": 0.5, "f32": np.float32("inf"), "ok": np.float64(1.5),
              "nested": {"a": -math.inf, "b": [1.0, float("nan"), 2]}, "name": "x", "none": None}
    cleaned = finite(record)
    assert cleaned == {"epoch": 3, "loss": None, "acc": 0.5, "f32": None, "ok": 1.5,
                       "nested": {"a": None, "b": [1.0, None, 2]}, "name": "x", "none": None,
                       "nonfinite": ["loss", "f32", "nested.a", "nested.b[1]"]}
    assert math.isnan(record["loss"])  # the caller's record is left as it was
    assert _strict(dumps(record)) == cleaned
    assert finite({"a": 1.0, "nonfinite": ["b"]}) == {"a": 1.0, "nonfinite": ["b"]}
    assert finite({"a": math.nan, "nonfinite": ["b"]})["nonfinite"] == ["b", "a"]
    assert dumps({"a": 1.0}) == '{"a": 1.0}'
