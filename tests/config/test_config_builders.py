"""Builders: the objects a config names behave exactly like the PyTorch objects with the same arguments."""
import sys

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.data import load_dataset
from gpunet.config import (ConfigError, LAYERS, LOSSES, OPTIMIZERS, SCHEDULERS, build_dataset, build_loss,
                           build_model, build_optimizer, build_scheduler, dataset_options, loads_config)

from confighelpers import BASE, edited

LAYERS_YAML = BASE[BASE.index("  layers:"):BASE.index("loss:")]


@pytest.fixture(autouse=True)
def on_cpu():
    previous = gn.get_device()
    gn.set_device("cpu")
    yield
    gn.set_device(previous)


def _same_weights(ours, theirs: torch.nn.Module) -> None:
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})


def _forward(module, x: np.ndarray) -> np.ndarray:
    module.eval()
    with gn.no_grad():
        return np.asarray(module(gn.tensor(x)).data)


def test_layers_build_a_sequential_that_computes_like_torch():
    model = build_model(loads_config(BASE))
    reference = torch.nn.Sequential(torch.nn.Linear(64, 50), torch.nn.Sigmoid(), torch.nn.Dropout(0.2),
                                    torch.nn.Linear(50, 10)).eval()
    _same_weights(model, reference)
    x = np.random.default_rng(0).standard_normal((5, 64)).astype(np.float32)
    np.testing.assert_allclose(_forward(model, x), reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    assert [type(m).__name__ for m in model] == ["Linear", "Sigmoid", "Dropout", "Linear"]
    assert model[2].p == 0.2


NON_DEFAULT = {  # a setting of every layer's arguments that differs from PyTorch's defaults where it can
    "Linear": {"in_features": 6, "out_features": 4, "bias": False},
    "Flatten": {"start_dim": 0, "end_dim": 1},
    "Dropout": {"p": 0.3},
    "Softmax": {"dim": 0}, "LogSoftmax": {"dim": 0},
    "LeakyReLU": {"negative_slope": 0.2}, "ELU": {"alpha": 0.5}, "GELU": {"approximate": "tanh"},
    "Softplus": {"beta": 2.0, "threshold": 1.0}, "PReLU": {"num_parameters": 1, "init": 0.1},
    "Hardtanh": {"min_val": -0.5, "max_val": 0.25},
    "MaxPool1d": {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "ceil_mode": True},
    "MaxPool2d": {"kernel_size": [2, 3], "stride": [1, 2], "padding": 1, "ceil_mode": True},
    "AvgPool1d": {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
    "AvgPool2d": {"kernel_size": [3, 2], "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False},
    "AdaptiveAvgPool1d": {"output_size": 4}, "AdaptiveAvgPool2d": {"output_size": [3, 4]},
    "BatchNorm1d": {"num_features": 6, "eps": 1e-3, "momentum": 0.2, "affine": False},
    "BatchNorm2d": {"num_features": 3, "eps": 1e-3, "track_running_stats": False},
    "SyncBatchNorm": {"num_features": 6, "eps": 1e-3, "momentum": 0.2},
    "Embedding": {"num_embeddings": 5, "embedding_dim": 3, "padding_idx": 1},
    "Conv1d": {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2,
               "groups": 2, "bias": False},
    "Conv2d": {"in_channels": 2, "out_channels": 4, "kernel_size": [3, 2], "stride": [1, 2], "padding": [1, 0],
               "dilation": [2, 1], "groups": 2},
    "ConvTranspose2d": {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1,
                        "output_padding": 1, "groups": 2},
    "LayerNorm": {"normalized_shape": [2, 3], "eps": 1e-3, "bias": False},
    "GroupNorm": {"num_groups": 2, "num_channels": 4, "eps": 1e-3},
    "Dropout2d": {"p": 0.3},
    "DepthwiseSeparableConv2d": {"in_channels": 2, "out_channels": 3, "kernel_size": [3, 2], "stride": 2,
                                 "padding": 1, "depth_multiplier": 2},
    "Upsample": {"scale_factor": 2.0, "mode": "bilinear", "align_corners": True},
}
INPUT_SHAPES = {"MaxPool2d": (2, 5, 6), "AvgPool2d": (2, 5, 6), "AdaptiveAvgPool2d": (2, 5, 6)}  # default (3, 6)
INPUT_SHAPES["BatchNorm2d"] = (2, 3, 4, 5)
INPUT_SHAPES.update({"Conv1d": (2, 4, 9), "Conv2d": (2, 2, 7, 6), "ConvTranspose2d": (2, 2, 4, 5)})
INPUT_SHAPES.update({"LayerNorm": (4, 2, 3), "GroupNorm": (2, 4, 3, 3), "Dropout2d": (2, 3, 4, 4),
                     "DepthwiseSeparableConv2d": (2, 2, 7, 6), "Upsample": (2, 3, 4, 5)})
INTEGER_INPUTS = {"Embedding": np.array([[0, 4, 1], [2, 2, 3]])}  # layers that take indices


class TorchSeparableConv2d(torch.nn.Module):
    """Keras' SeparableConv2D in PyTorch: a grouped (depthwise) convolution, then a 1x1 convolution."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, depth_multiplier=1):
        super().__init__()
        middle = in_channels * depth_multiplier
        self.depthwise = torch.nn.Conv2d(in_channels, middle, kernel_size, stride, padding, groups=in_channels,
                                         bias=False)
        self.pointwise = torch.nn.Conv2d(middle, out_channels, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


TORCH_CLASSES = {"DepthwiseSeparableConv2d": TorchSeparableConv2d}  # layers torch.nn does not have


SEQUENCE_LAYERS = {"RNN", "LSTM", "GRU", "TransformerEncoderLayer", "PositionalEncoding", "LearnedPositionalEncoding",
                   "ConvLSTM"}  # tested below (ConvLSTM has no PyTorch class: tests/nn/test_convlstm.py)


@pytest.mark.parametrize("layer", sorted(set(LAYERS) - SEQUENCE_LAYERS))
def test_every_registered_layer_builds_with_its_pytorch_arguments(layer):
    args = NON_DEFAULT.get(layer, {})
    written = ", ".join(f"{k}: {v}" for k, v in args.items())
    config = loads_config(edited(LAYERS_YAML, f"  layers: [{{type: {layer}, {written}}}]\n"))
    torch_args = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    ours = build_model(config)[0]
    theirs = (TORCH_CLASSES.get(layer) or getattr(torch.nn, layer))(**torch_args).eval()
    _same_weights(ours, theirs)
    x = np.random.default_rng(1).standard_normal(INPUT_SHAPES.get(layer, (3, 6))).astype(np.float32)
    x = INTEGER_INPUTS.get(layer, x)
    np.testing.assert_allclose(_forward(ours, x), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def _layer_from_config(written: str):
    return build_model(loads_config(edited(LAYERS_YAML, f"  layers: [{{{written}}}]\n")))[0]


@pytest.mark.parametrize("layer, written, torch_args", [
    ("RNN", "input_size: 6, hidden_size: 4, num_layers: 2, nonlinearity: relu, bidirectional: true",
     {"nonlinearity": "relu", "num_layers": 2, "bidirectional": True}),
    ("LSTM", "input_size: 6, hidden_size: 4, bias: false", {"bias": False}),
    ("GRU", "input_size: 6, hidden_size: 4, num_layers: 2", {"num_layers": 2}),
])
def test_recurrent_layers_in_a_list_are_batch_first_and_return_the_last_state(layer, written, torch_args):
    """Inside model.layers a recurrent layer reads (N, L, features) and returns (N, D*H): the last layer's final
    hidden state of each direction, as Keras' default; return_mode: sequence gives PyTorch's output."""
    theirs = getattr(torch.nn, layer)(6, 4, batch_first=True, **torch_args).eval()
    x = np.random.default_rng(2).standard_normal((3, 5, 6)).astype(np.float32)
    output, h_n = theirs(torch.from_numpy(x))
    h_n = (h_n[0] if layer == "LSTM" else h_n).detach().numpy()
    directions = 2 if torch_args.get("bidirectional") else 1
    last = np.concatenate(list(h_n[-directions:]), axis=-1)
    for mode, expected in (("last", last), ("sequence", output.detach().numpy())):
        ours = _layer_from_config(f"type: {layer}, {written}" + (", return_mode: sequence" if mode == "sequence"
                                                                  else ""))
        assert ours.batch_first and ours.return_mode == mode
        _same_weights(ours, theirs)
        np.testing.assert_allclose(_forward(ours, x), expected, rtol=1e-5, atol=1e-6)


def test_masked_lstm_in_a_list_reads_each_sequence_at_its_last_real_token():
    """mask_value: 0.0 after Embedding(padding_idx=0): pre- and post-padded reviews give the unpadded one's state."""
    config = loads_config(edited(LAYERS_YAML, "  layers: [{type: Embedding, num_embeddings: 9, embedding_dim: 3, "
                                 "padding_idx: 0}, {type: LSTM, input_size: 3, hidden_size: 4, mask_value: 0.0}]\n"))
    model = build_model(config)
    tokens = np.array([[5, 2, 7, 0, 0], [0, 0, 5, 2, 7], [5, 2, 7, 3, 1]])
    embed, lstm = torch.nn.Embedding(9, 3, padding_idx=0), torch.nn.LSTM(3, 4, batch_first=True)
    _same_weights(model[0], embed)
    _same_weights(model[1], lstm)
    with torch.no_grad():
        _, (alone, _) = lstm(embed(torch.tensor([[5, 2, 7]])))
    got = _forward(model, tokens)
    np.testing.assert_allclose(got[:2], np.repeat(alone[0].numpy(), 2, axis=0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got[2], got[0])


def test_transformer_encoder_layer_in_a_list_is_pytorchs_batch_first():
    theirs = torch.nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, activation="gelu", batch_first=True,
                                              norm_first=True).eval()
    ours = _layer_from_config("type: TransformerEncoderLayer, d_model: 8, nhead: 2, dim_feedforward: 16, "
                              "activation: gelu, norm_first: true")
    _same_weights(ours, theirs)
    x = np.random.default_rng(3).standard_normal((3, 5, 8)).astype(np.float32)
    np.testing.assert_allclose(_forward(ours, x), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match=r"model.layers\[0\].nhead: must divide d_model \(8\)"):
        _layer_from_config("type: TransformerEncoderLayer, d_model: 8, nhead: 3")


def test_positional_encodings_in_a_list_add_their_table_batch_first():
    x = np.random.default_rng(4).standard_normal((2, 5, 6)).astype(np.float32)
    position, i = np.arange(5)[:, None], np.arange(0, 6, 2)
    table = np.zeros((5, 6))
    table[:, 0::2], table[:, 1::2] = np.sin(position / 10000 ** (i / 6)), np.cos(position / 10000 ** (i / 6))
    fixed = _layer_from_config("type: PositionalEncoding, d_model: 6")
    np.testing.assert_allclose(_forward(fixed, x), x + table, rtol=1e-5, atol=1e-6)
    learned = _layer_from_config("type: LearnedPositionalEncoding, d_model: 6, max_len: 7")
    weight = np.asarray(learned.embedding.weight.data)
    np.testing.assert_allclose(_forward(learned, x), x + weight[:5], rtol=1e-6)


def test_mlp_arch_is_the_same_network_as_its_layers():
    arch = edited(LAYERS_YAML, "  arch: mlp\n  args: {in_features: 64, hidden: [50], out_features: 10, "
                  "activation: Sigmoid, dropout: 0.2}\n")
    built = build_model(loads_config(arch))
    assert [(type(m).__name__, getattr(m, "in_features", None), getattr(m, "out_features", None)) for m in built] == \
        [("Linear", 64, 50), ("Sigmoid", None, None), ("Dropout", None, None), ("Linear", 50, 10)]


def test_user_model_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        "import gpunet.nn as nn\n"
        "class Tiny(nn.Module):\n"
        "    def __init__(self, width):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(64, width)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x)\n"
        "def not_a_module(width):\n"
        "    return width\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = build_model(loads_config(edited(LAYERS_YAML, "  import: my_models:Tiny\n  args: {width: 7}\n")))
    assert type(model).__name__ == "Tiny" and model.fc.out_features == 7
    with pytest.raises(ConfigError, match=r"model.import: cannot import it: .*got 'my_modelz:Tiny'"):
        build_model(loads_config(edited(LAYERS_YAML, "  import: my_modelz:Tiny\n")))
    with pytest.raises(ConfigError, match=r"model.args: Tiny rejected its arguments \{'depth': 2\}"):
        build_model(loads_config(edited(LAYERS_YAML, "  import: my_models:Tiny\n  args: {depth: 2}\n")))
    with pytest.raises(ConfigError, match=r"model.import: not_a_module is not a class but a function; nothing was "
                       r"called; .*allowed: 'package.module:ClassName' of a gpunet.nn.Module subclass"):
        build_model(loads_config(edited(LAYERS_YAML, "  import: my_models:not_a_module\n  args: {width: 2}\n")))
    sys.modules.pop("my_models", None)


# ------------------------------------------------------------------------------------------------ losses
LOSS_CASES = {  # name: (non-default arguments, kind of input, kind of target)
    "cross_entropy": ({"label_smoothing": 0.1, "ignore_index": 2}, "logits", "classes"),
    "nll": ({"reduction": "sum", "ignore_index": 1}, "log_probs", "classes"),
    "mse": ({"reduction": "sum"}, "real", "real"),
    "l1": ({}, "real", "real"),
    "smooth_l1": ({"beta": 0.5}, "real", "real"),
    "huber": ({"delta": 0.7}, "real", "real"),
    "bce": ({}, "probs", "binary"),
    "bce_with_logits": ({"reduction": "sum"}, "real", "binary"),
    "kl_div": ({"log_target": True}, "log_probs", "log_probs"),
}
TORCH_LOSSES = {"cross_entropy": "CrossEntropyLoss", "nll": "NLLLoss", "mse": "MSELoss", "l1": "L1Loss",
                "smooth_l1": "SmoothL1Loss", "huber": "HuberLoss", "bce": "BCELoss",
                "bce_with_logits": "BCEWithLogitsLoss", "kl_div": "KLDivLoss"}


def _loss_input(kind: str, rng) -> np.ndarray:
    x = rng.standard_normal((6, 4))
    if kind == "classes":
        return rng.integers(0, 4, 6)
    if kind == "binary":
        return rng.integers(0, 2, (6, 4)).astype(np.float64)
    if kind == "probs":
        return 1 / (1 + np.exp(-x))
    if kind == "log_probs":
        return x - np.log(np.exp(x).sum(1, keepdims=True))
    return x


def test_loss_table_covers_every_registered_loss():
    assert set(LOSS_CASES) == set(LOSSES) == set(TORCH_LOSSES)


@pytest.mark.parametrize("name", sorted(LOSS_CASES))
def test_losses_compute_like_torch(name):
    args, input_kind, target_kind = LOSS_CASES[name]
    config = loads_config(edited("  name: cross_entropy\n", f"  name: {name}\n" +
                                 "".join(f"  {k}: {v}\n" for k, v in args.items())).replace("metrics", "m"))
    rng = np.random.default_rng(2)
    x, t = _loss_input(input_kind, rng), _loss_input(target_kind, rng)
    expected = getattr(torch.nn, TORCH_LOSSES[name])(**{**args, **({"reduction": "batchmean"} if name == "kl_div"
                                                                    else {})})(torch.from_numpy(x),
                                                                               torch.from_numpy(t))
    ours = build_loss(config)(gn.tensor(x), gn.tensor(t))
    np.testing.assert_allclose(float(np.asarray(ours.data)), expected.item(), rtol=1e-10)


# ------------------------------------------------------------------------------------------------ optimizers
OPTIMIZER_CASES = {
    "sgd": {"lr": 0.05, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.01, "nesterov": True},
    "adam": {"lr": 0.01, "betas": [0.8, 0.9], "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True},
    "adamw": {"lr": 0.01, "betas": [0.85, 0.95], "weight_decay": 0.05},
    "rmsprop": {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
    "adagrad": {"lr": 0.1, "lr_decay": 0.01, "initial_accumulator_value": 0.1, "weight_decay": 0.01},
    "adadelta": {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 0.01},
}
TORCH_OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop", "adagrad": "Adagrad",
                    "adadelta": "Adadelta"}


def _optimizer_config(name: str, args: dict) -> dict:
    section = "".join(f"  {k}: {v}\n" for k, v in args.items())
    return loads_config(edited("  name: sgd\n  lr: 0.1\n", f"  name: {name}\n{section}"))


def test_optimizer_table_covers_every_registered_optimizer():
    assert set(OPTIMIZER_CASES) == set(OPTIMIZERS) == set(TORCH_OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_CASES))
def test_optimizers_step_like_torch(name):
    args = OPTIMIZER_CASES[name]
    start = np.random.default_rng(3).standard_normal((3, 2))
    ours = gn.tensor(start.copy(), requires_grad=True)
    theirs = torch.tensor(start.copy(), requires_grad=True)
    optimizer = build_optimizer(_optimizer_config(name, args), [ours])
    reference = getattr(torch.optim, TORCH_OPTIMIZERS[name])([theirs], **{k: tuple(v) if isinstance(v, list) else v
                                                                           for k, v in args.items()})
    for _ in range(4):
        optimizer.zero_grad()
        ((ours * ours * ours).sum()).backward()
        optimizer.step()
        reference.zero_grad()
        ((theirs * theirs * theirs).sum()).backward()
        reference.step()
    np.testing.assert_allclose(np.asarray(ours.data), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert optimizer.param_groups[0]["lr"] == args["lr"]


# ------------------------------------------------------------------------------------------------ schedulers
SCHEDULER_CASES = {
    "step": ({"step_size": 2, "gamma": 0.5}, "StepLR"),
    "exponential": ({"gamma": 0.9}, "ExponentialLR"),
    "cosine": ({"T_max": 5, "eta_min": 0.01}, "CosineAnnealingLR"),
    "reduce_on_plateau": ({"factor": 0.5, "patience": 1, "mode": "max", "monitor": "val_accuracy"},
                          "ReduceLROnPlateau"),
    "warmup": ({"start_factor": 0.25, "total_iters": 4}, "LinearLR"),
}


def test_scheduler_table_covers_every_registered_scheduler():
    assert set(SCHEDULER_CASES) == set(SCHEDULERS)


@pytest.mark.parametrize("name", sorted(SCHEDULER_CASES))
def test_schedulers_change_the_learning_rate_like_torch(name):
    args, torch_name = SCHEDULER_CASES[name]
    config = loads_config(BASE + f"scheduler: {{name: {name}, {', '.join(f'{k}: {v}' for k, v in args.items())}}}\n")
    optimizer = build_optimizer(config, [gn.tensor(np.zeros(2), requires_grad=True)])
    scheduler = build_scheduler(config, optimizer)
    torch_args = {k: v for k, v in args.items() if k != "monitor"}
    reference_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    reference = getattr(torch.optim.lr_scheduler, torch_name)(reference_opt, **torch_args)
    metrics = [0.5, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7]
    ours, theirs = [], []
    for value in metrics:
        optimizer.step()
        reference_opt.step()
        if name == "reduce_on_plateau":
            scheduler.step(value)
            reference.step(value)
        else:
            scheduler.step()
            reference.step()
        ours.append(optimizer.param_groups[0]["lr"])
        theirs.append(reference_opt.param_groups[0]["lr"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert len(set(theirs)) > 1  # the schedule did change the rate


def test_no_scheduler_section_builds_nothing():
    config = loads_config(BASE)
    assert build_scheduler(config, build_optimizer(config, [gn.tensor(np.zeros(1), requires_grad=True)])) is None


# ------------------------------------------------------------------------------------------------ data
def test_dataset_options_follow_the_data_section():
    config = loads_config(edited("  flatten: true\n", "  flatten: true\n  normalize: scale\n  val_split: 0.2\n")
                          .replace("seed: 0", "seed: 7"))
    assert dataset_options(config) == {"seed": 7, "validation_split": 0.2, "stratify": True, "normalize": "scale",
                                       "flatten": True, "classes": None, "train_per_class": None, "test_split": 0.2}
    data = build_dataset(config)
    assert len(data.test) == 360 and len(data.train) + len(data.validation) == 1437
    assert abs(len(data.validation) - 0.2 * 1437) <= 10  # stratified: rounded per class
    assert data.info.input_shape == (64,) and float(data.train.x.max()) == 1.0
    direct = load_dataset("digits", seed=7, validation_split=0.2, normalize="scale", flatten=True)
    np.testing.assert_array_equal(data.validation.y, direct.validation.y)
    np.testing.assert_array_equal(data.train.x, direct.train.x)


def test_conv_lstm_in_a_list_returns_the_last_hidden_state():
    """Inside model.layers a ConvLSTM reads (N, T, C, H, W) and returns the last step's h (N, hidden, H, W)."""
    ours = _layer_from_config("type: ConvLSTM, in_channels: 2, hidden_channels: 3, kernel_size: [3, 1], num_layers: 2")
    full = gn.nn.ConvLSTM(2, 3, (3, 1), num_layers=2)
    full.load_state_dict(ours.state_dict())
    x = gn.tensor(np.random.default_rng(3).standard_normal((2, 4, 2, 5, 3)).astype(np.float32))
    output, (h_n, _) = full(x)
    np.testing.assert_array_equal(ours(x).numpy(), h_n.numpy()[-1])
    np.testing.assert_array_equal(ours(x).numpy(), output.numpy()[:, -1])
    sequence = _layer_from_config("type: ConvLSTM, in_channels: 2, hidden_channels: 3, kernel_size: [3, 1], "
                                  "num_layers: 2, return_mode: sequence")
    sequence.load_state_dict(ours.state_dict())
    np.testing.assert_array_equal(sequence(x).numpy(), output.numpy())
