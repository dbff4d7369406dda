"""``gpunet info``: versions, where the kernels are, the device and CUDA availability (with the reason when it is
absent), and per GPU its name, compute capability, memory and NVML readings. The GPU branch runs on a fake CuPy
runtime with two GPUs and a fake pynvml (tests/train/fake_gpu.py)."""
import platform
import sys

import numpy
import pytest
from fake_gpu import fake_cupy_with_gpus, fake_pynvml

import gpunet
from gpunet import backend
from gpunet.backend import cuda_unavailable_reason
from gpunet.cli import main


def info(capsys) -> dict:
    assert main(["info"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = {}
    for line in out.splitlines():
        key, value = line.split("  ", 1)
        lines[key.strip()] = value.strip()
    return lines


def test_this_machine_without_a_gpu(capsys):
    import cupy

    lines = info(capsys)
    assert list(lines) == ["gpunet", "python", "numpy", "cupy", "kernels", "device", "backend", "cuda"]
    assert lines["gpunet"] == gpunet.__version__ == "0.1.0"
    assert lines["python"] == f"{platform.python_version()} ({sys.executable})"
    assert lines["numpy"] == numpy.__version__ and lines["cupy"] == cupy.__version__
    assert lines["kernels"] == str(backend.kernel_dir())
    assert lines["device"].startswith("cpu ") and lines["backend"] == "numpy (NumPy)"
    reason = cuda_unavailable_reason(0)
    assert reason is not None  # no GPU here
    assert lines["cuda"] == f"unavailable: {reason}"


def test_without_cupy_it_says_how_to_install_it(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    lines = info(capsys)
    assert lines["cupy"] == 'not installed (pip install "gpunet[cuda]")'
    assert lines["cuda"] == 'unavailable: CuPy is not installed: pip install "gpunet[cuda]"'


@pytest.fixture
def two_gpus(monkeypatch):
    """CuPy sees two GPUs; backends created during the test are dropped afterwards."""
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy_with_gpus())
    monkeypatch.setattr(backend, "_backends", dict(backend._backends))


def test_gpu_machine_lists_every_device(capsys, monkeypatch, two_gpus):
    calls = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(calls))
    lines = info(capsys)
    assert lines["cupy"] == "14.2.0"
    assert lines["cuda"] == "available: 2 device(s), driver 12.9, runtime 12.8"
    assert lines["cuda:0"] == "NVIDIA H100 80GB HBM3, compute capability 9.0, 70.0 of 80.0 GiB free"
    assert lines["cuda:1"] == "NVIDIA A100-SXM4-40GB, compute capability 8.0, 39.0 of 40.0 GiB free"
    assert lines["cuda:0 nvml"] == lines["cuda:1 nvml"] == "61 C, 215.5 W, 42 % busy"
    handles = [args for name, args in calls if name == "nvmlDeviceGetHandleByPciBusId"]
    assert handles == [("0000:17:00.0",), ("0000:65:00.0",)]  # NVML asked about the GPU CuPy numbers 0, then 1


@pytest.mark.parametrize("pynvml", ["missing", "failing"])
def test_gpu_machine_without_nvml_shows_why(capsys, monkeypatch, two_gpus, pynvml):
    monkeypatch.setitem(sys.modules, "pynvml", None if pynvml == "missing" else fake_pynvml(fail_at="nvmlInit"))
    lines = info(capsys)  # no warning on stderr, status 0
    assert lines["cuda:1"] == "NVIDIA A100-SXM4-40GB, compute capability 8.0, 39.0 of 40.0 GiB free"
    error = "ModuleNotFoundError" if pynvml == "missing" else "NVMLError: nvmlInit failed"
    for index in (0, 1):
        assert lines[f"cuda:{index} nvml"].startswith(f"unavailable ({error}")
        assert lines[f"cuda:{index} nvml"].endswith("; it needs nvidia-ml-py and the NVIDIA driver)")
