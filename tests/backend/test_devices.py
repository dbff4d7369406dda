"""Choosing devices: cuda-emu by name and by GPUNET_DEVICE, clear reasons when CUDA is unavailable, "auto",
and tensors of two devices refused."""
import contextlib
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


def _fake_cupy(get_device_count):
    """A module that imports as ``cupy`` and answers getDeviceCount with ``get_device_count``."""
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(
        getDeviceCount=get_device_count)))


def test_set_device_cuda_emu_makes_new_tensors_live_there():
    assert str(gn.set_device("cuda-emu")) == "cuda-emu:0"
    x = gn.tensor([1.0, 2.0])
    assert str(x.device) == "cuda-emu:0"
    assert x.backend.name == "cupy"
    assert gn.get_device() == gn.device("cuda-emu")


def test_cuda_emu_has_a_second_device_and_no_third():
    assert str(backend.get_backend("cuda-emu:1").device) == "cuda-emu:1"
    with pytest.raises(DeviceError, match=r"'cuda-emu:2' does not exist.*cuda-emu:0 to cuda-emu:1"):
        backend.get_backend("cuda-emu:2")


def test_tensors_of_two_emulated_devices_do_not_mix():
    a = gn.tensor([1.0, 2.0], device="cuda-emu:0")
    b = gn.tensor([3.0, 4.0], device="cuda-emu:1")
    with pytest.raises(gn.DeviceMismatchError, match=r"cuda-emu:0 and cuda-emu:1"):
        a + b
    np.testing.assert_array_equal((b.to("cuda-emu:0") + a).numpy(), [4.0, 6.0])


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


def test_auto_picks_cpu_and_says_why_in_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert gn.set_device("auto") == gn.device("cpu")
    lines = capsys.readouterr().err.splitlines()
    assert lines == ['gpunet: device auto -> cpu (CuPy is not installed: pip install "gpunet[cuda]")']


class _FakeCupyWithGpu:
    """``cupy`` on a host with one GPU and a driver; ``missing`` names the CUDA library that fails to load."""

    def __init__(self, missing=None):
        def load(library, result):
            def probe():
                if library == missing:
                    raise RuntimeError(f"CuPy failed to load lib{library.lower()}.so.12: cannot open shared object "
                                       "file: No such file or directory\nsecond line")
                return result
            return probe

        self.cuda = types.SimpleNamespace(
            runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
            Device=lambda index: contextlib.nullcontext(),
            nvrtc=types.SimpleNamespace(getVersion=load("NVRTC", (12, 9))),
            device=types.SimpleNamespace(get_cublas_handle=load("cuBLAS", 1)),
        )


@pytest.mark.parametrize("missing", ["NVRTC", "cuBLAS"])
def test_auto_probes_nvrtc_and_cublas_before_choosing_cuda(monkeypatch, capsys, missing):
    monkeypatch.setitem(sys.modules, "cupy", _FakeCupyWithGpu(missing))
    assert gn.set_device("auto") == gn.device("cpu")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"gpunet: device auto -> cpu (CuPy cannot load {missing} (RuntimeError: CuPy failed "
                               f"to load lib{missing.lower()}.so.12")
    assert 'pip install "gpunet[cuda]" (cupy-cuda12x[ctk])' in lines[0] and "second line" not in lines[0]


def test_auto_chooses_cuda_when_the_libraries_load(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _FakeCupyWithGpu())
    assert backend.auto_device() == ("cuda:0", "a CUDA device is visible and NVRTC and cuBLAS load")


def test_mixing_devices_names_both():
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


def test_a_model_on_the_second_device_trains_while_device_0_is_current():
    """The device funnels (op forward, backward, fused kernels, xp functions, optimizer updates) put every array of
    a cuda-emu:1 model on device 1 although CuPy's current device is 0; the step equals the CPU's."""
    def step(device):
        gn.manual_seed(0)
        model = gn.nn.Sequential(gn.nn.Linear(4, 8), gn.nn.ReLU(), gn.nn.Linear(8, 3)).to(device)
        optimizer = gn.optim.Adam(model.parameters(), lr=0.1)
        x = gn.tensor(np.linspace(-1, 1, 20, dtype=np.float32).reshape(5, 4)).to(device)
        target = gn.tensor(np.linspace(0, 1, 15, dtype=np.float32).reshape(5, 3)).to(device)
        for _ in range(2):
            optimizer.zero_grad()
            gn.nn.functional.mse_loss(gn.softmax(model(x), 1), target).backward()
            optimizer.step()
        return model

    gn.set_device("cuda-emu:0")
    emulated, cpu = step("cuda-emu:1"), step("cpu")
    for p, q in zip(emulated.parameters(), cpu.parameters()):
        assert p.data.device_id == 1 and str(p.device) == "cuda-emu:1"
        np.testing.assert_allclose(p.numpy(), q.numpy(), rtol=1e-5, atol=1e-6)


def test_work_outside_the_funnels_on_the_wrong_device_is_refused():
    """What the stand-in catches: an array of device 1 used while device 0 is current, and a kernel launch given
    another device's pointer."""
    from gpunet.backend.emulated import cupy_standin as cp

    with cp.cuda.Device(1):
        a = cp.ones(3, dtype=np.float32)
    assert a.device_id == 1 and cp.zeros(2).device_id == 0
    with pytest.raises(ValueError, match=r"array resides \(1\) is different from the current device \(0\)"):
        a + 1
    with cp.cuda.Device(1):
        np.testing.assert_array_equal(cp.asnumpy(a + 1), [2, 2, 2])
    emulated = backend.get_backend("cuda-emu:0")
    with pytest.raises(Exception, match=r"softmax_rows_f32.*lives on device 1, the launch is on device 0"):
        emulated.launch("softmax", "softmax_rows_f32", 1, 32, (a, a, np.int64(1), np.int64(3)))


def test_xp_calls_inside_an_active_context_skip_the_device_switch_and_stay_on_the_device(monkeypatch):
    """backend.activate() enters Device(N) once; xp calls inside it (the hot path) call straight through, still on
    device N, and a nested activate of another backend switches and switches back."""
    from gpunet.backend.emulated import cupy_standin as cp

    enters = []
    original = cp.Device.__enter__
    monkeypatch.setattr(cp.Device, "__enter__", lambda self: enters.append(self.id) or original(self))
    one, zero = backend.get_backend("cuda-emu:1"), backend.get_backend("cuda-emu:0")
    assert one.xp.zeros(2).device_id == 1 and enters == [1]  # outside: the call enters Device(1) itself
    enters.clear()
    with one.activate():
        a = one.xp.ones(3)
        b = one.xp.empty_like(a)
        with one.activate():  # nested in its own context: nothing to do
            c = one.xp.add(a, 1.0)
        with zero.activate():
            d = zero.xp.zeros(2)
            e = one.xp.zeros(2)  # the other backend's call switches to its device and back
        f = one.xp.zeros(1)
    assert enters == [1, 0, 1]
    assert [x.device_id for x in (a, b, c, e, f)] == [1, 1, 1, 1, 1] and d.device_id == 0
    assert cp.cuda.runtime.getDevice() == 0


def test_the_stand_in_counts_every_copy_to_the_host_per_device():
    from gpunet.backend.emulated import cupy_standin as cp

    with cp.cuda.Device(1):
        x = cp.arange(6, dtype=np.float32)
        start, other = cp.transfers_to_host(1), cp.transfers_to_host(0)
        y = (x * 2).sum()  # device work: no copy
        assert cp.transfers_to_host(1) == start
        waits = [lambda: cp.asnumpy(x), lambda: y.item(), lambda: float(y), lambda: int(y), lambda: bool(y > 1),
                 lambda: x.tolist(), lambda: f"{y:.2f}", lambda: repr(x), lambda: range(x[3].astype(np.int64)),
                 lambda: x[x > 2], lambda: cp.nonzero(x), lambda: cp.where(x > 2), lambda: cp.unique(x)]
        for count, wait in enumerate(waits, start + 1):
            wait()
            assert cp.transfers_to_host(1) == count, wait
        cp.where(x > 2, x, 0.0)  # the three-argument where stays on the device
        cp.bincount(x.astype(np.int64))  # CuPy's bincount copies the minimum and the maximum
        assert cp.transfers_to_host(1) == start + len(waits) + 2
    assert cp.transfers_to_host(0) == other


def test_the_stand_ins_list_of_synchronizing_functions_is_cupys():
    """SYNCHRONIZING holds exactly the functions whose CuPy docstring warns that they may synchronize the device."""
    import cupy  # a test dependency: its namespace imports without a driver

    from gpunet.backend.emulated.cupy_standin import SYNCHRONIZING

    warned = {name for name in dir(cupy) if not name.startswith("_") and callable(getattr(cupy, name))
              and "synchronize the device" in (getattr(cupy, name).__doc__ or "")}
    assert set(SYNCHRONIZING) == warned


def test_the_transfer_funnel_counts_tensor_copies_to_the_host():
    """Tensor.numpy, item, float, bool go through backend.to_numpy; on cuda-emu its count equals the stand-in's."""
    device = backend.get_backend("cuda-emu:1")
    t = gn.tensor(np.array([1.5, 2.5], dtype=np.float32), device="cuda-emu:1")
    funnel, counted = device.transfers_to_host, device.host_syncs()
    t.numpy(), t.sum().item(), float(t[0]), bool(t[1] > 2), t.tolist()
    assert device.transfers_to_host - funnel == 5 and device.host_syncs() - counted == 5
