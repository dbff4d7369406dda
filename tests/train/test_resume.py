"""Resume is exact for everything a run writes, the run directory is repaired against its checkpoint, and a run
directory is never overwritten: ``gpunet.runner.run.run`` in-process against an uninterrupted run."""
import fcntl
import json
import os

import pytest

from gpunet.config import load_config
from gpunet.train.checkpoint import CheckpointError, load_checkpoint
from gpunet.runner.run import RunError, run

from runcompare import STATEFUL, assert_same_run, file_hashes, snapshot, temporaries

EPOCHS = 8  # early stopping ends the run at epoch 6


def config(epochs=EPOCHS):
    return load_config_text(STATEFUL, f"trainer.epochs={epochs}")


def load_config_text(text, *overrides):
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    try:
        return load_config(f.name, overrides)
    finally:
        os.unlink(f.name)


def train(run_dir, epochs=EPOCHS, resume=False):
    return run(config(epochs), str(run_dir), resume=resume, config_name="stateful", progress=False)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    summary = train(run_dir)
    assert summary["epochs"] == 6 and summary["best_epoch"] == 3 and summary["stopped_early"]  # what it exercises
    lrs = [r["lr"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]
    assert lrs[0] > lrs[-1]  # the plateau schedules cut the learning rate
    return run_dir


@pytest.mark.parametrize("stop_after", range(1, 7))
def test_resuming_after_every_epoch_equals_the_uninterrupted_run(uninterrupted, tmp_path, stop_after):
    train(tmp_path / "run", epochs=stop_after)
    train(tmp_path / "run", resume=True)
    assert_same_run(tmp_path / "run", uninterrupted)
    assert load_checkpoint(tmp_path / "run/checkpoints/best.npz").epoch == 3


def test_the_issues_sequence_keeps_the_best_epoch(uninterrupted, tmp_path):
    # epochs=3 (best so far: 3), then resume to the end: best stays 3, not the last epoch trained
    train(tmp_path / "run", epochs=3)
    summary = train(tmp_path / "run", resume=True)
    assert summary["best_epoch"] == 3
    assert json.loads((tmp_path / "run/summary.json").read_text())["best_epoch"] == 3


def test_torn_and_extra_records_are_repaired_against_the_checkpoint(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, epochs=4)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    # a kill after epoch 5 was logged but before its checkpoint, and during the append of epoch 6
    extra = json.dumps({**json.loads(lines[-1]), "epoch": 5}) + "\n"
    (run_dir / "metrics.jsonl").write_text("".join(lines) + extra + '{"epoch": 6, "train_lo')
    (run_dir / "metrics.csv").write_text((run_dir / "metrics.csv").read_text() + "5,0.1,0.2")
    train(run_dir, resume=True)
    assert_same_run(run_dir, uninterrupted)


def test_lost_records_are_restored_from_the_checkpoint_history(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, epochs=4)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "metrics.jsonl").write_text(lines[0] + "\x00garbage\n" + lines[3])  # epochs 2 and 3 lost
    train(run_dir, resume=True)
    assert_same_run(run_dir, uninterrupted)


def test_resume_falls_back_to_the_newest_intact_checkpoint(uninterrupted, tmp_path, capsys):
    run_dir = tmp_path / "run"
    train(run_dir, epochs=4)
    last = run_dir / "checkpoints/last.npz"
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF
    last.write_bytes(bytes(data))
    train(run_dir, resume=True)
    err = capsys.readouterr().err
    assert f"skipping a damaged checkpoint: {last} is " in err
    assert f"using the newest intact checkpoint instead: {run_dir / 'checkpoints/epoch-0004.npz'} (epoch 4)" in err
    assert_same_run(run_dir, uninterrupted)


def test_no_intact_checkpoint_changes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, epochs=2)
    for path in (run_dir / "checkpoints").iterdir():
        path.write_bytes(path.read_bytes()[:100])
    before = file_hashes(run_dir)
    with pytest.raises(CheckpointError, match="no intact checkpoint: .*last.npz .*epoch-0002.npz"):
        train(run_dir, resume=True)
    assert file_hashes(run_dir) == before


def test_resume_with_no_checkpoint_yet_starts_from_the_beginning(uninterrupted, tmp_path, capsys):
    train(tmp_path / "fresh", resume=True)  # no directory at all
    assert_same_run(tmp_path / "fresh", uninterrupted)
    # killed before its first checkpoint: config.yaml and a torn first record, no checkpoint
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.yaml").write_text((uninterrupted / "config.yaml").read_text())
    (killed / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 0.')
    train(killed, resume=True)
    assert "has no checkpoint yet; starting the run from the beginning" in capsys.readouterr().err
    assert_same_run(killed, uninterrupted)


def test_a_finished_run_resumed_stays_finished(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir)
    summary = train(run_dir, resume=True)  # early-stopped at 6 of 8: stays stopped, nothing more trained
    assert summary["epochs"] == 6 and summary["stopped_early"].startswith("EarlyStopping")
    assert_same_run(run_dir, uninterrupted)


def test_a_new_run_never_writes_into_a_directory_holding_one(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, epochs=2)
    before = file_hashes(run_dir)
    with pytest.raises(RunError, match=r"already holds a run .*nothing was changed. Continue it with --resume, or "
                                       r"choose another --out directory"):
        train(run_dir)
    assert file_hashes(run_dir) == before
    # killed before its first checkpoint: still a run (its config.yaml), still refused
    (tmp_path / "early").mkdir()
    (tmp_path / "early/config.yaml").write_text((run_dir / "config.yaml").read_text())
    with pytest.raises(RunError, match="already holds a run"):
        train(tmp_path / "early")


def test_stale_temporaries_are_removed_and_none_survive(uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, epochs=2)
    assert temporaries(run_dir) == []
    stale = [run_dir / ".metrics.jsonl.k3j2h1.tmp", run_dir / "checkpoints/.epoch-0003.npz.abcd1234.tmp",
             run_dir / "checkpoints/.last.npz.4242.link.tmp"]
    for path in stale:
        path.write_bytes(b"left by a killed process")
    train(run_dir, resume=True)
    assert temporaries(run_dir) == []
    assert_same_run(run_dir, uninterrupted)


def test_another_process_writing_the_run_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    train(run_dir, epochs=1)
    before = file_hashes(run_dir)
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running gpunet train holds it
        with pytest.raises(RunError, match="another gpunet process is writing to"):
            train(run_dir, resume=True)
    finally:
        os.close(fd)
    assert file_hashes(run_dir) == before


def test_every_file_of_a_run_is_written_atomically(tmp_path, monkeypatch):
    # every file ends up in place by os.replace of a temporary beside it, except the fsynced appends of the loggers
    import gpunet.train.atomic as atomic
    replaced, appended = [], []
    real_replace, real_append = os.replace, atomic.append_text
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append(os.path.relpath(b, tmp_path / "run")),
                                                     real_replace(a, b)))
    monkeypatch.setattr(atomic, "append_text", lambda p, t: (appended.append(os.path.basename(p)), real_append(p, t)))
    import gpunet.train.callbacks as callbacks
    monkeypatch.setattr(callbacks, "append_text", atomic.append_text)
    train(tmp_path / "run", epochs=2)
    files = {str(p.relative_to(tmp_path / "run")) for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert files == set(replaced)
    assert sorted(set(appended)) == ["metrics.csv", "metrics.jsonl"] and len(appended) == 4


@pytest.mark.parametrize("damage", ["empty", "missing"])
def test_resume_survives_a_lost_config_yaml_with_the_checkpoints_config(uninterrupted, tmp_path, capsys, damage):
    from gpunet.cli import main
    run_dir = tmp_path / "run"
    train(run_dir, epochs=3)
    if damage == "empty":
        (run_dir / "config.yaml").write_text("")
    else:
        (run_dir / "config.yaml").unlink()
    status = main(["train", "ignored.yaml", "trainer.epochs=8", "--out", str(run_dir), "--resume", "--no-progress"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert f"{run_dir / 'config.yaml'} " in err and f"using the config saved in {run_dir / 'checkpoints/last.npz'}" in err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary == {**json.loads((uninterrupted / "summary.json").read_text()), "config": "ignored",
                       "run_dir": str(run_dir), "time_s": summary["time_s"]}
    assert (run_dir / "config.yaml").read_text() == (uninterrupted / "config.yaml").read_text()  # written back


def test_evaluate_falls_back_from_a_damaged_last_checkpoint_naming_both(tmp_path, capsys):
    from gpunet.cli import main
    run_dir = tmp_path / "run"
    train(run_dir, epochs=3)
    (tmp_path / "c.yaml").write_text(STATEFUL)
    last = run_dir / "checkpoints/last.npz"
    last.write_bytes(last.read_bytes()[:-10])
    status = main(["evaluate", str(tmp_path / "c.yaml"), "--checkpoint", str(last)])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert f"skipping a damaged checkpoint: {last} is not a valid checkpoint" in err
    assert json.loads(out.splitlines()[-1])["checkpoint"] == str(run_dir / "checkpoints/epoch-0003.npz")
