"""configs/cnn_digits.yaml through the gpunet command: its layer table, a short run whose loss falls, and (slow)
the full run's test accuracy."""
import json
from pathlib import Path

import pytest

from gpunet.cli import main

CONFIG = Path(__file__).parents[2] / "configs" / "cnn_digits.yaml"


def gpunet(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_summary_prints_the_layer_table(capsys):
    status, out, err = gpunet(capsys, "summary", CONFIG, "device=cpu")
    assert status == 0, err
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    # name (type)  output shape  params  implementation; shapes and counts worked by hand:
    # conv 1*10*3*3 + 10, fc 160*50 + 50, out 50*10 + 10
    assert [(r[1], " ".join(r[2:-2]), r[-2]) for r in rows] == [
        ("(Conv2d)", "(None, 10, 8, 8)", "100"), ("(ReLU)", "(None, 10, 8, 8)", "0"),
        ("(MaxPool2d)", "(None, 10, 4, 4)", "0"), ("(Flatten)", "(None, 160)", "0"),
        ("(Linear)", "(None, 50)", "8,050"), ("(ReLU)", "(None, 50)", "0"), ("(Linear)", "(None, 10)", "510")]
    assert all(r[-1] == "NumPy" for r in rows)
    assert 'input (1, 8, 8)' in out and "Total params: 8,660" in out and "Non-trainable params: 0" in out


def train(capsys, out_dir, *overrides):
    status, stdout, err = gpunet(capsys, "train", CONFIG, "device=cpu", *overrides, "--out", out_dir, "--no-progress")
    assert status == 0, err
    rows = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]
    return json.loads(stdout.strip().splitlines()[-1]), rows


def test_a_short_run_learns(capsys, tmp_path):
    summary, rows = train(capsys, tmp_path / "run", "trainer.epochs=5")
    losses = [r["train_loss"] for r in rows]
    assert len(losses) == 5 and all(a > b for a, b in zip(losses, losses[1:]))
    assert losses[0] < 2.5 and losses[-1] < 0.4 * losses[0]  # starts near ln(10) = 2.30 and falls
    assert summary["test_accuracy"] > 0.6  # chance is 0.1


@pytest.mark.slow
def test_the_full_run_reaches_its_documented_accuracy(capsys, tmp_path):
    summary, rows = train(capsys, tmp_path / "run")
    assert len(rows) == 40
    assert summary["test_accuracy"] >= 0.97
