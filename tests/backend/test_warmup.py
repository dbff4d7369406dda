"""``gpunet warmup CONFIG``: the fused kernels a model, loss and optimizer use, and compiling their kernel files
ahead of training (nothing on the CPU, the CUDA emulator on cuda-emu); ``CupyBackend.compile``."""
import re

import pytest

import gpunet as gn
import gpunet.nn as nn
import gpunet.optim
from gpunet.backend import Device, current, get_backend
from gpunet.backend.cupy_backend import CUDA_KERNELS, CupyBackend
from gpunet.backend.fused import fused_kernels
from gpunet.backend.numpy_backend import NumpyBackend
from gpunet.backend.warmup import KERNELS_USED, kernels_used, warmup
from gpunet.cli import main
from gpunet.backend.emulated import cupy_standin

CONFIG = """\
seed: 0
device: {device}
data: {{name: xor, n_samples: 20}}
model:
  layers:
    - {{type: Linear, in_features: 2, out_features: 8}}
    - {{type: GELU}}
    - {{type: Dropout, p: 0.1}}
    - {{type: Flatten, start_dim: 0}}
    - {{type: MaxPool1d, kernel_size: 2}}
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

    previous = current().device
    yield write
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


def test_kernels_used_walks_modules_loss_and_optimizer_in_first_use_order():
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Sequential(nn.MaxPool1d(2), nn.GELU()),
                          nn.AvgPool2d(2), nn.Softmax(1))
    used = kernels_used(model, nn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1))
    assert used == ("dropout_mask", "max_pool2d", "max_pool2d_backward", "max_pool2d_gather", "erf", "avg_pool2d",
                    "avg_pool2d_backward", "softmax", "softmax_cross_entropy", "softmax_cross_entropy_backward",
                    "log_softmax", "sgd_update")
    assert kernels_used(nn.Linear(2, 2), nn.MSELoss(), None) == ()  # matmul (cuBLAS) and xp ops only


def test_a_subclass_uses_the_kernels_of_its_base():
    class MyPool(nn.MaxPool2d):
        pass

    assert kernels_used(MyPool(2)) == KERNELS_USED["MaxPool2d"]


def test_the_table_names_real_classes_and_real_fused_kernels():
    declared = fused_kernels(NumpyBackend)
    for name, kernels in KERNELS_USED.items():
        assert hasattr(gn.nn, name) or hasattr(gn.optim, name), f"KERNELS_USED names {name}, not a gpunet class"
        for kernel in kernels:
            assert kernel in declared, f"{name} lists {kernel}, which is not a fused kernel"


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
    assert main(["warmup", config("cpu")]) == 0
    out = capsys.readouterr().out
    assert out == "device cpu: nothing to compile (the NumPy backend runs the fused kernels in NumPy)\n"


def test_warmup_on_cuda_emu_compiles_every_family_the_config_uses(config, capsys):
    path = config("cuda-emu")
    assert main(["warmup", path, "optimizer.lr=0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"device cuda-emu:0 (CuPy stand-in with the CUDA emulator (CPU)): compiling the kernels of {path}"
    used = ("erf", "dropout_mask", *KERNELS_USED["MaxPool1d"], *KERNELS_USED["CrossEntropyLoss"], "adam_update")
    expected = list(dict.fromkeys(CUDA_KERNELS[k] for k in used if k in CUDA_KERNELS))
    assert {"dropout", "pool", "softmax", "optimizers"} <= set(expected)
    compiled = [re.fullmatch(r"  (\w+) +kernels/(\w+)\.cu compiled in \d+\.\d\d s \((.+)\)", line) for line in lines[1:-1]]
    assert [m.group(1) for m in compiled] == [m.group(2) for m in compiled] == expected
    assert lines[-1] == "  no CUDA kernel file (xp reference): " + ", ".join(k for k in used if k not in CUDA_KERNELS)
    assert set(current().compiled_families()) >= set(expected)


def test_warmup_with_a_bad_config_is_a_one_line_error(config, capsys):
    assert main(["warmup", config("cpu"), "optimizer.lr=-1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gpunet warmup: error:") and "optimizer.lr" in err


def test_forward_kernel_is_the_first_of_a_row_and_gpunet_summary_shows_it():
    from gpunet.backend.warmup import forward_kernel
    from gpunet.train.summary import summary

    assert forward_kernel(nn.MaxPool2d(2)) == "max_pool2d" and forward_kernel(nn.Linear(2, 2)) is None
    assert forward_kernel(nn.ConvTranspose2d(2, 2, 3)) == "col2im" and forward_kernel(nn.Conv1d(2, 2, 3)) == "im2col"
    previous = current().device
    gn.set_device("cuda-emu")
    try:
        text = str(summary(nn.Sequential(nn.MaxPool2d(2), nn.Flatten()), (1, 4, 4)))
    finally:
        gn.set_device(str(previous))
    assert "CUDA kernel: max_pool2d (kernels/pool.cu)" in text
