"""GPU telemetry for the per-epoch metrics: NVML's memory, utilisation, temperature and power, CuPy's pool bytes.

``GpuTelemetry(backend).sample()`` returns a flat dict of numbers (empty on the CPU). NVML comes from the
``pynvml`` module of nvidia-ml-py (``pip install "gpunet[cuda]"``); when it is missing or fails, the first
sample warns once and NVML is not asked again, so telemetry never breaks training.
"""
from __future__ import annotations

import warnings


class GpuTelemetry:
    """Samples the state of ``backend``'s device; only CUDA devices have NVML readings."""

    def __init__(self, backend):
        self.backend = backend
        self._handle = None
        self._nvml = None
        self._nvml_broken = backend.device.kind != "cuda"  # the CPU and the emulated device have no NVML
        self.nvml_error: str | None = None  # why NVML readings are off, once it has failed

    def sample(self) -> dict:
        """``cupy_pool_used_bytes``/``cupy_pool_total_bytes`` and, from NVML, ``gpu_memory_used_bytes``,
        ``gpu_memory_total_bytes``, ``gpu_utilization_percent``, ``gpu_temperature_c``, ``gpu_power_w``."""
        if self.backend.name != "cupy":
            return {}
        out = {f"cupy_{key}": value for key, value in self.backend.memory_info().items()}
        if not self._nvml_broken:
            try:
                out.update(self._nvml_sample())
            except Exception as exc:  # NVML raises NVMLError subclasses, or ImportError when not installed
                self._nvml_broken = True
                self.nvml_error = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"gpunet: GPU telemetry from NVML is off for {self.backend.device} "
                              f"({self.nvml_error}); install nvidia-ml-py and an NVIDIA driver for it",
                              RuntimeWarning, stacklevel=2)
        return out

    def _nvml_sample(self) -> dict:
        if self._handle is None:
            import pynvml

            pynvml.nvmlInit()
            # NVML numbers devices in its own order; the PCI bus id names the same GPU as CUDA's index.
            bus_id = self.backend.xp.cuda.Device(self.backend.device.index).pci_bus_id
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByPciBusId(bus_id)
        nvml, handle = self._nvml, self._handle
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        return {
            "gpu_memory_used_bytes": int(memory.used),
            "gpu_memory_total_bytes": int(memory.total),
            "gpu_utilization_percent": int(nvml.nvmlDeviceGetUtilizationRates(handle).gpu),
            "gpu_temperature_c": int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
            "gpu_power_w": nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,  # NVML reports milliwatts
        }
