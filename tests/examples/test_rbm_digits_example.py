"""scripts/rbm_digits.py: a 64-32 Bernoulli RBM trained briefly by CD-1 (and by persistent CD-2) reconstructs the test
digits better than the mean training image, with the figures it prints recomputed here in float64 NumPy from its
weights; with --dbn, the greedily pre-trained, unrolled and fine-tuned net classifies the test digits.

Measured on the CPU, 6 epochs of SGD at 0.1, batch 10: test reconstruction error 0.0446..0.0457 for seeds 0..3
(persistent CD 0.047) against 0.073 for the mean training image; the tests allow 0.06. The DBN 64-32-10 after one
RBM epoch and 3 fine-tuning epochs: 0.892..0.944 for seeds 1..3; the test allows 0.8.
"""
import sys
from pathlib import Path

import numpy as np
import pytest

from gpunet.data import load_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import rbm_digits  # noqa: E402

TINY = ["--epochs", "6", "--hidden", "32", "--lr", "0.1"]


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("extra", [[], ["--persistent", "--k", "2"]], ids=["cd1", "pcd2"])
def test_the_rbm_reconstructs_better_than_the_mean_image(capsys, extra):
    result = rbm_digits.main(TINY + extra)
    data = load_dataset("digits", seed=0, validation_split=0.0, flatten=True, normalize="scale")
    x_train, x_test = data.train.x.astype(np.float64), data.test.x.astype(np.float64)
    state = {k: v.astype(np.float64) for k, v in result["rbm"].state_dict().items()}
    hidden = _sigmoid(x_test @ state["weight"].T + state["h_bias"])
    reconstruction = _sigmoid(hidden @ state["weight"] + state["v_bias"])
    assert result["recon_error"][-1] == pytest.approx(np.mean((x_test - reconstruction) ** 2), rel=1e-5)
    assert result["baseline"] == pytest.approx(np.mean((x_test - x_train.mean(axis=0)) ** 2), rel=1e-9)
    assert len(result["recon_error"]) == 6 and result["recon_error"][-1] < 0.06 < result["baseline"]
    assert result["pseudo_likelihood"][-1] > result["pseudo_likelihood"][0]
    out = capsys.readouterr().out
    assert "test reconstruction error" in out and "mean training image" in out


def test_the_dbn_pretrains_unrolls_and_classifies(capsys):
    result = rbm_digits.main(["--dbn", "--dbn-hidden", "32", "--epochs", "1", "--finetune-epochs", "3", "--seed", "1"])
    data = load_dataset("digits", seed=1, validation_split=0.0, flatten=True, normalize="scale")
    state = {k: v.astype(np.float64) for k, v in result["net"].classifier.state_dict().items()}
    hidden = np.maximum(data.test.x @ state["0.weight"].T + state["0.bias"], 0)  # Linear, ReLU, Dropout, Linear
    logits = hidden @ state["3.weight"].T + state["3.bias"]
    assert result["test_accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == data.test.y), abs=1e-12)
    assert result["test_accuracy"] > 0.8  # ten classes: chance is 0.1
    assert "RBM 1: reconstruction error" in capsys.readouterr().out
