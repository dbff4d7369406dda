"""The ``vae`` task in the Trainer: its logged figures agree with each other and with the model functions, the same
numbers on every backend, evaluation that draws its noise from the batch (repeatable, the training stream left
alone), exact mid-epoch resume, the pictures and the quality figure, and clear errors."""
from __future__ import annotations

import os

import numpy as np
import pytest

import gpunet as gn
from gpunet.data import DataLoader, load_dataset
from gpunet.data.registry import ArrayDataset
from gpunet.models import VAE
from gpunet.models.vae import elbo
from gpunet.train import Trainer, sample_quality
from gpunet.train.checkpoint import load_checkpoint
from gpunet.train.tasks import TASKS
from gpunet.train.tasks.vae import VAETask

from trainhelpers import StopAfter, assert_same_on_devices, assert_same_weights, mlp, without_time


@pytest.fixture(scope="module")
def tiny():
    data = load_dataset("digits", normalize="scale", flatten=True, seed=0)

    class Tiny:
        info = data.info
        train = ArrayDataset(data.train.x[:160], data.train.y[:160])
        validation = ArrayDataset(data.validation.x[:64], data.validation.y[:64])
    return Tiny


def vae_trainer(data, seed=0, callbacks=(), init_seed=None, **keys):
    gn.manual_seed(seed if init_seed is None else init_seed)
    task = VAETask(**{"quality_samples": 0, "hidden": [32], **keys})
    model = task.build_model("model", data.info)
    trainer = Trainer(model, None, gn.optim.Adam(model.parameters(), lr=3e-3), task=task, metrics=(),
                      callbacks=list(callbacks))
    return trainer, DataLoader(data.train, 32, shuffle=True, seed=seed), DataLoader(data.validation, 64)


def test_registered():
    assert TASKS["vae"] is VAETask and VAETask.loss_names[0] == "loss"


def test_logged_figures_agree_and_match_on_every_backend(tiny, device):
    def fit():
        trainer, train, val = vae_trainer(tiny)
        return trainer.fit(train, val, epochs=3)

    history = assert_same_on_devices(device, fit)
    for epoch in history:
        for split in ("train_", "val_"):
            assert epoch[split + "elbo"] == pytest.approx(-epoch[split + "loss"], rel=1e-5)  # beta = 1
            assert epoch[split + "loss"] == pytest.approx(epoch[split + "reconstruction"] + epoch[split + "kl"],
                                                          rel=1e-5)
            assert epoch[split + "kl"] > 0 and 0 < epoch[split + "mse"] < 0.25
    assert history[-1]["val_elbo"] > history[0]["val_elbo"]  # it learns


def test_beta_weighs_the_kl_term(tiny):
    trainer, train, _ = vae_trainer(tiny, beta=0.5)
    epoch = trainer.fit(train, None, epochs=1).epochs[0]
    assert epoch["train_loss"] == pytest.approx(epoch["train_reconstruction"] + 0.5 * epoch["train_kl"], rel=1e-5)
    assert epoch["train_elbo"] == pytest.approx(-(epoch["train_reconstruction"] + epoch["train_kl"]), rel=1e-5)


def test_evaluation_is_repeatable_and_leaves_the_training_stream_alone(tiny):
    trainer, train, val = vae_trainer(tiny)
    trainer.fit(train, None, epochs=1)
    state = gn.random.get_rng_state()
    first = trainer.evaluate(val)
    assert trainer.evaluate(val) == first and gn.random.get_rng_state() == state
    # the eval ELBO is the model's on the batch with one draw of z; decode(mu) gives the mse
    x = tiny.validation.x
    model = trainer.model
    with gn.no_grad():
        mu, logvar = model.encode(gn.tensor(x))
        mse = float(((gn.sigmoid(model.decode(mu)) - gn.tensor(x)) ** 2).mean())
        values = [float(elbo(model.decode(model.reparameterize(mu, logvar)), gn.tensor(x), mu, logvar).mean())
                  for _ in range(20)]
    assert first["mse"] == pytest.approx(mse, rel=1e-5)
    assert abs(first["elbo"] - np.mean(values)) < 4 * np.std(values) / np.sqrt(20) + 0.5


def test_resume_from_the_middle_of_a_vae_run_is_exact(tiny, tmp_path):
    straight, train, val = vae_trainer(tiny)
    straight.fit(train, val, epochs=3)
    path = str(tmp_path / "mid.npz")
    interrupted, train, val = vae_trainer(tiny, callbacks=[StopAfter(path, epoch=2, step=2)])
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(train, val, epochs=3)
    assert load_checkpoint(path).step == 7
    resumed, train, val = vae_trainer(tiny, init_seed=5)
    resumed.fit(train, val, epochs=3, resume=path)
    assert without_time(resumed.history) == without_time(straight.history)
    assert_same_weights(resumed.model, straight.model)


def test_pictures_and_the_quality_figure(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(sample_quality, "JUDGE_STEPS", 60)  # a rough judge is enough to count with
    trainer, train, val = vae_trainer(tiny, quality_samples=200)
    trainer.fit(train, val, epochs=1)
    trainer.model.eval()
    splits = {"train": train, "val": val, "test": val}
    state = gn.random.get_rng_state()
    paths = trainer.task.epoch_artifacts(str(tmp_path), 1, splits) + trainer.task.final_artifacts(str(tmp_path),
                                                                                                  splits)
    assert [os.path.relpath(p, tmp_path) for p in paths] == [os.path.join("reconstructions", "epoch-0001.png"),
                                                             os.path.join("samples", "epoch-0001.png"),
                                                             "latent_grid.png"]
    assert all(open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n" for p in paths)
    quality = trainer.task.summary(splits)["sample_quality"]
    assert gn.random.get_rng_state() == state
    assert sum(quality["samples"]["class_histogram"]) == 200 and quality["judge_test_accuracy"] > 0.5
    assert trainer.task.final_artifacts(str(tmp_path), splits) == paths[2:]  # 1-D codes draw no grid, 2-D one
    one_d, train, _ = vae_trainer(tiny, latent_dim=1)
    assert one_d.task.final_artifacts(str(tmp_path), splits) == []


def test_errors_name_the_task_and_the_fix(tiny):
    gn.manual_seed(0)
    with pytest.raises(ValueError, match="task vae: the model \\(Sequential\\) has no encode, reparameterize, decode"):
        Trainer(mlp([64, 8, 64]), None, None, task=VAETask())
    trainer, _, _ = vae_trainer(tiny)
    with pytest.raises(ValueError, match=r"task vae: the inputs lie in \[16, 16\].*normalize: scale"):
        trainer.task.train_step(np.full((4, 64), 16.0, dtype=np.float32), None)
    assert isinstance(trainer.model, VAE)
