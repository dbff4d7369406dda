"""The ``autoencode`` task: its penalties against closed forms and finite differences in float64, every variant of
seed 002 trained from a config on a small digits split on the CPU and the emulated CUDA device (it learns: the test
reconstruction beats the training mean image), and an exact resume in the middle of a denoising, sparse run."""
import json
import os
import signal

import numpy as np
import pytest

import gpunet
from gpunet.config import build_dataset, loads_config
from gpunet.runner.run import run
from gpunet.train.checkpoint import load_checkpoint
from gpunet.train.interrupt import TrainingInterrupted
from gpunet.train.tasks.autoencode import contractive_penalty, kl_sparsity, l1_sparsity

from runcompare import assert_same_run

RNG = np.random.default_rng(0)


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _sigmoid_layer():
    w, b, x = RNG.normal(size=(3, 5)), RNG.normal(size=3), RNG.normal(size=(4, 5))
    return w, b, x


def _penalty(w, b, x, create_graph=True):
    wt = gpunet.tensor(w, requires_grad=True)
    xt = gpunet.tensor(x, requires_grad=True)
    code = gpunet.sigmoid(xt @ wt.t() + gpunet.tensor(b))
    return contractive_penalty(code, xt, create_graph=create_graph), wt


def test_contractive_penalty_is_the_closed_form_of_a_sigmoid_layer():
    w, b, x = _sigmoid_layer()
    h = _sigmoid(x @ w.T + b)
    # d h_i / d x_j = h_i (1 - h_i) W_ij, so ||J||_F^2 = sum_i (h_i (1 - h_i))^2 sum_j W_ij^2, averaged over samples
    expected = np.mean(np.sum((h * (1 - h)) ** 2 * np.sum(w ** 2, axis=1), axis=1))
    penalty, _ = _penalty(w, b, x)
    assert penalty.item() == pytest.approx(expected, rel=1e-12)


def test_contractive_penalty_matches_a_finite_difference_jacobian_and_its_weight_gradient():
    w, b, x = _sigmoid_layer()
    eps = 1e-6

    def numeric_penalty(weights):
        total = 0.0
        for sample in x:
            jac = np.empty((3, 5))
            for j in range(5):
                step = np.zeros(5)
                step[j] = eps
                up, down = _sigmoid(weights @ (sample + step) + b), _sigmoid(weights @ (sample - step) + b)
                jac[:, j] = (up - down) / (2 * eps)
            total += np.sum(jac ** 2)
        return total / len(x)

    penalty, wt = _penalty(w, b, x)
    assert penalty.item() == pytest.approx(numeric_penalty(w), rel=1e-6)
    penalty.backward()  # the double backward: d penalty / d W
    numeric = np.empty_like(w)
    for index in np.ndindex(*w.shape):
        step = np.zeros_like(w)
        step[index] = 1e-5
        numeric[index] = (numeric_penalty(w + step) - numeric_penalty(w - step)) / 2e-5
    np.testing.assert_allclose(wt.grad.numpy(), numeric, rtol=1e-4, atol=1e-7)


def test_sparsity_penalties_match_their_formulas():
    code = RNG.uniform(0.01, 0.99, size=(6, 4))
    rho = 0.1
    rho_hat = code.mean(axis=0)
    kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
    assert kl_sparsity(gpunet.tensor(code), rho).item() == pytest.approx(kl, rel=1e-12)
    signed = code - 0.5
    assert l1_sparsity(gpunet.tensor(signed)).item() == pytest.approx(np.abs(signed).sum(axis=1).mean(), rel=1e-12)


BASE = """\
seed: 0
device: {device}
data: {{name: digits, normalize: scale, flatten: {flatten}, test_split: 0.3, val_split: 0.2}}
task: {task}
models:
  encoder: {{layers: {encoder}}}
  decoder: {{layers: {decoder}}}
optimizer: {{name: adam, lr: 0.01}}
trainer: {{epochs: {epochs}, batch_size: 32}}
"""
_MLP = ("[{type: Linear, in_features: 64, out_features: 16}, {type: ReLU}]",
        "[{type: Linear, in_features: 16, out_features: 64}, {type: Sigmoid}]")
_SIGMOID_CODE = ("[{type: Linear, in_features: 64, out_features: 16}, {type: Sigmoid}]", _MLP[1])
VARIANTS = {
    "undercomplete": ("{type: autoencode}", True, *_MLP),
    "compressor_2d": ("{type: autoencode}", True,
                      "[{type: Linear, in_features: 64, out_features: 32}, {type: LeakyReLU},"
                      " {type: Linear, in_features: 32, out_features: 2}]",
                      "[{type: Linear, in_features: 2, out_features: 32}, {type: LeakyReLU},"
                      " {type: Linear, in_features: 32, out_features: 64}, {type: Sigmoid}]"),
    "denoising": ("{type: autoencode, noise_std: 0.2}", True, *_MLP),
    "sparse_l1": ("{type: autoencode, sparsity: l1, sparsity_weight: 1.0e-4}", True, *_MLP),
    "sparse_kl": ("{type: autoencode, sparsity: kl, sparsity_weight: 1.0e-3, sparsity_target: 0.1}", True,
                  *_SIGMOID_CODE),
    "contractive": ("{type: autoencode, contractive_weight: 1.0e-3}", True, *_SIGMOID_CODE),
    "convolutional": ("{type: autoencode}", False,
                      "[{type: Conv2d, in_channels: 1, out_channels: 8, kernel_size: 3, stride: 2, padding: 1},"
                      " {type: ReLU}]",
                      "[{type: ConvTranspose2d, in_channels: 8, out_channels: 1, kernel_size: 4, stride: 2,"
                      " padding: 1}, {type: Sigmoid}]"),
    "upsampling": ("{type: autoencode}", False,
                   "[{type: Conv2d, in_channels: 1, out_channels: 8, kernel_size: 3, padding: 1}, {type: ReLU},"
                   " {type: MaxPool2d, kernel_size: 2}]",
                   "[{type: Upsample, scale_factor: 2}, {type: Conv2d, in_channels: 8, out_channels: 1,"
                   " kernel_size: 3, padding: 1}, {type: Sigmoid}]"),
}


def _config(variant, device="cpu", epochs=3, extra=()):
    task, flatten, encoder, decoder = VARIANTS[variant]
    text = BASE.format(device=device, flatten=str(flatten).lower(), task=task, encoder=encoder, decoder=decoder,
                       epochs=epochs)
    return loads_config(text, list(extra), f"{variant}.yaml")


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_learns_to_reconstruct(variant, device, tmp_path, monkeypatch):
    monkeypatch.setenv("GPUNET_DEVICE", device)  # the config's device: auto runs on the fixture's device
    summary = run(_config(variant, "auto"), str(tmp_path), progress=False, announce_device=False)
    assert summary["test_mse"] < summary["test_baseline_mse"], summary  # better than the mean image
    assert 0.07 < summary["test_baseline_mse"] < 0.08  # the digits' mean image (seed 002's 0.073)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    names = {"undercomplete": set(), "compressor_2d": set(), "denoising": set(), "sparse_l1": {"sparsity"},
             "sparse_kl": {"sparsity"}, "contractive": {"contractive"}, "convolutional": set(), "upsampling": set()}
    assert {k[len("train_"):] for k in records[0] if k.startswith("train_")} == {"loss", "mse"} | names[variant]
    assert (tmp_path / "reconstructions.png").stat().st_size > 1000
    assert (tmp_path / "codes.png").exists() == (variant == "compressor_2d")


def test_test_mse_is_the_numpy_reconstruction_error_of_the_saved_weights(tmp_path):
    config = _config("undercomplete")
    summary = run(config, str(tmp_path), progress=False)
    weights = load_checkpoint(tmp_path / "checkpoints/last.npz").model
    x = build_dataset(config).test.x.astype(np.float64)
    code = np.maximum(x @ weights["encoder.0.weight"].T + weights["encoder.0.bias"], 0)
    rebuilt = _sigmoid(code @ weights["decoder.0.weight"].T + weights["decoder.0.bias"])
    assert summary["test_mse"] == pytest.approx(np.mean((rebuilt - x) ** 2), rel=1e-5)
    train = build_dataset(config).train.x.astype(np.float64)
    assert summary["test_baseline_mse"] == pytest.approx(np.mean((x - train.mean(axis=0)) ** 2), rel=1e-9)


RESUMED = ("sparse_kl", ["task.noise_std=0.1", "trainer.epochs=3"])  # noise (RNG) and the sparsity penalty


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    gpunet.set_device("cpu")
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    run(_config(RESUMED[0], extra=RESUMED[1]), str(run_dir), progress=False)
    return run_dir


@pytest.mark.parametrize("stop_at", [7, 40])  # in epochs 1 and 2 (32 steps each)
def test_resume_in_the_middle_of_an_autoencoder_run_is_exact(uninterrupted, tmp_path, monkeypatch, stop_at):
    from gpunet.train.trainer import Trainer

    step = Trainer._train_step

    def signalled(self, x, y):
        if self.global_step + 1 == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return step(self, x, y)

    monkeypatch.setattr(Trainer, "_train_step", signalled)
    config = _config(RESUMED[0], extra=RESUMED[1])
    with pytest.raises(TrainingInterrupted):
        run(config, str(tmp_path / "run"), progress=False)
    saved = load_checkpoint(tmp_path / "run/checkpoints/last.npz")
    assert saved.step == stop_at and saved.extra["partial_epoch"] is not None
    monkeypatch.setattr(Trainer, "_train_step", step)
    run(config, str(tmp_path / "run"), resume=True, progress=False)
    assert_same_run(tmp_path / "run", uninterrupted)
    assert (tmp_path / "run/reconstructions.png").read_bytes() == (uninterrupted / "reconstructions.png").read_bytes()


@pytest.mark.slow  # a minute: two mpiexec ranks and the reference run
def test_two_ranks_train_an_autoencoder_as_one_process_does_also_with_an_empty_share(tmp_path, capsys):
    """Data parallel through the task's update(("encoder", "decoder"), loss): 1005 training samples in batches of
    502 leave a last batch of one sample, so rank 1's share is empty and it passes None, taking part in the
    all-reduce with no weight."""
    from gpunet.cli import main
    from gpunet.config import dump_config

    from test_distributed import assert_close_runs, mpiexec

    path = tmp_path / "ae.yaml"
    dump_config(_config("sparse_l1", extra=["trainer.batch_size=502", "trainer.eval_batch_size=100"]), path)
    assert main(["train", str(path), "--out", str(tmp_path / "single"), "--no-progress"]) == 0
    capsys.readouterr()
    result = mpiexec(tmp_path, 2, "train", path, "--out", tmp_path / "run", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert_close_runs(tmp_path / "run", tmp_path / "single")
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    expected = json.loads((tmp_path / "single/summary.json").read_text())
    assert summary["world_size"] == 2
    for key in ("train_mse", "train_sparsity", "val_mse", "test_mse", "test_baseline_mse"):
        assert summary[key] == pytest.approx(expected[key], rel=1e-5), key
