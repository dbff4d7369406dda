"""The ``rbm`` task through the Trainer: the same numbers as the hand-written CD loop, logged figures, exact resume
of persistent chains mid-epoch, the filter grid, and a clear error for inputs outside [0, 1]."""
import numpy as np
import pytest

import gpunet as gn
from gpunet.data import DataLoader, load_dataset
from gpunet.train import Trainer
from gpunet.train.checkpoint import load_checkpoint
from gpunet.train.tasks import TASKS

from trainhelpers import StopAfter, assert_same_weights


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
    assert load_checkpoint(path).extra["task"]["state"]["chain"].shape == (20, 16)
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


def test_an_empty_share_of_a_data_parallel_batch_changes_nothing(digits):
    trainer, _, _ = make(digits)
    before = trainer.model.state_dict()
    assert trainer.task.train_step(np.zeros((0, 64), np.float32), np.zeros(0, np.int64)) == {}
    for key, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])
