"""configs/dbn_digits.yaml, rbm_digits.yaml, perceptron_and.yaml and mlp_xor.yaml: what they describe, each run
end to end on tiny settings on both backends, and a DBN run resumed between its stages equal to an uninterrupted
one (through the runner, every file of the run directory)."""
import json
from pathlib import Path

import pytest

from gpunet.config import load_config
from gpunet.runner.run import run

from runcompare import assert_same_run

CONFIGS = Path(__file__).parents[2] / "configs"
TINY_DBN = ("trainer.epochs=4", "task.rbm_epochs=1", "task.hidden=[16, 8]", "trainer.batch_size=64")


def train(name, run_dir, *overrides, resume=False):
    config = load_config(CONFIGS / name, list(overrides))
    return run(config, str(run_dir), resume=resume, config_name=name[:-5], progress=False, announce_device=False)


def records(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_dbn_digits_is_seed_002s_example():
    config = load_config(CONFIGS / "dbn_digits.yaml")
    assert config["task"] == {"type": "dbn", "hidden": [256, 256], "rbm_epochs": 10, "rbm_lr": 0.05, "k": 1,
                              "persistent": False, "activation": "relu", "dropout": 0.2}
    assert config["optimizer"]["name"] == "sgd" and config["optimizer"]["lr"] == 0.1
    assert config["trainer"]["batch_size"] == 32 and config["trainer"]["epochs"] == 2 * 10 + 100
    assert config["data"]["name"] == "digits" and config["data"]["test_split"] == 0.25
    assert config["data"]["normalize"] == "scale"  # Bernoulli units need [0, 1]


def test_mlp_xor_has_one_hidden_layer():
    layers = load_config(CONFIGS / "mlp_xor.yaml")["model"]["layers"]
    assert [layer["type"] for layer in layers] == ["Linear", "Tanh", "Linear"]


@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_dbn_digits_trains_its_stages(tmp_path, device):
    summary = train("dbn_digits.yaml", tmp_path / "run", f"device={device}", *TINY_DBN)
    assert [r["pretraining_layer"] for r in records(tmp_path / "run")] == [1, 2, 0, 0]
    assert summary["epochs"] == 4 and 0 <= summary["test_accuracy"] <= 1
    assert (tmp_path / "run/filters.png").exists()


@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_rbm_digits_logs_its_figures(tmp_path, device):
    summary = train("rbm_digits.yaml", tmp_path / "run", f"device={device}", "trainer.epochs=2",
                    "task.n_hidden=16", "trainer.batch_size=100")
    first, last = records(tmp_path / "run")
    assert last["val_recon_error"] < first["val_recon_error"] and last["val_pseudo_likelihood"] < 0
    assert summary["test_recon_error"] == summary["test_loss"] and "test_pseudo_likelihood" in summary
    assert (tmp_path / "run/filters.png").exists()


@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_perceptron_and_converges_and_xor_does_not(tmp_path, device):
    summary = train("perceptron_and.yaml", tmp_path / "and", f"device={device}")
    assert (summary["converged"], summary["converged_epoch"], summary["epochs"]) == (True, 2, 2)
    summary = train("perceptron_and.yaml", tmp_path / "xor", f"device={device}", "data.gate=xor",
                    "trainer.epochs=10")
    assert (summary["converged"], summary["epochs"]) == (False, 10)


@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_mlp_xor_solves_xor(tmp_path, device):
    summary = train("mlp_xor.yaml", tmp_path / "run", f"device={device}", "trainer.epochs=20")
    assert summary["test_accuracy"] == 1.0  # 0.5 for any linear model on the four corners


@pytest.fixture(scope="module")
def uninterrupted_dbn(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("dbn") / "run"
    train("dbn_digits.yaml", run_dir, "device=cpu", *TINY_DBN)
    return run_dir


@pytest.mark.parametrize("stop_after", [1, 2], ids=["rbm1-to-rbm2", "rbm2-to-fine-tuning"])
def test_a_dbn_run_resumed_between_stages_equals_the_uninterrupted_run(uninterrupted_dbn, tmp_path, stop_after):
    overrides = [o for o in TINY_DBN if not o.startswith("trainer.epochs")]
    train("dbn_digits.yaml", tmp_path / "run", "device=cpu", f"trainer.epochs={stop_after}", *overrides)
    train("dbn_digits.yaml", tmp_path / "run", "device=cpu", *TINY_DBN, resume=True)
    assert_same_run(tmp_path / "run", uninterrupted_dbn)
