"""``gpunet train`` run as a subprocess and stopped by SIGTERM or SIGINT in the middle of an epoch: exit 143 / 130, one
line with the command that continues, and that command ends with bitwise the files of a run never interrupted."""
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gpunet.cli import main
from gpunet.train.checkpoint import load_checkpoint

from test_cli import XOR

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RUNNER = HERE / "signal_runner.py"

# test_cli's xor run (144 training samples in batches of 16: 9 steps per epoch) with a progress line every step
XOR = XOR.replace("trainer: {epochs: 4, batch_size: 16}", "trainer: {epochs: 4, batch_size: 16, log_every: 1}") + \
    "  - {type: progress, style: lines}\n"
assert "log_every: 1" in XOR


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    path = tmp_path_factory.mktemp("config") / "xor.yaml"
    path.write_text(XOR)
    return str(path)


@pytest.fixture(scope="module")
def straight(config, tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    assert main(["train", config, "--out", str(out)]) == 0
    return out


def _env(**variables):
    return {**os.environ, "PYTHONPATH": str(ROOT), **variables}


def _continue(stderr: str, cwd) -> subprocess.CompletedProcess:
    """Run the command named on the last line of ``stderr`` (with this Python)."""
    line = stderr.strip().splitlines()[-1]
    command = shlex.split(line.split("; continue with: ")[1])
    assert command[:2] == ["gpunet", "train"] and command[-1] == "--resume"
    done = subprocess.run([sys.executable, "-m", "gpunet.cli", *command[1:]], capture_output=True, text=True,
                          env=_env(), cwd=cwd, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def _records(run):
    return [{k: v for k, v in json.loads(line).items() if k != "time"}
            for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def _assert_same_files(run, straight):
    assert _records(run) == _records(straight)
    for name in ("last.npz", "best.npz"):
        ours, theirs = load_checkpoint(Path(run) / "checkpoints" / name), load_checkpoint(Path(straight) /
                                                                                           "checkpoints" / name)
        assert (ours.epoch, ours.step) == (theirs.epoch, theirs.step)
        assert list(ours.model) == list(theirs.model)
        for key in ours.model:
            np.testing.assert_array_equal(ours.model[key], theirs.model[key], err_msg=f"{name}: {key}")
    summaries = [json.loads((Path(r) / "summary.json").read_text()) for r in (run, straight)]
    for summary in summaries:
        del summary["time_s"], summary["run_dir"]
    assert summaries[0] == summaries[1]
    assert not [p for p in Path(run).rglob("*") if p.name.endswith(".tmp")]


def test_sigterm_mid_epoch_saves_says_how_to_continue_and_continuing_is_exact(config, straight, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, str(RUNNER), "train", config, "--out", str(out)], capture_output=True,
                          text=True, env=_env(SIGNAL_AT="13:TERM"), timeout=300)
    assert done.returncode == 143, done.stderr
    assert "SIGTERM received: finishing the current step, then stopping cleanly" in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"gpunet train: stopped by SIGTERM after step 4 of 9 of epoch 2; saved {out}/checkpoints/last.npz; "
        f"continue with: gpunet train {config} --out {out} --resume")
    saved = load_checkpoint(out / "checkpoints" / "last.npz")
    assert (saved.epoch, saved.step, saved.extra["partial_epoch"]["collector"]["batches"]) == (1, 13, 4)
    _continue(done.stderr, tmp_path)
    _assert_same_files(out, straight)


def test_ctrl_c_from_outside_mid_epoch_without_out_names_the_run_directory(config, straight, tmp_path):
    # no --out: the run goes to runs/xor-<time> (under tmp_path) and the command to continue must name it
    process = subprocess.Popen([sys.executable, str(RUNNER), "train", config], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_env(STEP_SLEEP="0.05"), cwd=tmp_path)
    try:
        for line in process.stdout:
            if line.startswith("epoch 2/4 step 2/9"):
                process.send_signal(signal.SIGINT)
                break
        _, stderr = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("xor-")
    assert stderr.strip().splitlines()[-1].endswith(f"continue with: gpunet train {config} --out runs/{run.name} "
                                                    "--resume")
    assert load_checkpoint(run / "checkpoints" / "last.npz").extra["partial_epoch"] is not None
    _continue(stderr, tmp_path)
    _assert_same_files(run, straight)


def test_a_second_ctrl_c_stops_at_once(config, tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, str(RUNNER), "train", config, "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, env=_env(SIGNAL_AT="13:INT,INT"), timeout=300)
    assert done.returncode == 130, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "gpunet train: stopped at once by a second SIGINT; nothing was saved for this point; continue with: "
        f"gpunet train {config} --out {out} --no-progress --resume")
    assert load_checkpoint(out / "checkpoints" / "last.npz").step == 9  # the end of epoch 1 stays the last
    assert "Traceback" not in done.stderr


def test_a_sweep_stopped_by_sigterm_names_the_command_that_continues_its_run(config, tmp_path, monkeypatch, capsys):
    from gpunet.train.trainer import Trainer

    step = Trainer._train_step

    def signalled(self, x, y):  # SIGTERM during global step 3 of the first run
        if self.global_step + 1 == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, x, y)

    monkeypatch.setattr(Trainer, "_train_step", signalled)
    out = tmp_path / "sweep"
    status = main(["sweep", config, "--grid", "optimizer.lr=0.1,0.2", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 143, err
    run = out / "001_optimizer.lr=0.1"
    assert err.strip().splitlines()[-1] == (
        f"gpunet sweep: stopped by SIGTERM after step 3 of 9 of epoch 1; saved {run}/checkpoints/last.npz; "
        f"continue with: gpunet sweep {config} --grid optimizer.lr=0.1,0.2 --out {out} --resume")
    assert load_checkpoint(run / "checkpoints" / "last.npz").step == 3
    assert not (out / "002_optimizer.lr=0.2").exists()
    monkeypatch.setattr(Trainer, "_train_step", step)
    assert main(["sweep", config, "--grid", "optimizer.lr=0.1,0.2", "--out", str(out), "--resume"]) == 0
    assert (run / "summary.json").exists() and (out / "002_optimizer.lr=0.2" / "summary.json").exists()
