"""scripts/autoencoder_digits.py: seed 002's 64-32-64 autoencoder, trained briefly on the digits, reconstructs test
images far better than the training mean image does, and writes the comparison PNG.

Measured on the CPU with Adam, step 0.01, 10 epochs: test MSE / mean-image baseline 0.115..0.154 for seeds 0..3
(0.140 for seed 0; the untrained network is at 2.45), the mean training MSE falling 7.5-fold from the first
epoch to the tenth; the test allows 0.3 and a 2-fold fall.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
from gpunet.data import load_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import autoencoder_digits  # noqa: E402


def test_network_is_the_seeds_undercomplete_autoencoder():
    net = autoencoder_digits.autoencoder(64, 32)
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear", "Sigmoid"]
    assert {k: v.shape for k, v in net.state_dict().items()} == {
        "0.weight": (32, 64), "0.bias": (32,), "2.weight": (64, 32), "2.bias": (64,)}


def test_short_training_beats_the_mean_image_and_plots(tmp_path, capsys):
    png = tmp_path / "ae.png"
    result = autoencoder_digits.main(["--epochs", "10", "--lr", "0.01", "--quiet", "--plot", str(png)])

    data = load_dataset("digits", seed=0, validation_split=0.0, flatten=True, normalize="scale")
    x_train, x_test = data.train.x.astype(np.float64), data.test.x.astype(np.float64)
    assert x_train.shape[1] == 64 and 0.0 <= x_train.min() and x_train.max() == 1.0
    assert result["baseline_mse"] == pytest.approx(np.mean((x_train.mean(axis=0) - x_test) ** 2), rel=1e-9)
    with gn.no_grad():
        reconstructions = result["net"](gn.tensor(data.test.x)).numpy().astype(np.float64)
    assert result["test_mse"] == pytest.approx(np.mean((reconstructions - x_test) ** 2), rel=1e-6)

    losses = result["losses"]
    assert len(losses) == 10 and losses[-1] < 0.5 * losses[0]
    assert result["ratio"] < 0.3
    assert "mean-image baseline" in capsys.readouterr().out

    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[1] > image.shape[0]  # two rows of ten images: wider than tall
