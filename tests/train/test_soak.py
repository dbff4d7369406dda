"""Soak: kill -9 a training run at every step of its writes and at random moments, resume it each time, and
compare with the uninterrupted run: nothing lost, nothing corrupt, nothing left behind.

Kills at write steps use the fault-injection hook of ``gpunet.train.atomic`` (``GPUNET_KILL_AT_WRITE_STEP=k``:
the process SIGKILLs itself at its k-th write step; 4 steps per atomic write, 2 per append), in runs of
``gpunet.runner.run.run`` in forked children (no interpreter start-up per kill). The default suite kills at each
write step of one epoch's end; the slow tests at every write step of a whole run, at random write steps of chains
of resumes, and real ``gpunet train`` processes (SIGKILL from outside) at random moments.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import gpunet.train.atomic as atomic
import gpunet.runner.run as run_module
from gpunet.config import load_config
from gpunet.train.atomic import KILL_VARIABLE, atomic_write_text
from gpunet.train.checkpoint import CheckpointError, load_checkpoint

from runcompare import STATEFUL, assert_same_run, temporaries

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="kills forked children (POSIX)")


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("soak") / "stateful.yaml"
    path.write_text(STATEFUL)
    return path


@pytest.fixture(scope="module", autouse=True)
def quick_plots():
    """Plots as tiny files written the same (atomic) way: matplotlib's drawing is 2/3 of a run's time here."""
    def plot_history(epochs, directory):
        for name in ("loss", "accuracy"):
            atomic_write_text(os.path.join(directory, f"{name}.png"), f"{name} of {len(epochs)} epochs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "plot_history", plot_history)
        yield


def uninterrupted_run(config, run_dir) -> int:
    """Run ``config`` into ``run_dir`` without a kill; returns the number of write steps it took."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(KILL_VARIABLE, "0")  # count the steps, never kill
        patch.setattr(atomic, "_steps_taken", 0)
        run_module.run(config, str(run_dir), config_name="stateful", progress=False)
        return atomic._steps_taken


def run_in_child(config, run_dir, kill_at=None) -> bool:
    """``run(..., resume=True)`` in a forked child, SIGKILLed at its write step ``kill_at``; whether it was killed."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            if kill_at is not None:
                os.environ[KILL_VARIABLE] = str(kill_at)
            run_module.run(config, str(run_dir), resume=True, config_name="stateful", progress=False)
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True
    assert os.WEXITSTATUS(status) == 0, f"the run failed (kill_at={kill_at})"
    return False


def newest_step(run_dir) -> int:
    """Check that nothing in ``run_dir`` is corrupt (every checkpoint verifies, every metrics record but a torn
    last one parses, config.yaml and summary.json load) and return the newest checkpoint's global step."""
    steps = [-1]
    for path in sorted((Path(run_dir) / "checkpoints").glob("*.npz")):
        steps.append(load_checkpoint(path).step)  # raises CheckpointError if damaged
    if (Path(run_dir) / "config.yaml").exists():
        load_config(str(Path(run_dir) / "config.yaml"))
    if (Path(run_dir) / "summary.json").exists():
        json.loads((Path(run_dir) / "summary.json").read_text())
    if (Path(run_dir) / "metrics.jsonl").exists():
        lines = (Path(run_dir) / "metrics.jsonl").read_text().split("\n")
        for line in lines[:-1]:
            json.loads(line)
    return max(steps)


def kill_then_resume(config, run_dir, kill_at, reference, killed_epoch=None) -> None:
    """Kill a run of ``config`` at write step ``kill_at``, check nothing is corrupt (and that ``last.npz`` holds
    ``killed_epoch`` if given), resume it to the end and compare with the uninterrupted ``reference``."""
    assert run_in_child(config, run_dir, kill_at), f"the run ended before write step {kill_at}"
    newest_step(run_dir)
    if killed_epoch is not None:
        assert load_checkpoint(Path(run_dir) / "checkpoints/last.npz").epoch == killed_epoch
    assert not run_in_child(config, run_dir)
    assert_same_run(run_dir, reference)
    assert temporaries(run_dir) == [], f"temporary files left after a kill at write step {kill_at}"


def test_kill_at_each_step_of_an_epochs_writes(config_path, tmp_path):
    # 3 epochs; epoch 3 sets the best. Its 16 write steps (metrics.jsonl and metrics.csv appends, 2 each; best.npz,
    # epoch-0003.npz, last.npz, 4 each) come before the run's last 12 (2 plots and summary.json, 4 each).
    config = load_config(str(config_path), ["trainer.epochs=3"])
    steps = uninterrupted_run(config, tmp_path / "whole")
    assert load_checkpoint(tmp_path / "whole/checkpoints/best.npz").epoch == 3
    first, last = steps - 27, steps - 12
    for kill_at in range(first, last + 1):  # last.npz is replaced at the last step's start: epoch 3 from then on
        kill_then_resume(config, tmp_path / f"k{kill_at}", kill_at, tmp_path / "whole", 2 if kill_at < last else 3)


@pytest.mark.slow
def test_kill_at_every_write_step_of_a_whole_run(config_path, tmp_path):
    config = load_config(str(config_path))
    steps = uninterrupted_run(config, tmp_path / "whole")
    for kill_at in range(1, steps + 1):
        kill_then_resume(config, tmp_path / f"k{kill_at}", kill_at, tmp_path / "whole")
    print(f"soak: killed at each of the {steps} write steps of a run and resumed: all identical")


@pytest.mark.slow
def test_random_kill_chains(config_path, tmp_path):
    # resume one run again and again, each process killed at a random write step, until one finishes
    config = load_config(str(config_path))
    uninterrupted_run(config, tmp_path / "whole")
    rng, total = random.Random(0), 0
    for chain in range(20):
        run_dir, progress = tmp_path / f"chain{chain}", -1
        while run_in_child(config, run_dir, rng.randint(1, 40)):
            total += 1
            step = newest_step(run_dir)
            assert step >= progress, "a kill lost checkpointed progress"
            progress = step
        assert_same_run(run_dir, tmp_path / "whole")
        assert temporaries(run_dir) == []
    print(f"soak: {total} kills at random write steps in 20 chains of resumes: all identical")


@pytest.mark.slow
def test_sigkill_real_gpunet_train_processes_at_random_moments(tmp_path):
    # kill -9 `gpunet train` (the digits MLP, 30 epochs) 15 times at random moments of its lifetime (start-up and
    # the end of a finished run included), resuming each time; then let it finish
    command = [sys.executable, "-m", "gpunet.cli", "train", str(ROOT / "configs/mlp_digits.yaml"), "device=cpu",
               "trainer.epochs=30", "--no-progress"]
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    subprocess.run(command + ["--out", str(tmp_path / "whole")], env=environment, check=True, capture_output=True)
    lifetime = time.perf_counter() - started
    rng, progress, run_dir, killed_after = random.Random(1), -1, tmp_path / "killed", []
    for attempt in range(40):
        if len(killed_after) == 15:
            break
        process = subprocess.Popen(command + ["--out", str(run_dir), "--resume"], env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        delay = rng.uniform(0.1, 0.8) * lifetime
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed_after.append(round(delay, 1))
        step = newest_step(run_dir)  # nothing corrupt
        assert step >= progress, "a kill lost checkpointed progress"
        progress = step
    finished = subprocess.run(command + ["--out", str(run_dir), "--resume"], env=environment, capture_output=True,
                              text=True)
    assert finished.returncode == 0, finished.stderr
    assert len(killed_after) == 15
    assert_same_run(run_dir, tmp_path / "whole")
    assert temporaries(run_dir) == []
    print(f"soak: {len(killed_after)} SIGKILLs of gpunet train (uninterrupted: {lifetime:.1f} s) after "
          f"{killed_after} s, resumed each time: identical to the uninterrupted run")
