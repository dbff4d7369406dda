"""The ``gan`` task in the Trainer: both losses logged, the same numbers on every backend, k discriminator steps per
generator step, each step moving only its own network, the Wasserstein variants (clipping, gradient penalty equal
to the model-level functions on the same draws), exact resume from the middle of an epoch, the pictures and the
quality figure, and clear errors for keys and data that do not fit."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import gpunet as gn
from gpunet.data import DataLoader, load_dataset
from gpunet.data.registry import ArrayDataset
from gpunet.models import gan
from gpunet.train import Trainer, sample_quality
from gpunet.train.checkpoint import load_checkpoint
from gpunet.train.tasks import TASKS
from gpunet.train.tasks.gan import GANTask

from trainhelpers import StopAfter, assert_same_on_devices, assert_same_weights, without_time


class Tiny:
    """160 training and 64 validation digits (pixels in [0, 1]) as flat vectors or 1x8x8 images."""

    def __init__(self, flatten):
        data = load_dataset("digits", normalize="scale", flatten=flatten, seed=0)
        self.info = data.info
        self.train = ArrayDataset(data.train.x[:160], data.train.y[:160])
        self.validation = ArrayDataset(data.validation.x[:64], data.validation.y[:64])


@pytest.fixture(scope="module")
def flat():
    return Tiny(flatten=True)


@pytest.fixture(scope="module")
def images():
    return Tiny(flatten=False)


def gan_trainer(data, seed=0, callbacks=(), lr=2e-3, init_seed=None, **keys):
    gn.manual_seed(seed if init_seed is None else init_seed)
    task = GANTask(**{"quality_samples": 0, "hidden": [32], "features": 4, **keys})
    models = {name: task.build_model(name, data.info) for name in task.models}
    optimizers = {name: gn.optim.Adam(models[name].parameters(), lr=lr, betas=(0.5, 0.999)) for name in models}
    trainer = Trainer(models, None, optimizers, task=task, metrics=(), callbacks=list(callbacks))
    return trainer, DataLoader(data.train, 32, shuffle=True, seed=seed), DataLoader(data.validation, 64)


def test_registered_with_its_keys():
    assert TASKS["gan"] is GANTask and GANTask.models == ("generator", "discriminator")
    assert {"d_steps", "generator_loss", "clip_value", "gradient_penalty"} <= set(GANTask.keys)


def test_trains_both_networks_and_logs_both_losses_the_same_on_every_backend(flat, device):
    def fit():
        trainer, train, val = gan_trainer(flat)
        return trainer.fit(train, val, epochs=2)

    history = assert_same_on_devices(device, fit)
    for epoch in history:
        assert {"train_loss", "train_d_loss", "train_g_loss", "val_loss", "val_d_loss", "val_g_loss"} <= set(epoch)
        assert epoch["train_loss"] == pytest.approx(epoch["train_d_loss"] + epoch["train_g_loss"], rel=1e-6)
        assert all(np.isfinite(v) for k, v in epoch.items() if k.startswith(("train_", "val_")))
    # a D with random weights scores ~2 log 2 = 1.386 at the start; training moved it
    assert history[0]["train_d_loss"] != pytest.approx(history[1]["train_d_loss"], abs=1e-3)


def _update_log(trainer, monkeypatch):
    calls = []
    update = trainer.update

    def logged(names, loss):
        calls.append(names)
        return update(names, loss)

    monkeypatch.setattr(trainer, "update", logged)
    return calls


@pytest.mark.parametrize("d_steps", [1, 3])
def test_k_discriminator_steps_per_generator_step(flat, monkeypatch, d_steps):
    trainer, train, _ = gan_trainer(flat, d_steps=d_steps)
    calls = _update_log(trainer, monkeypatch)
    trainer.fit(train, None, epochs=2)  # 10 batches
    expected = []
    for step in range(1, 11):
        expected += ["discriminator"] + (["generator"] if step % d_steps == 0 else [])
    assert calls == expected


def test_each_step_moves_only_its_own_network(flat):
    trainer, train, _ = gan_trainer(flat, d_steps=2)
    generator, discriminator = trainer.models["generator"], trainer.models["discriminator"]
    x, y = next(iter(train))

    def snapshot(model):
        return {k: v.copy() for k, v in model.state_dict().items()}

    g0, d0 = snapshot(generator), snapshot(discriminator)
    trainer.model.train()
    trainer.task.train_step(x, y)  # global step 0: the discriminator only (the fake batch was detached)
    trainer.global_step += 1
    assert all(np.array_equal(g0[k], v) for k, v in generator.state_dict().items())
    assert all(p.grad is None for p in generator.parameters())
    assert not all(np.array_equal(d0[k], v) for k, v in discriminator.state_dict().items())
    g1, d1 = snapshot(generator), snapshot(discriminator)
    trainer.task.train_step(x, y)  # global step 1: D, then G (whose backward also reaches D, which must not step)
    assert not all(np.array_equal(g1[k], v) for k, v in generator.state_dict().items())
    assert not all(np.array_equal(d1[k], v) for k, v in discriminator.state_dict().items())


def test_minimax_and_non_saturating_train_differently(flat):
    first = gan_trainer(flat, generator_loss="minimax")
    second = gan_trainer(flat, generator_loss="non_saturating")
    h1, h2 = first[0].fit(first[1], None, 1), second[0].fit(second[1], None, 1)
    assert h1["train_g_loss"][0] < 0 < h2["train_g_loss"][0]  # log(1 - D) < 0 < -log D


def test_weight_clipping_keeps_the_critic_in_the_box(flat):
    trainer, train, _ = gan_trainer(flat, generator_loss="wasserstein", clip_value=0.01, lr=5e-3)
    trainer.fit(train, None, epochs=1)
    for name, p in trainer.models["discriminator"].named_parameters():
        assert np.abs(p.numpy()).max() <= 0.01, name
    assert any(np.abs(p.numpy()).max() == pytest.approx(0.01) for p in trainer.models["discriminator"].parameters())


@pytest.mark.parametrize("data_name", ["flat", "images"])
def test_wgan_gp_step_equals_the_model_functions_on_the_same_draws(request, data_name):
    data = request.getfixturevalue(data_name)
    arch = "mlp" if data_name == "flat" else "dcgan"
    trainer, train, _ = gan_trainer(data, architecture=arch, generator_loss="wasserstein", gradient_penalty=10.0)
    assert not any("running_mean" in k for k in trainer.models["discriminator"].state_dict())  # no batch norm
    x, y = next(iter(train))
    generator, critic = trainer.models["generator"], trainer.models["discriminator"]
    trainer.model.train()
    gn.manual_seed(42)
    real = gn.tensor(x.reshape(len(x), -1) if arch == "mlp" else x)
    fake = generator(gn.randn(len(x), 16))
    expected_d = gan.critic_loss(critic(real), critic(fake)) + 10.0 * gan.gradient_penalty(critic, real, fake)
    penalty_free = float(gan.critic_loss(critic(real), critic(fake)))
    gn.manual_seed(42)
    losses = trainer.task.train_step(x, y)
    assert float(losses["d_loss"]) == pytest.approx(float(expected_d), rel=1e-5)
    assert float(losses["d_loss"]) > penalty_free  # the penalty is in it


def test_resume_from_the_middle_of_a_gan_run_is_exact(flat, tmp_path):
    keys = dict(d_steps=2, generator_loss="wasserstein", gradient_penalty=5.0)
    straight, train, val = gan_trainer(flat, **keys)
    straight.fit(train, val, epochs=3)
    path = str(tmp_path / "mid.npz")
    interrupted, train, val = gan_trainer(flat, callbacks=[StopAfter(path, epoch=2, step=3)], **keys)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(train, val, epochs=3)
    assert load_checkpoint(path).step == 8  # in the middle of epoch 2, between two generator steps
    resumed, train, val = gan_trainer(flat, init_seed=123, **keys)  # other initial weights: all must come from the file
    resumed.fit(train, val, epochs=3, resume=path)
    assert without_time(resumed.history) == without_time(straight.history)
    assert_same_weights(resumed.model, straight.model)
    for name in ("generator", "discriminator"):
        assert resumed.optimizers[name].state_dict()["state"].keys() == \
            straight.optimizers[name].state_dict()["state"].keys()


def test_sample_grids_and_the_quality_figure(images, tmp_path, monkeypatch):
    monkeypatch.setattr(sample_quality, "JUDGE_STEPS", 60)  # a rough judge is enough to count with
    trainer, train, val = gan_trainer(images, architecture="dcgan")
    trainer.fit(train, val, epochs=1)
    trainer.model.eval()
    splits = {"train": train, "val": val, "test": val}
    rng_state = gn.random.get_rng_state()
    paths = trainer.task.epoch_artifacts(str(tmp_path), 1, splits)
    assert paths == [str(tmp_path / "samples" / "epoch-0001.png")]
    assert open(paths[0], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    trainer.task.quality_samples = 300
    with gn.no_grad():  # as the runner calls it
        summary = trainer.task.summary(splits)
    assert gn.random.get_rng_state() == rng_state  # pictures and figures do not move the training stream
    quality = summary["sample_quality"]
    assert quality["samples_judged"] == 300 and sum(quality["samples"]["class_histogram"]) == 300
    assert sum(quality["real_test"]["class_histogram"]) == 64
    json.dumps(summary)  # plain values for summary.json
    assert trainer.task.summary(splits) == summary  # the same samples and judge every time
    assert os.listdir(tmp_path) == ["samples"] and os.listdir(tmp_path / "samples") == ["epoch-0001.png"]


def test_keys_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="task gan: d_steps must be >= 1, got 0"):
        GANTask(d_steps=0)
    with pytest.raises(ValueError, match=r"task gan: hidden must be >= 1, got \[64, 0\]"):
        GANTask(hidden=[64, 0])
    with pytest.raises(ValueError, match="task gan: architecture must be one of mlp, dcgan, got 'cnn'"):
        GANTask(architecture="cnn")
    with pytest.raises(ValueError, match="wasserstein needs the critic kept 1-Lipschitz: set clip_value"):
        GANTask(generator_loss="wasserstein")
    with pytest.raises(ValueError, match="clip_value and gradient_penalty are for generator_loss: wasserstein"):
        GANTask(clip_value=0.01)
    with pytest.raises(ValueError, match=r"dcgan needs square images \(C, s, s\), the data gives samples of shape "
                                         r"\(64,\); set the dataset's flatten: false"):
        GANTask(architecture="dcgan").build_model("generator", load_dataset("digits", flatten=True).info)


def test_data_outside_the_unit_interval_is_refused(flat):
    trainer, _, _ = gan_trainer(flat)
    with pytest.raises(ValueError, match=r"task gan: the inputs lie in \[-1, 2\].*normalize: scale"):
        trainer.task.train_step(np.array([[-1.0] * 32 + [2.0] * 32], dtype=np.float32), None)


RUN_CONFIG = """
seed: 0
device: cpu
data: {name: digits, flatten: true, normalize: scale}
task: {type: gan, hidden: [16], latent_dim: 8, generator_loss: wasserstein, gradient_penalty: 5.0, d_steps: 3,
       quality_samples: 100}
optimizer: {name: adam, lr: 0.001, betas: [0.5, 0.9]}
trainer: {epochs: 3, batch_size: 128}
"""


def test_a_resumed_gan_run_directory_equals_the_uninterrupted_one(tmp_path, monkeypatch):
    """``gpunet train`` of a WGAN-GP config stopped after epoch 1 and resumed writes what the uninterrupted run
    writes: metrics, checkpoints (both networks, both optimizers), summary.json with the quality figure, and the
    same picture files."""
    from gpunet.config import load_config
    from gpunet.runner.run import run

    from runcompare import assert_same_run

    monkeypatch.setattr(sample_quality, "JUDGE_STEPS", 30)
    path = tmp_path / "gan.yaml"
    path.write_text(RUN_CONFIG)
    straight = run(load_config(path), str(tmp_path / "straight"), config_name="gan", progress=False)
    run(load_config(path, ["trainer.epochs=1"]), str(tmp_path / "resumed"), config_name="gan", progress=False)
    resumed = run(load_config(path), str(tmp_path / "resumed"), resume=True, config_name="gan", progress=False)
    assert_same_run(tmp_path / "resumed", tmp_path / "straight")
    assert resumed["sample_quality"] == straight["sample_quality"]
    assert sum(straight["sample_quality"]["samples"]["class_histogram"]) == 100
    assert sorted(os.listdir(tmp_path / "straight" / "samples")) == [f"epoch-000{k}.png" for k in (1, 2, 3)]
    state = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.npz")
    assert {k.split(".")[0] for k in state.model} == {"generator", "discriminator"}
    assert set(state.optimizer) == {"generator", "discriminator"}


GIVEN_MODELS = """
seed: 0
device: cpu
data: {name: digits, flatten: true, normalize: scale}
task: {type: gan, latent_dim: 8, quality_samples: 0}
models:
  generator:
    layers:
      - {type: Linear, in_features: 8, out_features: 32}
      - {type: ReLU}
      - {type: Linear, in_features: 32, out_features: OUT}
      - {type: Sigmoid}
  discriminator:
    layers:
      - {type: Linear, in_features: 64, out_features: 16}
      - {type: LeakyReLU, negative_slope: 0.2}
      - {type: Linear, in_features: 16, out_features: 1}
optimizer: {name: adam, lr: 0.002, betas: [0.5, 0.999]}
optimizers: {discriminator: {name: sgd, lr: 0.05}}
trainer: {epochs: 1, batch_size: 128}
"""


def test_networks_given_in_the_config_and_a_generator_of_the_wrong_size(tmp_path):
    from gpunet.config import ConfigError, load_config
    from gpunet.runner.run import build_run, run

    path = tmp_path / "gan.yaml"
    path.write_text(GIVEN_MODELS.replace("OUT", "64"))
    summary = run(load_config(path), str(tmp_path / "run"), config_name="gan", progress=False)
    assert np.isfinite(summary["test_d_loss"]) and np.isfinite(summary["test_g_loss"])
    built = build_run(load_config(path), None, progress=False, announce_device=False)
    assert type(built.trainer.optimizers["discriminator"]).__name__ == "SGD"
    assert type(built.trainer.optimizers["generator"]).__name__ == "Adam"
    path.write_text(GIVEN_MODELS.replace("OUT", "32"))
    with pytest.raises(ConfigError, match=r"models.generator.*samples of shape \(32,\), but the data's samples have "
                                          r"shape \(64,\)"):
        build_run(load_config(path), None, progress=False, announce_device=False)
