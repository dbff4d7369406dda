"""The model's dry run before any training work: a layer that does not fit the shape it receives is a ConfigError
naming ``model.layers[i] (Type)``, the file and line or override, the shape, what the layer expects and a hint;
no traceback, nothing written to the run directory; a valid config's dry run is one cheap pass that changes
nothing. Also: internal errors of the command are one line unless GPUNET_DEBUG is set."""
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gpunet
from gpunet import cli
from gpunet.cli import main
from gpunet.config import ConfigError, build_model, check_model, load_config, loads_config
from gpunet.nn import Module
from gpunet.runner import run as run_module
from gpunet.runner.run import check_run

ROOT = Path(__file__).resolve().parents[2]
CNN = ROOT / "configs" / "cnn_digits.yaml"


def gpunet_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_linear_after_flatten_with_the_wrong_in_features(capsys):
    status, out, err = gpunet_cli(capsys, "summary", CNN, "device=cpu", "model.layers[4].in_features=150")
    assert status == 1 and out == ""
    message = err.splitlines()[-1]
    assert message.startswith("gpunet summary: error: override 'model.layers[4].in_features=150': "
                              "model.layers[4] (Linear): ")
    assert "receives input of shape (2, 160) and expects in_features = 150" in message
    assert "does not fit weight of shape (50, 150)" in message  # the layer's own words
    assert message.endswith("hint: the previous layer, model.layers[3] (Flatten), outputs 160 features: "
                            "set in_features: 160")


def test_conv_with_the_wrong_in_channels_stops_train_before_the_run_directory(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "gpunet.cli", "train", str(CNN), "device=cpu",
                           "model.layers[0].in_channels=3", "--out", str(out)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" not in done.stderr
    message = done.stderr.strip().splitlines()[-1]
    assert "override 'model.layers[0].in_channels=3': model.layers[0] (Conv2d): " in message
    assert "receives input of shape (2, 1, 8, 8) and expects in_channels = 3 along axis 1" in message
    assert message.endswith("hint: the data (digits) gives samples of shape (1, 8, 8), that is 1 channels: "
                            "set in_channels: 1")
    assert not out.exists()


def write(tmp_path, text, name="cfg.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


CNN_TEXT = CNN.read_text()


def test_a_fault_in_the_file_names_its_line(tmp_path, capsys):
    path = write(tmp_path, CNN_TEXT.replace("in_features: 160", "in_features: 128"))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "in_features: 128" in text)
    status, _, err = gpunet_cli(capsys, "summary", path, "device=cpu")
    assert status == 1
    assert f"error: {path}:{line}: model.layers[4] (Linear): " in err
    assert "set in_features: 160" in err


@pytest.mark.parametrize("override, located, hint", [
    ("data.flatten=true", "model.layers[0] (Conv2d)", "set data.flatten: false"),
    ("model.layers[3]={type: ReLU}", "model.layers[4] (Linear)",
     "outputs (2, 10, 4, 4); Linear works on the last axis: add {type: Flatten} before it and set in_features: 160"),
    ("model.layers[0].padding=0", "model.layers[4] (Linear)", "outputs 90 features: set in_features: 90"),
    ("model.layers[2].kernel_size=20", "model.layers[2] (MaxPool2d)", "gives an output of size (0, 0), too small"),
    ("model.layers[6].out_features=5", "model.layers[6] (Linear)",
     "output (shape (2, 5) for a batch of 2) does not fit loss cross_entropy, which needs (2, C) class scores with "
     "C >= 10; the data has 10 classes; hint: set out_features: 10"),
    ("loss.name=bce", "loss.name", "needs one score per sample, (2,) or (2, 1), and data with 2 classes; the data "
                                   "has 10 classes; hint: for 10 classes use cross_entropy"),
])
def test_other_shape_faults_name_the_layer_and_the_fix(override, located, hint):
    config = load_config(CNN, ["device=cpu", override])
    info = run_module.build_dataset(config).info
    with pytest.raises(ConfigError) as caught:
        check_run(config, info)
    (problem,) = caught.value.problems
    from_override = override.startswith(("loss", "model.layers[6]"))  # the fault is at the overridden key
    assert str(problem).startswith(f"override '{override}': " if from_override else f"{CNN}:")
    assert f": {located}: " in str(problem) and hint in str(problem)


MLP = """\
seed: 0
device: cpu
data: {name: digits, flatten: true, normalize: scale}
model: {arch: mlp, args: {in_features: 60, hidden: [8], out_features: 10}}
loss: {name: cross_entropy}
optimizer: {name: sgd, lr: 0.1}
trainer: {epochs: 1}
"""


def test_an_arch_with_a_bad_argument_names_model_and_the_error(tmp_path, capsys):
    path = write(tmp_path, MLP)
    status, out, err = gpunet_cli(capsys, "train", path, "--out", tmp_path / "run")
    assert status == 1 and out == ""
    assert f"error: {path}:4: model: the dry run on a zero batch of shape (2, 64) failed: ValueError: linear: " \
           "input of shape (2, 64) does not fit weight of shape (8, 60)" in err
    assert "hint: check model.args against the samples of shape (64,) from the data (digits)" in err
    assert not (tmp_path / "run").exists()


class Broken(Module):
    """A user model whose forward fails on the data it is given."""

    def __init__(self, width):
        super().__init__()
        self.width = width

    def forward(self, x):
        raise IndexError(f"no column {self.width} in input of shape {tuple(x.shape)}")


def test_an_imported_model_that_fails_names_model_and_the_error(tmp_path, capsys):
    config = MLP.replace("model: {arch: mlp, args: {in_features: 60, hidden: [8], out_features: 10}}",
                         f"model: {{import: '{__name__}:Broken', args: {{width: 99}}}}")
    status, _, err = gpunet_cli(capsys, "summary", write(tmp_path, config))
    assert status == 1
    assert "model: the dry run on a zero batch of shape (2, 64) failed: IndexError: no column 99 in input of shape " \
           "(2, 64); hint: check " + __name__ + ":Broken and its args against the samples of shape (64,)" in err


def test_a_bad_combination_stops_a_sweep_before_any_training(tmp_path, capsys):
    out = tmp_path / "sweep"
    status, stdout, err = gpunet_cli(capsys, "sweep", CNN, "device=cpu", "--grid",
                                     "model.layers[4].in_features=160,150", "--out", out)
    assert status == 1 and stdout == ""
    assert "override 'model.layers[4].in_features=150': model.layers[4] (Linear): " in err
    assert not out.exists()


DROPOUT_BN = """\
seed: 3
device: cpu
data: {name: digits, flatten: true}
model:
  layers:
    - {type: Linear, in_features: 64, out_features: 16}
    - {type: BatchNorm1d, num_features: 16}
    - {type: Dropout, p: 0.5}
    - {type: Linear, in_features: 16, out_features: 10}
loss: {name: cross_entropy}
optimizer: {name: sgd, lr: 0.1}
trainer: {epochs: 1}
"""


def test_a_valid_dry_run_is_one_pass_that_changes_nothing(monkeypatch):
    config = loads_config(DROPOUT_BN)
    gpunet.manual_seed(3)
    model = build_model(config)
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    rng = gpunet.random.get_rng_state()
    calls = []
    original = Module.__call__

    def counting(self, *args, **kwargs):
        calls.append((type(self).__name__, tuple(args[0].shape)))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Module, "__call__", counting)
    started = time.perf_counter()
    check_model(config, model, (64,), 10)
    assert time.perf_counter() - started < 1.0  # a forward pass on 2 samples, no training
    assert calls == [("Linear", (2, 64)), ("BatchNorm1d", (2, 16)), ("Dropout", (2, 16)), ("Linear", (2, 16)),
                     ("CrossEntropyLoss", (2, 10))]  # then the loss, once, on the output
    assert model.training and gpunet.random.get_rng_state() == rng
    after = model.state_dict()  # weights and BatchNorm running statistics untouched
    assert before.keys() == after.keys()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_the_run_directory_is_created_only_after_the_dry_run(tmp_path, monkeypatch, capsys):
    out, seen = tmp_path / "run", []

    def check_then_record(*args, **kwargs):
        seen.append(out.exists())
        return check_model(*args, **kwargs)

    monkeypatch.setattr(run_module, "check_model", check_then_record)
    fits = []
    monkeypatch.setattr(run_module.Trainer, "fit", lambda self, *a, **k: fits.append(out.exists()))
    monkeypatch.setattr(run_module, "final_metrics", lambda built: {})
    status, _, err = gpunet_cli(capsys, "train", write(tmp_path, DROPOUT_BN), "--out", out, "--no-progress")
    assert status == 0, err
    assert seen == [False] and fits == [True]


def test_an_internal_error_is_one_line_unless_debugging(tmp_path, capsys, monkeypatch):
    def broken(args):
        raise KeyError("some_internal_key")

    monkeypatch.setattr(cli, "cmd_summary", broken)
    monkeypatch.delenv("GPUNET_DEBUG", raising=False)
    status, _, err = gpunet_cli(capsys, "summary", CNN)
    assert status == 3
    assert err.splitlines() == ["gpunet summary: internal error: KeyError: 'some_internal_key' (this is likely a bug; "
                                "run again with GPUNET_DEBUG=1 to see the traceback, and report it with that "
                                "traceback and your config)"]
    monkeypatch.setenv("GPUNET_DEBUG", "1")
    with pytest.raises(KeyError, match="some_internal_key"):
        main(["summary", str(CNN)])


MSE_ON_LABELS = """\
seed: 0
device: cpu
data: {name: digits, flatten: true, normalize: scale}
model: {layers: [{type: Linear, in_features: 64, out_features: 10}]}
loss: {name: mse}
optimizer: {name: sgd, lr: 0.1}
trainer: {epochs: 1}
"""


def test_a_loss_that_cannot_take_the_class_labels_stops_train_before_the_run_directory(tmp_path, capsys):
    path, out = write(tmp_path, MSE_ON_LABELS), tmp_path / "run"
    status, stdout, err = gpunet_cli(capsys, "train", path, "--out", out)
    assert status == 1 and stdout == "" and "Traceback" not in err and not out.exists()
    assert err.strip().splitlines() == [
        f"gpunet train: error: {path}:5: loss.name: the dry run failed: loss mse on the model's output of shape "
        "(2, 10) and the class indices of shape (2,) that the data (digits) gives; hint: mse expects targets shaped "
        "like the model output, (2, 10); the data (digits) gives one class index per sample (10 classes), not "
        "one-hot rows: use loss: {name: cross_entropy} (or nll after a LogSoftmax), or make the model output one "
        "value per sample"]
    status, _, err = gpunet_cli(capsys, "train", path, "loss.name=l1", "--out", out)  # an override is named
    assert status == 1 and f"override 'loss.name=l1': loss.name: the dry run failed: loss l1 on" in err
    assert not out.exists()


@pytest.mark.parametrize("overrides", [
    ["model.layers[0].out_features=1"],  # one value per sample: the labels are reshaped to (2, 1), as in training
    ["loss.name=cross_entropy"],
    ["loss.name=nll", "model.layers=[{type: Linear, in_features: 64, out_features: 10}, {type: LogSoftmax, dim: 1}]"],
])
def test_losses_that_take_the_class_labels_pass_the_dry_run(overrides):
    config = loads_config(MSE_ON_LABELS, overrides)
    assert check_run(config).num_classes == 10

