"""``gpunet evaluate`` reports a task's own figures (``Task.summary``) beside the split's losses, as summary.json
has them: an ODE run's max_abs_error (against g0 exp(-gamma x), recomputed here in NumPy from the checkpoint's
weights), an autoencoder's test_baseline_mse (the training mean image's MSE, recomputed from the data) and a
perceptron's convergence (the rule stops after epoch 2 on AND)."""
import json
from pathlib import Path

import numpy as np
import pytest

from gpunet.cli import main
from gpunet.data import load_dataset
from gpunet.train.checkpoint import load_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _train_then_evaluate(capsys, tmp_path, name, overrides, *evaluate_args):
    out = tmp_path / name
    assert main(["train", str(CONFIGS / f"{name}.yaml"), "device=cpu", *overrides, "--out", str(out),
                 "--no-progress"]) == 0
    capsys.readouterr()
    checkpoint = out / "checkpoints" / "last.npz"
    assert main(["evaluate", str(CONFIGS / f"{name}.yaml"), "--checkpoint", str(checkpoint), *evaluate_args]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return result, json.loads((out / "summary.json").read_text()), load_checkpoint(checkpoint)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def test_evaluate_reports_an_ode_runs_max_abs_error(capsys, tmp_path):
    result, summary, checkpoint = _train_then_evaluate(
        capsys, tmp_path, "ode_decay", ["trainer.epochs=2", "scheduler.T_max=2", "data.n_points=100"])
    weights = {k: v.astype(np.float64) for k, v in checkpoint.model.items()}
    (w1, b1), (w2, b2) = [(weights[k], weights[k.replace("weight", "bias")])
                          for k in sorted(k for k in weights if k.endswith("weight"))]
    x = np.linspace(0.0, 1.0, 1001)[:, None]
    trial = 10.0 + x * (_sigmoid(x @ w1.T + b1) @ w2.T + b2)  # g0 + x N(x), N: 1-20-1 sigmoid
    expected = np.max(np.abs(trial[:, 0] - 10.0 * np.exp(-2.0 * x[:, 0])))
    assert result["max_abs_error"] == summary["max_abs_error"]
    assert result["max_abs_error"] == pytest.approx(expected, rel=1e-3)
    assert result["test_loss"] == summary["test_loss"]


def test_evaluate_reports_an_autoencoders_baseline_next_to_its_mse(capsys, tmp_path):
    result, summary, _ = _train_then_evaluate(capsys, tmp_path, "autoencoder_digits", ["trainer.epochs=2"])
    data = load_dataset("digits", flatten=True, normalize="scale", test_split=0.2, validation_split=0.1, seed=0)
    baseline = np.mean((data.test.x.astype(np.float64) - data.train.x.astype(np.float64).mean(axis=0)) ** 2)
    assert result["test_baseline_mse"] == pytest.approx(baseline, rel=1e-6) == summary["test_baseline_mse"]
    assert result["test_mse"] == summary["test_mse"] < baseline * 2


def test_evaluate_reports_whether_the_perceptron_rule_converged(capsys, tmp_path):
    result, summary, _ = _train_then_evaluate(capsys, tmp_path, "perceptron_and", [], "--split", "train")
    assert (result["converged"], result["converged_epoch"]) == (True, 2) == \
        (summary["converged"], summary["converged_epoch"])
    assert result["train_loss"] == summary["train_loss"]
