"""The resolved config: plain values with every default, written as YAML and read back unchanged."""
import copy

import yaml

from gpunet.config import dump_config, load_config, loads_config, validate_config

from confighelpers import BASE, write


def _plain(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or type(value) in (bool, int, float, str)


RICH = BASE + """\
scheduler: {name: warmup, total_iters: 3}
callbacks:
  - {type: early_stopping, patience: 2, restore_best_weights: true}
  - {type: csv_logger}
  - {type: model_checkpoint, dir: best_acc, monitor: val_accuracy, keep: 3}
  - {type: progress, style: lines}
checkpoint: {every_n_epochs: 2}
"""


def test_resolved_config_has_every_default_filled_in():
    config = loads_config(BASE)
    assert list(config) == ["seed", "device", "allow_tf32", "data", "task", "model", "models", "loss", "optimizer",
                            "optimizers", "scheduler", "trainer", "callbacks", "checkpoint", "sweep"]
    assert config["allow_tf32"] is False
    assert config["task"] == {"type": "classify"} and config["models"] is None and config["optimizers"] is None
    assert config["data"] == {"name": "digits", "val_split": 0.1, "stratify": True, "normalize": "none",
                              "flatten": True, "classes": None, "train_per_class": None, "augment": [],
                              "test_split": 0.2}
    assert config["loss"] == {"name": "cross_entropy", "ignore_index": -100, "label_smoothing": 0.0,
                              "reduction": "mean"}
    assert config["model"]["layers"][0] == {"type": "Linear", "in_features": 64, "out_features": 50, "bias": True}
    assert config["trainer"] == {"epochs": 5, "batch_size": 10, "eval_batch_size": None, "shuffle": True,
                                 "drop_last": False, "log_every": 50, "grad_clip": None, "sync_batchnorm": False,
                                 "on_nonfinite": "stop", "metrics": ["accuracy"]}
    assert config["checkpoint"] == {"dir": "checkpoints", "save_best": True, "save_last": True, "keep": 1,
                                    "every_n_epochs": 1, "monitor": "val_loss", "mode": "min"}
    assert config["scheduler"] is None and config["callbacks"] == [] and config["sweep"] is None


def test_resolved_config_holds_only_plain_values():
    assert _plain(loads_config(RICH))


def test_dumped_config_loads_back_equal(tmp_path):
    config = load_config(write(tmp_path, RICH), ["optimizer.weight_decay=1e-5", "scheduler.start_factor=0.1"])
    path = tmp_path / "config.yaml"
    text = dump_config(config, path)
    assert path.read_text() == text
    assert load_config(path) == config
    assert yaml.safe_load(text) == config  # readable by any safe YAML loader


def test_resolving_twice_changes_nothing():
    config = loads_config(RICH)
    assert validate_config(copy.deepcopy(config)) == config


def test_strings_that_look_like_numbers_stay_strings(tmp_path):
    config = loads_config(BASE.replace("  flatten: true\n", "") .replace("name: digits", "name: csv\n  path: '1e3'"))
    assert config["data"]["path"] == "1e3"
    assert loads_config(dump_config(config))["data"]["path"] == "1e3"


def test_validation_does_not_change_its_input():
    data = yaml.safe_load(BASE)
    before = copy.deepcopy(data)
    validate_config(data)
    assert data == before
