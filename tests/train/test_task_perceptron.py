"""The ``perceptron`` task through the Trainer: the rule learns AND and OR and stops after an epoch without a
mistake (the hand-worked weights of tests/models/test_perceptron.py), reports XOR as not converged, handles several
classes with one unit each, and resumes exactly."""
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
from gpunet.data import DataLoader, load_dataset
from gpunet.train import Trainer
from gpunet.train.checkpoint import load_checkpoint
from gpunet.train.tasks import TASKS

from trainhelpers import StopAfter, assert_same_weights, without_time


def make(gate, kind="bipolar", bipolar=True, shuffle=False, lr=1.0, callbacks=(), threshold=0.0):
    data = load_dataset("logic", gate=gate, bipolar=bipolar, test_split=0.0, validation_split=0.0)
    task = TASKS["perceptron"](kind=kind, threshold=threshold)
    model = task.build_model("model", data.info)
    trainer = Trainer(model, None, gn.optim.SGD(model.parameters(), lr=lr), task=task, metrics=(),
                      callbacks=list(callbacks))
    return trainer, DataLoader(data.train, 1, shuffle=shuffle, seed=0), DataLoader(data.train, 4)


def test_bipolar_and_stops_after_the_epoch_that_changed_nothing(device, capsys):
    trainer, train, val = make("and")
    history = trainer.fit(train, val, epochs=50)
    # The table's order: (-1,-1) t=-1: y_in 0 -> y 0, w=(1,1) b=-1; then y_in -1, -1, 1: all right. Epoch 2: none.
    assert history["mistakes"] == [1, 0] and history["train_loss"] == [0.25, 0.0]
    assert history["val_loss"] == [0.0, 0.0]
    np.testing.assert_array_equal(trainer.model.weight.numpy(), [[1, 1]])
    np.testing.assert_array_equal(trainer.model.bias.numpy(), [-1])
    assert trainer.task.summary({}) == {"converged": True, "converged_epoch": 2}
    assert "the perceptron rule converged: epoch 2 changed nothing" in capsys.readouterr().err


def test_binary_and_takes_six_epochs(device):
    trainer, train, val = make("and", kind="binary", bipolar=False)
    history = trainer.fit(train, val, epochs=50)
    assert history["mistakes"] == [1, 3, 3, 2, 1, 0]
    np.testing.assert_array_equal(trainer.model.weight.numpy(), [[2, 1]])
    np.testing.assert_array_equal(trainer.model.bias.numpy(), [-2])


def test_or_with_threshold_and_shuffled_samples_converges():
    trainer, train, val = make("or", shuffle=True, threshold=0.2, lr=0.5)
    history = trainer.fit(train, val, epochs=50)
    assert history["mistakes"][-1] == 0 and len(history) < 50 and history["val_loss"][-1] == 0


def test_xor_reports_that_it_did_not_converge(capsys):
    trainer, train, val = make("xor", kind="binary", bipolar=False)
    history = trainer.fit(train, val, epochs=20)
    assert len(history) == 20 and min(history["mistakes"]) > 0
    assert trainer.task.summary({}) == {"converged": False, "converged_epoch": None}
    err = capsys.readouterr().err
    assert "the perceptron rule did not converge in 20 epochs" in err and "linearly separable" in err


def test_several_classes_get_one_unit_each():
    """Three separable classes on a line: one bipolar unit per class, one-hot targets."""
    from gpunet.data import ArrayDataset

    x = np.array([[-2.0], [-1.5], [0.0], [0.2], [1.5], [2.0]], np.float32)
    y = np.array([0, 0, 1, 1, 2, 2])
    task = TASKS["perceptron"](kind="bipolar")
    info = type("Info", (), {"input_shape": (1,), "num_classes": 3})()
    model = task.build_model("model", info)
    assert model.out_features == 3
    trainer = Trainer(model, None, gn.optim.SGD(model.parameters(), lr=1.0), task=task, metrics=())
    np.testing.assert_array_equal(task._targets([0, 2]), [[1, -1, -1], [-1, -1, 1]])
    trainer.fit(DataLoader(ArrayDataset(x, y), 1), None, epochs=5)
    # a single layer separates class 0 and class 2 from the rest; class 1 (the middle) is not linearly separable
    # from both others by one unit, so the rule keeps failing on it
    outputs = model(x).numpy()
    np.testing.assert_array_equal(outputs[:, 0], [1, 1, -1, -1, -1, -1])
    np.testing.assert_array_equal(outputs[:, 2], [-1, -1, -1, -1, 1, 1])


def test_resume_mid_epoch_is_exact(tmp_path):
    uninterrupted, train, val = make("xor", kind="binary", bipolar=False, shuffle=True)
    uninterrupted.fit(train, val, epochs=4)
    path = str(tmp_path / "mid.npz")
    crashed, train, val = make("xor", kind="binary", bipolar=False, shuffle=True,
                               callbacks=[StopAfter(path, epoch=3, step=2)])
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(train, val, epochs=4)
    resumed, train, val = make("xor", kind="binary", bipolar=False, shuffle=True)
    resumed.fit(train, val, epochs=4, resume=path)
    assert_same_weights(resumed.model, uninterrupted.model)
    assert without_time(resumed.history.epochs) == without_time(uninterrupted.history.epochs)


def test_labels_outside_the_classes_are_named():
    trainer, _, _ = make("and")
    with pytest.raises(ValueError, match=r"perceptron task: labels must be class numbers in \[0, 2\)"):
        trainer.task.train_step(np.zeros((1, 2), np.float32), np.array([3]))


def test_two_ranks_sum_the_rule_over_their_shares_as_one_process_does(tmp_path, capsys):  # ~12 s
    """Batches of 3 of AND's 4 samples: shares of 2 and 1, then 1 and an empty one. The updates add up over the
    ranks (not their mean: a threshold makes the step size matter) and every rank counts every rank's mistakes, so
    the 2-rank run logs and stops as the single process does (before: mistakes halved, converged at epoch 6, not 4)."""
    from gpunet.cli import main

    from test_distributed import mpiexec, records

    args = ("train", Path(__file__).parents[2] / "configs" / "perceptron_and.yaml", "trainer.batch_size=3",
            "task.threshold=1.5", "optimizer.lr=0.5", "--no-progress")
    assert main([*map(str, args), "--out", str(tmp_path / "single")]) == 0
    capsys.readouterr()
    result = mpiexec(tmp_path, 2, *args, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    single = [{k: v for k, v in r.items() if k != "time"} for r in records(tmp_path / "single")]
    assert [r["mistakes"] for r in single] == [4, 3, 3, 0]
    assert [{k: v for k, v in r.items() if k != "time"} for r in records(tmp_path / "run")] == single
    weights = [load_checkpoint(tmp_path / run / "checkpoints" / "last.npz").model for run in ("single", "run")]
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        np.testing.assert_array_equal(weights[1][name], weights[0][name], err_msg=name)
