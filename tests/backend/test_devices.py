"""Choosing devices: cuda-emu by name and by GPUNET_DEVICE, clear reasons when CUDA is unavailable, "auto",
and tensors of two devices refused."""
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
from gpunet import backend
from gpunet.backend import DeviceError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_device():
    previous = backend.current().device
    yield
    backend.set_device(previous)


def _fake_cupy(get_device_count):
    """A module that imports as ``cupy`` and answers getDeviceCount with ``get_device_count``."""
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=get_device_count)))


def test_set_device_cuda_emu_makes_new_tensors_live_there(restore_device):
    assert str(gn.set_device("cuda-emu")) == "cuda-emu:0"
    x = gn.tensor([1.0, 2.0])
    assert str(x.device) == "cuda-emu:0"
    assert x.backend.name == "cupy"
    assert gn.get_device() == gn.device("cuda-emu")


def test_cuda_emu_has_one_device():
    with pytest.raises(DeviceError, match="'cuda-emu:1'"):
        backend.get_backend("cuda-emu:1")


def test_environment_variable_selects_cuda_emu():
    env = dict(os.environ, GPUNET_DEVICE="cuda-emu", PYTHONPATH=str(REPO))
    code = "import gpunet as gn; print(gn.tensor([1.0]).device, gn.tensor([1.0]).backend.name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["cuda-emu:0", "cupy"]


def test_cuda_without_cupy_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy now raises ImportError
    with pytest.raises(DeviceError, match=r'cuda:0.*CuPy is not installed: pip install "gpunet\[cuda\]"'):
        gn.set_device("cuda")


def test_cuda_without_driver_names_the_driver(monkeypatch):
    class CUDARuntimeError(RuntimeError):
        pass

    def no_driver():
        raise CUDARuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(no_driver))
    with pytest.raises(DeviceError, match="cannot reach a CUDA driver.*cudaErrorInsufficientDriver.*NVIDIA driver"):
        gn.set_device("cuda")


def test_cuda_with_no_visible_gpu_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    with pytest.raises(DeviceError, match="sees no GPU"):
        gn.set_device("cuda:0")


def test_cuda_index_beyond_the_devices_lists_the_valid_ones(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 2))
    with pytest.raises(DeviceError, match=r"cuda:3 does not exist.*2 CUDA device\(s\), cuda:0 to cuda:1"):
        gn.set_device("cuda:3")


@pytest.mark.skipif(backend.cuda_unavailable_reason() is None, reason="a CUDA GPU is visible on this machine")
def test_real_cupy_on_this_machine_explains_why_cuda_is_unavailable():
    reason = backend.cuda_unavailable_reason()
    with pytest.raises(DeviceError) as info:
        gn.set_device("cuda")
    assert reason in str(info.value) and ("driver" in reason or "GPU" in reason or "pip install" in reason)


def test_auto_picks_cpu_and_says_why_in_one_line(monkeypatch, capsys, restore_device):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert gn.set_device("auto") == gn.device("cpu")
    lines = capsys.readouterr().err.splitlines()
    assert lines == ['gpunet: device auto -> cpu (CuPy is not installed: pip install "gpunet[cuda]")']


def test_mixing_devices_names_both(restore_device):
    a = gn.tensor([1.0, 2.0], device="cpu")
    b = gn.tensor([3.0, 4.0], device="cuda-emu")
    with pytest.raises(gn.DeviceMismatchError, match=r"cpu and cuda-emu:0.*\.to\(device\)"):
        a + b
    with pytest.raises(gn.DeviceMismatchError, match=r"cuda-emu:0 and cpu"):
        b * a


def test_to_moves_between_cpu_and_cuda_emu_with_gradients():
    a = gn.tensor([1.0, -2.0, 3.0], requires_grad=True, device="cpu")
    b = a.to("cuda-emu")
    assert str(b.device) == "cuda-emu:0"
    (b * b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [2.0, -4.0, 6.0])
    assert str(a.grad.device) == "cpu"


def test_device_fixture_switches_and_restores(device):
    assert str(gn.tensor([0.0]).device) == str(gn.device(device))


def test_copies_and_pickles_of_cuda_emu_tensors_share_the_device_backend():
    import copy
    import pickle

    x = gn.tensor([[1.0, 2.0]], device="cuda-emu")
    for clone in (copy.deepcopy(x), pickle.loads(pickle.dumps(x))):
        assert clone.backend is x.backend
        np.testing.assert_array_equal(clone.numpy(), x.numpy())
        (clone + x).numpy()  # same device: no mismatch error
