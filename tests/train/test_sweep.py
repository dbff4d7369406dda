"""Sweeps (gpunet.runner.sweep, ``gpunet sweep``): an occupied --out is refused, --resume continues a sweep into the
same directory (finished cells skipped, an interrupted one resumed from its checkpoint) and gives the results of
a sweep never interrupted."""
import csv
import json
import os

import pytest

from gpunet.runner import sweep as sweep_module
from gpunet.runner.run import run
from gpunet.train.trainer import Trainer
from test_cli import XOR, gpunet

GRID = ["--grid", "optimizer.lr=0.1,0.5", "--grid", "optimizer.weight_decay=0,1e-3"]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "xor.yaml"
    path.write_text(XOR)
    return str(path)


def results(out):
    with open(out / "results.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(f)]


class Killed(Exception):
    """Stands for the process dying in the middle of a cell."""


def test_rerunning_a_sweep_into_its_directory_is_refused_with_the_fix(config, tmp_path, capsys):
    out = tmp_path / "sw"
    assert gpunet(capsys, "sweep", config, "trainer.epochs=1", *GRID, "--out", out)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    status, stdout, err = gpunet(capsys, "sweep", config, "trainer.epochs=1", *GRID, "--out", out)
    assert status == 1 and stdout == ""
    assert f"{out} already holds a sweep; continue it with --resume, or choose another --out" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before  # nothing touched


def test_resume_needs_a_sweep_to_continue(config, tmp_path, capsys):
    status, _, err = gpunet(capsys, "sweep", config, *GRID, "--resume")
    assert status == 2 and "--resume needs --out DIR" in err
    status, _, err = gpunet(capsys, "sweep", config, *GRID, "--out", tmp_path / "none", "--resume")
    assert status == 1 and "nothing to resume in" in err and "run without --resume" in err


def test_resume_skips_finished_cells_resumes_the_interrupted_one_and_matches_an_uninterrupted_sweep(
        config, tmp_path, capsys, monkeypatch):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    assert gpunet(capsys, "sweep", config, *GRID, "--out", straight)[0] == 0

    # die at the start of the third epoch of the second cell (its epoch-2 checkpoint is on disk)
    fit_epoch, started = Trainer._run_epoch, []

    def dying_epoch(self, train_loader, val_loader):
        started.append(self.epoch)
        if len(started) == 4 + 3:  # cell 1 ran 4 epochs; cell 2 dies as its 3rd begins
            raise Killed
        return fit_epoch(self, train_loader, val_loader)

    monkeypatch.setattr(Trainer, "_run_epoch", dying_epoch)
    with pytest.raises(Killed):
        sweep_module.run_sweep(config, [], [("optimizer.lr", ["0.1", "0.5"]),
                                            ("optimizer.weight_decay", ["0", "1e-3"])], str(broken), "xor")
    monkeypatch.setattr(Trainer, "_run_epoch", fit_epoch)
    cells = sorted(p.name for p in broken.iterdir() if p.is_dir())
    assert len(cells) == 2 and (broken / cells[0] / "summary.json").exists()
    assert not (broken / cells[1] / "summary.json").exists() and not (broken / "results.csv").exists()
    finished = (broken / cells[0] / "summary.json").stat().st_mtime_ns

    ran = []
    monkeypatch.setattr(sweep_module, "run", lambda config, directory, **kw: ran.append((directory, kw["resume"]))
                        or run(config, directory, **kw))
    status, stdout, err = gpunet(capsys, "sweep", config, *GRID, "--out", broken, "--resume")
    assert status == 0, err
    assert [(os.path.basename(d), resumed) for d, resumed in ran] == [
        (cells[1], True), ("003_optimizer.lr=0.5_optimizer.weight_decay=0", False),
        ("004_optimizer.lr=0.5_optimizer.weight_decay=1e-3", False)]
    assert "[1/4] optimizer.lr=0.1 optimizer.weight_decay=0: " in stdout and "(done before, skipped)" in stdout
    assert (broken / cells[0] / "summary.json").stat().st_mtime_ns == finished
    assert results(broken) == results(straight)
    assert json.loads(stdout.splitlines()[-1])["runs"] == 4
    assert not [p for p in broken.rglob("*") if p.name.endswith(".tmp")]


def test_resume_with_another_grid_is_refused(config, tmp_path, capsys):
    out = tmp_path / "sw"
    assert gpunet(capsys, "sweep", config, "trainer.epochs=1", "--grid", "optimizer.lr=0.1,0.5", "--out", out)[0] == 0
    status, _, err = gpunet(capsys, "sweep", config, "trainer.epochs=1", "--grid", "optimizer.lr=0.1,0.2", "--out",
                            out, "--resume")
    assert status == 1 and "cannot resume" in err and "another grid" in err and "['0.1', '0.5']" in err


def test_resume_after_the_config_file_changed_is_refused(config, tmp_path, capsys):
    out = tmp_path / "sw"
    assert gpunet(capsys, "sweep", config, "trainer.epochs=1", "--grid", "optimizer.lr=0.1,0.5", "--out", out)[0] == 0
    with open(config, "w") as f:
        f.write(XOR.replace("momentum: 0.9", "momentum: 0.8"))
    status, _, err = gpunet(capsys, "sweep", config, "trainer.epochs=1", "--grid", "optimizer.lr=0.1,0.5", "--out",
                            out, "--resume")
    assert status == 1 and "was trained with another config (optimizer.momentum: 0.9 -> 0.8)" in err
