"""The architectures through the config registry (``model: {arch: ..., args: ...}``): ``gpunet summary``'s layer
table (names, output shapes, parameter counts) against PyTorch models built from the same layer lists, seed 000's
CIFAR network built from a config, and the shipped configs that use them, run on small IDX files written here."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from test_models import torch_cifar_cnn, torch_lenet5, torch_resnet

import gpunet
from gpunet.cli import main
from gpunet.config import build_model, loads_config

CONFIGS = Path(__file__).parents[2] / "configs"
TRAINING = ("loss: {name: cross_entropy}\noptimizer: {name: sgd}\ntrainer: {epochs: 1}\ndevice: cpu\n"
            "data: {name: digits}\n")


def gpunet_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def summary_rows(text):
    """{layer name: (type, output shape, params)} of the printed table."""
    rows = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1].startswith("(") and parts[1].endswith(")") and parts[-1] == "NumPy":
            rows[parts[0]] = (parts[1].strip("()"), " ".join(parts[2:-2]), int(parts[-2].replace(",", "")))
    return rows


def keras_count(model) -> int:
    statistics = sum(b.numel() for n, b in model.named_buffers() if n.rsplit(".", 1)[-1] != "num_batches_tracked")
    return sum(p.numel() for p in model.parameters()) + statistics


def torch_rows(model, input_shape):
    """The same table from PyTorch: each leaf module's output shape (forward hooks) and parameter count, the
    BatchNorm running statistics counted as non-trainable parameters as Keras' summary does."""
    rows = {}

    def hook(name):
        def record(module, inputs, output):
            shape = "(None, " + ", ".join(str(d) for d in output.shape[1:]) + ")"
            rows[name] = (type(module).__name__, shape, keras_count(module))
        return record

    for name, module in model.named_modules():
        if name and not list(module.children()):
            module.register_forward_hook(hook(name))
    model.eval()
    with torch.no_grad():
        model(torch.zeros((2, *input_shape)))
    return rows



@pytest.mark.parametrize("arch, args, input_shape, reference, total", [
    ("lenet5", {"input_size": 28}, (1, 28, 28), lambda: torch_lenet5(input_size=28), 61_706),
    ("lenet5", {}, (1, 32, 32), lambda: torch_lenet5(), 61_706),
    ("cifar_cnn", {}, (3, 32, 32), lambda: torch_cifar_cnn(), 122_570),
    ("resnet", {"depth": 18, "width": 16, "in_channels": 1, "input_size": 28}, (1, 28, 28),
     lambda: torch_resnet(18, width=16, in_channels=1), None),
    ("resnet", {"depth": 18, "width": 8, "preact": True}, (3, 32, 32),
     lambda: torch_resnet(18, width=8, preact=True), None),
])
def test_gpunet_summary_of_each_arch_matches_pytorch(capsys, tmp_path, arch, args, input_shape, reference, total):
    config = tmp_path / "arch.yaml"
    config.write_text(TRAINING + f"model: {{arch: {arch}, args: {json.dumps(args)}}}\n")
    out = gpunet_cli(capsys, "summary", config, "--input-shape", ",".join(map(str, input_shape)))
    rows = summary_rows(out)
    expected = torch_rows(reference(), input_shape)
    assert rows == expected
    model = reference()
    expected_total, trainable = keras_count(model), sum(p.numel() for p in model.parameters())
    assert total in (None, expected_total)
    assert f"Total params: {expected_total:,}" in out and f"Trainable params: {trainable:,}" in out


def test_seed_000s_cifar_network_from_the_config_registry():
    """Seed 000's Keras model: Conv2D(32, 3) relu, MaxPooling2D 2, Conv2D(64, 3) relu, MaxPooling2D 2,
    Conv2D(64, 3) relu, Flatten, Dense(64) relu, Dense(10); Keras' summary: 896, 18,496, 36,928, 65,600, 650."""
    model = build_model(loads_config(TRAINING + "model: {arch: cifar_cnn}\n"))
    table = model.summary((3, 32, 32), print_fn=None)
    shapes = [(r.output_shape, r.params) for r in table.rows]
    assert shapes == [("(None, 32, 30, 30)", 896), ("(None, 32, 30, 30)", 0), ("(None, 32, 15, 15)", 0),
                      ("(None, 64, 13, 13)", 18_496), ("(None, 64, 13, 13)", 0), ("(None, 64, 6, 6)", 0),
                      ("(None, 64, 4, 4)", 36_928), ("(None, 64, 4, 4)", 0), ("(None, 1024)", 0),
                      ("(None, 64)", 65_600), ("(None, 64)", 0), ("(None, 10)", 650)]
    assert table.total == 122_570
    model.eval()
    assert model(gpunet.zeros((5, 3, 32, 32))).shape == (5, 10)


@pytest.mark.parametrize("args, path, message", [
    ("{input_size: 30}", "model.args.input_size", "must be one of 32, 28"),
    ("{activation: softsign}", "model.args.activation", "unknown activation"),
])
def test_lenet5_arguments_out_of_range_name_the_key(args, path, message):
    from gpunet.config import ConfigError
    with pytest.raises(ConfigError, match=rf"{path}: {message}"):
        loads_config(TRAINING + f"model: {{arch: lenet5, args: {args}}}\n")


@pytest.mark.parametrize("args, path, message", [
    ("{depth: 20}", "model.args.depth", "must be one of 18, 34, 50, 101, 152"),
    ("{depth: 50, preact: true}", "model.args.preact",
     "is for the basic-block depths 18 or 34 \\(pre-activation blocks are basic blocks\\), not depth 50"),
])
def test_resnet_arguments_out_of_range_name_the_key(args, path, message):
    from gpunet.config import ConfigError
    with pytest.raises(ConfigError, match=rf"{path}: {message}"):
        loads_config(TRAINING + f"model: {{arch: resnet, args: {args}}}\n")


# ----- the shipped configs, on small data --------------------------------------------------------------------------
def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed IDX file of unsigned bytes (the MNIST layout)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fashion_dir(tmp_path: Path, n_train: int = 40, n_test: int = 10) -> Path:
    """Fashion-MNIST-named IDX files of random 28x28 images (the first pixel is the label)."""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 256, (n, 28, 28))
        images[:, 0, 0] = labels
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels)
    return tmp_path


@pytest.mark.parametrize("name, total", [("lenet_fashion.yaml", 61_706), ("resnet_fashion.yaml", 703_578)])
def test_fashion_configs_dry_run_and_train_on_small_idx_files(capsys, tmp_path, name, total):
    (tmp_path / "data").mkdir()
    data = fashion_dir(tmp_path / "data")
    out = gpunet_cli(capsys, "summary", CONFIGS / name, f"data.path={data}", "device=cpu")
    assert "input (1, 28, 28)" in out and f"Total params: {total:,}" in out
    gpunet_cli(capsys, "train", CONFIGS / name, "--out", tmp_path / "run", "--no-progress", f"data.path={data}",
               "device=cpu", "trainer.epochs=1", "trainer.batch_size=16")
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and np.isfinite(lines[0]["train_loss"])


def test_lenet_mnist5k_dry_runs_on_its_data(capsys):
    out = gpunet_cli(capsys, "summary", CONFIGS / "lenet_mnist5k.yaml", "device=cpu")
    assert "input (1, 28, 28)" in out and "Total params: 61,706" in out
    assert summary_rows(out)["0"] == ("Conv2d", "(None, 6, 28, 28)", 156)  # padding 2 keeps the paper's 28x28
