"""The ``rbm`` task through the Trainer: the same numbers as the hand-written CD loop, logged figures, exact resume
of persistent chains mid-epoch, the filter grid, and a clear error for inputs outside [0, 1]."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import gpunet as gn
from gpunet.data import DataLoader, load_dataset
from gpunet.train import Trainer
from gpunet.train.checkpoint import load_checkpoint
from gpunet.train.tasks import TASKS

from runcompare import assert_same_run
from trainhelpers import StopAfter, assert_same_weights

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", flatten=True, normalize="scale", test_split=0.2, validation_split=0.1, seed=0)


def make(digits, persistent=False, k=1, callbacks=(), n=200, seed=0, lr=0.1):
    gn.manual_seed(seed)
    task = TASKS["rbm"](n_hidden=16, k=k, persistent=persistent)
    model = task.build_model("model", digits.info)
    trainer = Trainer(model, None, gn.optim.SGD(model.parameters(), lr=lr), task=task, metrics=(),
                      callbacks=list(callbacks))
    train = DataLoader(type(digits.train)(digits.train.x[:n], digits.train.y[:n]), 20, shuffle=True, seed=0)
    val = DataLoader(digits.validation, 64)
    return trainer, train, val


@pytest.mark.parametrize("persistent", [False, True])
def test_a_run_is_the_hand_written_cd_loop(digits, device, persistent):
    trainer, train, val = make(digits, persistent=persistent, k=2)
    history = trainer.fit(train, val, epochs=2)

    gn.manual_seed(0)
    rbm = TASKS["rbm"](n_hidden=16).build_model("model", digits.info)
    opt = gn.optim.SGD(rbm.parameters(), lr=0.1)
    loader = DataLoader(type(digits.train)(digits.train.x[:200], digits.train.y[:200]), 20, shuffle=True, seed=0)
    chain = gn.zeros(20, 16) if persistent else None
    for epoch in range(2):
        loader.set_epoch(epoch)
        for x, _ in loader:
            v = gn.tensor(x)
            rbm.pseudo_likelihood(v)  # the logged figure draws its flipped units first
            chain = rbm.contrastive_divergence(v, k=2, chain=chain)
            opt.step()
    np.testing.assert_allclose(trainer.model.weight.numpy(), rbm.weight.numpy(), rtol=1e-5, atol=1e-6)

    logs = history.epochs[-1]
    assert {"train_loss", "train_recon_error", "train_pseudo_likelihood", "val_loss", "val_recon_error",
            "val_pseudo_likelihood"} <= set(logs)
    assert logs["train_loss"] == logs["train_recon_error"] and logs["val_pseudo_likelihood"] < 0
    v = gn.tensor(digits.validation.x)
    assert logs["val_recon_error"] == pytest.approx(float(trainer.model.reconstruction_error(v)), rel=1e-5)


def test_training_lowers_the_reconstruction_error(digits):
    trainer, train, val = make(digits, n=600, lr=0.5)
    history = trainer.fit(train, val, epochs=5)
    errors = history["val_recon_error"]
    assert errors[-1] < 0.85 * errors[0], errors


def test_resume_in_the_middle_of_an_epoch_is_exact_with_persistent_chains(digits, tmp_path):
    path = str(tmp_path / "mid.npz")
    uninterrupted, train, val = make(digits, persistent=True)
    uninterrupted.fit(train, val, epochs=3)

    crashed, train, val = make(digits, persistent=True, callbacks=[StopAfter(path, epoch=2, step=4)])
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(train, val, epochs=3)
    assert load_checkpoint(path).extra["task"]["ranks"][0]["chain"].shape == (20, 16)
    resumed, train, val = make(digits, persistent=True, seed=7)  # other weights and RNG until the checkpoint loads
    resumed.fit(train, val, epochs=3, resume=path)
    assert_same_weights(resumed.model, uninterrupted.model)
    np.testing.assert_array_equal(resumed.task.chain.numpy(), uninterrupted.task.chain.numpy())
    assert resumed.history.epochs[-1]["train_loss"] == uninterrupted.history.epochs[-1]["train_loss"]


def test_the_filter_grid_is_drawn(digits, tmp_path):
    trainer, train, val = make(digits)
    trainer.fit(train, val, epochs=1)
    paths = trainer.task.final_artifacts(str(tmp_path), {})
    assert paths == [str(tmp_path / "filters.png")]
    assert (tmp_path / "filters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_inputs_outside_the_unit_interval_name_the_fix(digits):
    trainer, train, _ = make(digits)
    with pytest.raises(ValueError, match=r"rbm task: the inputs must lie in \[0, 1\].*data.normalize to minmax"):
        trainer.task.train_step(np.full((4, 64), 16.0, np.float32), None)


def test_a_checkpoint_of_more_ranks_gives_rank_r_the_saved_chains_r_else_fresh_ones(digits, tmp_path):
    """Resuming with another number of ranks: rank r continues saved rank r's chains (a single process: rank 0's),
    a rank the checkpoint has none for starts fresh ones (zeros, one per sample of its share) and trains on."""
    path = str(tmp_path / "mid.npz")
    crashed, train, val = make(digits, persistent=True, callbacks=[StopAfter(path, epoch=1, step=4)])
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(train, val, epochs=2)
    checkpoint = load_checkpoint(path)
    saved = checkpoint.extra["task"]["ranks"][0]["chain"]
    checkpoint.extra["task"]["ranks"].append({"chain": 1 - saved[:10]})  # as if saved by 2 ranks
    for rank, size, expected in [(None, 1, saved), (1, 3, 1 - saved[:10]), (2, 3, None)]:
        resumed, train, val = make(digits, persistent=True, seed=7)
        if rank is not None:  # the Trainer of rank ``rank`` of ``size`` (only its rank and size are read here)
            resumed.distributed = SimpleNamespace(world=SimpleNamespace(rank=rank, size=size))
        resumed.load_checkpoint(checkpoint, train)
        if expected is None:
            assert resumed.task.chain is None
            resumed.distributed = None
            resumed.fit(train, val, epochs=2)  # the fresh chains' first step
            assert resumed.task.chain.shape == (20, 16)
        else:
            np.testing.assert_array_equal(resumed.task.chain.numpy(), expected)


def test_two_ranks_of_persistent_cd_resumed_after_a_signal_equal_their_uninterrupted_run(tmp_path):  # ~17 s
    """Each rank keeps its own chains (and its own generator, which samples them): a 2-rank PCD run stopped by
    SIGTERM on rank 1 mid-epoch and resumed writes the same run directory as the uninterrupted 2-rank run."""
    from test_distributed import mpiexec

    args = ("train", CONFIGS / "rbm_digits.yaml", "trainer.epochs=2", "trainer.batch_size=32", "task.n_hidden=16",
            "--no-progress")
    straight, out = tmp_path / "straight", tmp_path / "run"
    result = mpiexec(tmp_path, 2, *args, "--out", straight)
    assert result.returncode == 0, result.stderr
    stopped = mpiexec(tmp_path, 2, *args, "--out", out, GPUNET_TEST_FAULT="term")
    assert stopped.returncode == 143, stopped.stderr
    ranks = load_checkpoint(out / "checkpoints" / "last.npz").extra["task"]["ranks"]
    assert [r["chain"].shape for r in ranks] == [(16, 16), (16, 16)]
    assert not np.array_equal(ranks[0]["chain"], ranks[1]["chain"])
    result = mpiexec(tmp_path, 2, *args, "--out", out, "--resume")
    assert result.returncode == 0, result.stderr
    assert_same_run(out, straight)
