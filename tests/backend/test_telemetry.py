"""GPU telemetry: NVML readings in the units documented, CuPy pool bytes, and never an exception from NVML."""
import sys
import types
import warnings

import pytest

from gpunet.backend import Device, get_backend
from gpunet.backend.cupy_backend import CupyBackend
from gpunet.backend.telemetry import GpuTelemetry
from gpunet.backend.emulated import cupy_standin


class NVMLError(Exception):
    pass


def fake_pynvml(calls, fail_at=None):
    """A pynvml with one GPU using 3 GiB of 80 GiB at 42 %, 61 C and 215.5 W; ``fail_at`` names a call that raises."""

    def api(name, result):
        def call(*args):
            calls.append((name, args))
            if name == fail_at:
                raise NVMLError(f"{name} failed")
            return result
        return call

    return types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=api("nvmlInit", None),
        nvmlDeviceGetHandleByPciBusId=api("nvmlDeviceGetHandleByPciBusId", "handle-0"),
        nvmlDeviceGetMemoryInfo=api("nvmlDeviceGetMemoryInfo", types.SimpleNamespace(used=3 << 30, total=80 << 30)),
        nvmlDeviceGetUtilizationRates=api("nvmlDeviceGetUtilizationRates", types.SimpleNamespace(gpu=42, memory=7)),
        nvmlDeviceGetTemperature=api("nvmlDeviceGetTemperature", 61),
        nvmlDeviceGetPowerUsage=api("nvmlDeviceGetPowerUsage", 215500),
    )


@pytest.fixture
def cuda_backend():
    """A backend of kind "cuda" on the CPU stand-in for CuPy (no GPU needed)."""
    return CupyBackend(Device("cuda", 0), cupy_standin)


def test_cpu_has_no_telemetry():
    assert GpuTelemetry(get_backend("cpu")).sample() == {}


def test_nvml_readings_and_pool_bytes(monkeypatch, cuda_backend):
    calls = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(calls))
    telemetry = GpuTelemetry(cuda_backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first, second = telemetry.sample(), telemetry.sample()
    assert first == second == {
        "cupy_pool_used_bytes": 0, "cupy_pool_total_bytes": 0,
        "gpu_memory_used_bytes": 3 << 30, "gpu_memory_total_bytes": 80 << 30,
        "gpu_utilization_percent": 42, "gpu_temperature_c": 61, "gpu_power_w": 215.5,
    }
    assert ("nvmlDeviceGetHandleByPciBusId", ("0000:00:00.0",)) in calls
    assert [name for name, _ in calls].count("nvmlInit") == 1


@pytest.mark.parametrize("fail_at", ["nvmlInit", "nvmlDeviceGetTemperature"])
def test_failing_nvml_warns_once_then_gives_only_pool_bytes(monkeypatch, cuda_backend, fail_at):
    calls = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(calls, fail_at=fail_at))
    telemetry = GpuTelemetry(cuda_backend)
    with pytest.warns(RuntimeWarning, match=f"NVML is off for cuda:0 .*{fail_at} failed"):
        assert telemetry.sample() == {"cupy_pool_used_bytes": 0, "cupy_pool_total_bytes": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert telemetry.sample() == {"cupy_pool_used_bytes": 0, "cupy_pool_total_bytes": 0}
    assert [name for name, _ in calls].count(fail_at) == 1  # not asked again


def test_missing_pynvml_warns_with_install_hint(monkeypatch, cuda_backend):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with pytest.warns(RuntimeWarning, match="(ModuleNotFound|Import)Error.*install nvidia-ml-py"):
        assert GpuTelemetry(cuda_backend).sample() == {"cupy_pool_used_bytes": 0, "cupy_pool_total_bytes": 0}


def test_emulated_device_reports_pool_bytes_without_asking_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert GpuTelemetry(get_backend("cuda-emu")).sample() == {"cupy_pool_used_bytes": 0,
                                                                  "cupy_pool_total_bytes": 0}
