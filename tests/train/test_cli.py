"""The gpunet command, run in-process through ``main(argv)`` (and once as a subprocess): run directories, resume,
sweeps, and a clean one-line message with a non-zero status for every user error."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpunet.cli import main
from gpunet.config import load_config
from gpunet.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]

XOR = (Path(__file__).resolve().parents[1] / "fixtures" / "xor_cli.yaml").read_text(encoding="utf-8")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "xor.yaml"
    path.write_text(XOR)
    return str(path)


def gpunet(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def records(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def without_time(rows):
    return [{k: v for k, v in r.items() if k != "time"} for r in rows]


def test_train_writes_the_run_directory(config, tmp_path, capsys):
    out = tmp_path / "run"
    status, stdout, err = gpunet(capsys, "train", config, "--out", out)
    assert status == 0, err
    assert {"config.yaml", "metrics.jsonl", "summary.json", "checkpoints", "loss.png", "accuracy.png"} <= set(
        os.listdir(out))
    assert {"last.npz", "best.npz"} <= set(os.listdir(out / "checkpoints"))
    summary = json.loads((out / "summary.json").read_text())
    assert json.loads(stdout.strip().splitlines()[-1]) == summary  # the last line of stdout is the summary
    assert summary["epochs"] == 4 and summary["test_accuracy"] >= 0.9 and summary["test_loss"] < 0.3
    rows = records(out)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "val_accuracy", "lr", "time"} <= set(rows[0])
    assert load_config(out / "config.yaml") == load_config(config)  # config.yaml is the resolved config
    assert load_checkpoint(out / "checkpoints" / "last.npz").epoch == 4


def test_overrides_change_the_run(config, tmp_path, capsys):
    status, _, err = gpunet(capsys, "train", config, "trainer.epochs=2", "optimizer.lr=0.1", "--out",
                            tmp_path / "r", "--no-progress")
    assert status == 0, err
    resolved = load_config(tmp_path / "r" / "config.yaml")
    assert resolved["trainer"]["epochs"] == 2 and resolved["optimizer"]["lr"] == 0.1
    assert len(records(tmp_path / "r")) == 2


def test_default_run_directory_is_named_after_the_config_and_time(config, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, stdout, _ = gpunet(capsys, "train", config, "trainer.epochs=1", "--no-progress")
    assert status == 0
    (run_dir,) = os.listdir(tmp_path / "runs")
    assert run_dir.startswith("xor-") and len(run_dir) == len("xor-YYYYmmdd-HHMMSS")
    assert json.loads(stdout.splitlines()[-1])["run_dir"] == os.path.join("runs", run_dir)


def test_resume_continues_exactly(config, tmp_path, capsys):
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert gpunet(capsys, "train", config, "--out", straight, "--no-progress")[0] == 0
    assert gpunet(capsys, "train", config, "trainer.epochs=2", "--out", split, "--no-progress")[0] == 0
    # the run's saved config says 2 epochs: the resume asks for the 4 of the uninterrupted run
    status, stdout, err = gpunet(capsys, "train", config, "trainer.epochs=4", "--out", split, "--resume",
                                 "--no-progress")
    assert status == 0, err
    assert without_time(records(split)) == without_time(records(straight))
    a = load_checkpoint(split / "checkpoints" / "last.npz").model
    b = load_checkpoint(straight / "checkpoints" / "last.npz").model
    for key in b:
        np.testing.assert_array_equal(a[key], b[key])
    summary_a, summary_b = (json.loads((d / "summary.json").read_text()) for d in (split, straight))
    assert {k: v for k, v in summary_a.items() if k not in ("time_s", "run_dir")} == \
        {k: v for k, v in summary_b.items() if k not in ("time_s", "run_dir")}


def test_the_issues_resume_sequence_continues_the_run_with_its_saved_config(tmp_path, capsys, monkeypatch):
    # gpunet train configs/mlp_digits.yaml optimizer.lr=0.05 trainer.epochs=30 --out runs/lr005   (interrupted)
    # gpunet train configs/mlp_digits.yaml --out runs/lr005 --resume
    from gpunet.train.callbacks import ModelCheckpoint

    digits, lr005, straight = str(ROOT / "configs" / "mlp_digits.yaml"), tmp_path / "lr005", tmp_path / "straight"
    assert gpunet(capsys, "train", digits, "optimizer.lr=0.05", "trainer.epochs=3", "--out", straight)[0] == 0
    save = ModelCheckpoint.on_epoch_end

    def interrupted_after_epoch_2(self, epoch, logs):  # Ctrl-C once epoch 2's checkpoint is written
        save(self, epoch, logs)
        if epoch == 2:
            raise KeyboardInterrupt
    monkeypatch.setattr(ModelCheckpoint, "on_epoch_end", interrupted_after_epoch_2)
    status, _, err = gpunet(capsys, "train", digits, "optimizer.lr=0.05", "trainer.epochs=3", "--out", lr005)
    assert status == 130 and "interrupted" in err
    monkeypatch.setattr(ModelCheckpoint, "on_epoch_end", save)
    assert load_checkpoint(lr005 / "checkpoints" / "last.npz").epoch == 2

    status, stdout, err = gpunet(capsys, "train", digits, "--out", lr005, "--resume")
    assert status == 0, err
    assert f"resuming {lr005} with its saved config {lr005 / 'config.yaml'} ({digits} is not read)" in err
    assert "differs" not in err
    resolved = load_config(lr005 / "config.yaml")
    assert resolved["optimizer"]["lr"] == 0.05 and resolved["trainer"]["epochs"] == 3
    assert without_time(records(lr005)) == without_time(records(straight))
    summary_a, summary_b = (json.loads((d / "summary.json").read_text()) for d in (lr005, straight))
    assert {k: v for k, v in summary_a.items() if k not in ("time_s", "run_dir")} == \
        {k: v for k, v in summary_b.items() if k not in ("time_s", "run_dir")}
    assert json.loads(stdout.splitlines()[-1])["epochs"] == 3


def test_two_runs_of_one_config_give_identical_metrics(config, tmp_path, capsys):
    for name in ("a", "b"):
        assert gpunet(capsys, "train", config, "trainer.epochs=2", "--out", tmp_path / name, "--no-progress")[0] == 0
    assert without_time(records(tmp_path / "a")) == without_time(records(tmp_path / "b"))


def test_progress_is_plain_lines_when_stdout_is_not_a_terminal(config, tmp_path, capsys):
    _, stdout, _ = gpunet(capsys, "train", config, "--out", tmp_path / "r")
    lines = stdout.splitlines()
    assert [line.split(" ")[:2] for line in lines[:4]] == [["epoch", f"{i}/4"] for i in range(1, 5)]
    assert len(lines) == 5 and "\r" not in stdout


def test_evaluate_reports_a_checkpoint_on_the_test_split(config, tmp_path, capsys):
    gpunet(capsys, "train", config, "--out", tmp_path / "r", "--no-progress")
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    status, stdout, _ = gpunet(capsys, "evaluate", config, "--checkpoint", tmp_path / "r/checkpoints/last.npz")
    assert status == 0
    result = json.loads(stdout.splitlines()[-1])
    assert result["epoch"] == 4 and result["test_accuracy"] == summary["test_accuracy"]
    assert result["test_loss"] == summary["test_loss"]


def test_summary_prints_the_layer_table(config, capsys):
    status, stdout, _ = gpunet(capsys, "summary", config)
    assert status == 0
    assert "0 (Linear)" in stdout and "(None, 16)" in stdout and "Total params: 82" in stdout  # 2*16+16 + 16*2+2


def test_info_reports_versions_and_why_cuda_is_absent(capsys):
    status, stdout, _ = gpunet(capsys, "info")
    assert status == 0
    assert stdout.startswith("gpunet ") and "numpy " in stdout and "backend " in stdout
    assert "cuda " in stdout and ("unavailable: " in stdout or "available (" in stdout)


def test_sweep_runs_every_combination(config, tmp_path, capsys):
    status, stdout, err = gpunet(capsys, "sweep", config, "trainer.epochs=1", "--grid", "optimizer.lr=0.1,0.5",
                                 "--grid", "optimizer.weight_decay=0,1e-3", "--out", tmp_path / "sw")
    assert status == 0, err
    with open(tmp_path / "sw" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["optimizer.lr"], r["optimizer.weight_decay"]) for r in rows] == [
        ("0.1", "0"), ("0.1", "1e-3"), ("0.5", "0"), ("0.5", "1e-3")]
    assert all(0 <= float(r["test_accuracy"]) <= 1 and float(r["epochs"]) == 1 for r in rows)
    assert (tmp_path / "sw" / "train_accuracy.png").exists() and (tmp_path / "sw" / "test_accuracy.png").exists()
    assert json.loads(stdout.splitlines()[-1])["runs"] == 4
    run_config = load_config(tmp_path / "sw" / rows[3]["run"] / "config.yaml")
    assert run_config["optimizer"]["lr"] == 0.5 and run_config["optimizer"]["weight_decay"] == 1e-3


def test_sweep_takes_the_grid_from_the_config(config, tmp_path, capsys):
    path = tmp_path / "with_grid.yaml"
    path.write_text(XOR + "sweep:\n  grid:\n    optimizer.lr: [0.1, 1.0e-2, 0.3]\n")
    status, stdout, err = gpunet(capsys, "sweep", path, "trainer.epochs=1", "--out", tmp_path / "sw")
    assert status == 0, err
    with open(tmp_path / "sw" / "results.csv", newline="") as f:
        assert [float(r["optimizer.lr"]) for r in csv.DictReader(f)] == [0.1, 0.01, 0.3]
    assert not list((tmp_path / "sw").glob("*.png"))  # heatmaps need a two-key grid


def test_without_matplotlib_the_run_hints_and_skips_plots(config, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    status, _, err = gpunet(capsys, "train", config, "trainer.epochs=1", "--out", tmp_path / "r", "--no-progress")
    assert status == 0
    assert "pip install matplotlib" in err and not list((tmp_path / "r").glob("*.png"))


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("argv, message", [
    (["train", "@missing"], "config file not found"),
    (["train", "@syntax"], "invalid YAML"),
    (["train", "@config", "optimzer.lr=0.1"], "did you mean 'optimizer'"),
    (["train", "@config", "optimizer.lr=-1"], "optimizer.lr: out of range"),
    (["train", "@config", "optimizer.lr"], "an override needs the form key=value"),
    (["train", "@config", "data.name=digitz"], "did you mean 'digits'"),
    (["train", "@config", "trainer.epochs=0"], "trainer.epochs: out of range"),
    (["train", "@config", "device=cuda"], "cannot use device"),
    (["train", "@config", "data={name: npz, path: /nonexistent/data.npz}"], "/nonexistent/data.npz"),
    (["train", "@config", "--resume"], "--resume needs --out"),
    (["evaluate", "@config", "--checkpoint", "@truncated"], "the file may be truncated"),
    (["evaluate", "@config", "--checkpoint", "@tmp/none.npz"], "checkpoint not found"),
    (["evaluate", "@config", "--checkpoint", "@other_model"], "does not fit the model of its own config"),
    (["evaluate", "@config", "--checkpoint", "@bare"], "does not fit the model of @config"),
    (["sweep", "@config", "--grid", "optimizer.lr"], "write key=value1,value2"),
    (["sweep", "@config", "--grid", "optimizer.lr=0.1,-2"], "optimizer.lr: out of range"),
    (["sweep", "@config"], "no grid: give --grid"),
    (["summary", "@config", "--input-shape", "a,b"], "--input-shape must be positive integers"),
])
def test_user_errors_print_one_clean_message_and_exit_non_zero(argv, message, config, tmp_path, capsys):
    from gpunet.train.checkpoint import Checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "other.npz", Checkpoint(model={"0.weight": np.zeros((3, 3), np.float32)},
                                                       config=dict(load_config(config))))
    save_checkpoint(tmp_path / "bare.npz", Checkpoint(model={"0.weight": np.zeros((3, 3), np.float32)}))
    good = tmp_path / "good.npz"
    save_checkpoint(good, Checkpoint(model={"w": np.zeros(1000, np.float32)}))
    (tmp_path / "truncated.npz").write_bytes(good.read_bytes()[:200])
    names = {"missing": tmp_path / "nope.yaml", "syntax": _write(tmp_path, "bad.yaml", "seed: [1, 2\n"),
             "config": config, "tmp": tmp_path, "truncated": tmp_path / "truncated.npz",
             "other_model": tmp_path / "other.npz", "bare": tmp_path / "bare.npz"}
    for name, value in names.items():
        argv = [a.replace(f"@{name}", str(value)) for a in argv]
        message = message.replace(f"@{name}", str(value))
    status, stdout, err = gpunet(capsys, *argv)
    assert status != 0
    assert message in err and "Traceback" not in err and stdout == ""
    assert err.startswith("gpunet ")


def test_an_occupied_run_directory_needs_resume(config, tmp_path, capsys):
    assert gpunet(capsys, "train", config, "trainer.epochs=1", "--out", tmp_path / "r", "--no-progress")[0] == 0
    status, _, err = gpunet(capsys, "train", config, "--out", tmp_path / "r")
    assert status == 1 and "already holds a run" in err and "--resume" in err
    status, _, err = gpunet(capsys, "train", config, "optimizer.lr=0.1", "--out", tmp_path / "r", "--resume")
    assert status == 1 and "optimizer.lr: 0.5 -> 0.1" in err and "only trainer.epochs, device" in err
    status, _, err = gpunet(capsys, "train", config, "trainer.epochs=2", "--out", tmp_path / "r", "--resume",
                            "--no-progress")
    assert status == 0, err


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_a_diverging_run_stops_naming_the_epoch_and_step(config, tmp_path, capsys):
    # lr 1e38 makes float32 weights overflow in the first steps (the callback tests cover a later epoch)
    status, _, err = gpunet(capsys, "train", config, "optimizer.lr=1e38", "callbacks=[{type: terminate_on_nan}]",
                            "--out", tmp_path / "d", "--no-progress")
    assert status == 1
    assert "non-finite loss: the training loss is nan at epoch 1, step 3 of the epoch" in err
    assert "no checkpoint had been written yet" in err
    assert not (tmp_path / "d" / "summary.json").exists() and (tmp_path / "d" / "config.yaml").exists()


def test_bad_command_lines_exit_with_status_2(capsys):
    assert main(["train"]) == 2
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "arguments are required: CONFIG" in err and "invalid choice: 'frobnicate'" in err


def test_the_module_runs_as_a_program_and_the_script_too(config, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "gpunet.cli", "train", config, "trainer.epochs=1", "--out",
                           str(tmp_path / "m")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["epochs"] == 1
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), config, "optimizer.lr=oops"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "optimizer.lr: wrong type" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_mlp_digits_config_reaches_96_percent(tmp_path, capsys):
    status, stdout, err = gpunet(capsys, "train", ROOT / "configs" / "mlp_digits.yaml", "--out", tmp_path / "r",
                                 "--no-progress")
    assert status == 0, err
    assert json.loads(stdout.splitlines()[-1])["test_accuracy"] >= 0.96


def test_a_one_sample_batch_under_batchnorm_is_the_batch_size_at_fault(tmp_path, capsys):
    """BatchNorm cannot train on one value per channel; a batch size that leaves a 1-sample last batch is the
    config's to fix (trainer.drop_last or the batch size), so it gets a user error (status 1), not status 3."""
    from gpunet.config import build_dataset

    path = tmp_path / "xor_bn.yaml"
    path.write_text(XOR.replace("- {type: Tanh}", "- {type: BatchNorm1d, num_features: 16}\n    - {type: Tanh}"))
    train_size = build_dataset(load_config(path)).info.train_size
    batch = train_size - 1  # the last batch of every epoch has one sample
    status, _, err = gpunet(capsys, "train", path, f"trainer.batch_size={batch}", "--out", tmp_path / "run")
    assert status == 1, err
    assert "too small for batch normalization" in err and "trainer.drop_last: true" in err
    assert f"{train_size} training samples, whose last batch has 1" in err
    status, _, err = gpunet(capsys, "train", path, f"trainer.batch_size={batch}", "trainer.drop_last=true",
                            "--out", tmp_path / "dropped")
    assert status == 0, err
