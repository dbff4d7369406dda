"""Stand-ins for a GPU machine's Python view of its GPUs, for tests that monkeypatch them into ``sys.modules``:
``fake_pynvml`` (NVML through nvidia-ml-py) and ``fake_cupy_with_gpus`` (the CUDA runtime calls of CuPy)."""
import types

from gpunet.backend.emulated import cupy_standin

GIB = 1 << 30


class NVMLError(Exception):
    pass


def fake_pynvml(calls=None, fail_at=None):
    """A pynvml whose every GPU uses 3 GiB of 80 GiB at 42 %, 61 C and 215.5 W; calls are appended to ``calls``
    as (name, args); the call named ``fail_at`` raises ``NVMLError``."""
    calls = [] if calls is None else calls

    def api(name, result):
        def call(*args):
            calls.append((name, args))
            if name == fail_at:
                raise NVMLError(f"{name} failed")
            return result(*args) if callable(result) else result
        return call

    return types.SimpleNamespace(
        NVML_TEMPERATURE_GPU=0,
        nvmlInit=api("nvmlInit", None),
        nvmlDeviceGetHandleByPciBusId=api("nvmlDeviceGetHandleByPciBusId", lambda bus_id: f"handle {bus_id}"),
        nvmlDeviceGetMemoryInfo=api("nvmlDeviceGetMemoryInfo", types.SimpleNamespace(used=3 * GIB, total=80 * GIB)),
        nvmlDeviceGetUtilizationRates=api("nvmlDeviceGetUtilizationRates", types.SimpleNamespace(gpu=42, memory=7)),
        nvmlDeviceGetTemperature=api("nvmlDeviceGetTemperature", 61),
        nvmlDeviceGetPowerUsage=api("nvmlDeviceGetPowerUsage", 215500),
    )


class _Device(cupy_standin.Device):
    """``cupy.cuda.Device`` on a machine with two GPUs (bus ids 0000:17:00.0 and 0000:65:00.0)."""

    current = 0

    def __init__(self, device=None):
        index = 0 if device is None else int(device)
        if index not in (0, 1):
            raise RuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {index}")
        self.id = index
        self.pci_bus_id = ("0000:17:00.0", "0000:65:00.0")[index]

    def __enter__(self):
        self._previous, _Device.current = _Device.current, self.id
        return self

    def __exit__(self, *exc):
        _Device.current = self._previous
        return False


DEVICES = ({"name": b"NVIDIA H100 80GB HBM3", "major": 9, "minor": 0, "free": 70 * GIB, "total": 80 * GIB},
           {"name": b"NVIDIA A100-SXM4-40GB", "major": 8, "minor": 0, "free": 39 * GIB, "total": 40 * GIB})


def fake_cupy_with_gpus():
    """A ``cupy`` module (version 14.2.0, CUDA runtime 12.8, driver 12.9) that sees the two GPUs of ``DEVICES``."""

    def properties(index):
        _Device(index)
        spec = DEVICES[index]
        return {"name": spec["name"], "major": spec["major"], "minor": spec["minor"], "maxGridSize": (2**31 - 1,)}

    def mem_get_info():
        spec = DEVICES[_Device.current]
        return spec["free"], spec["total"]

    runtime = types.SimpleNamespace(getDeviceCount=lambda: len(DEVICES), getDeviceProperties=properties,
                                    memGetInfo=mem_get_info, driverGetVersion=lambda: 12090,
                                    runtimeGetVersion=lambda: 12080)
    # CuPy's per-dtype compute type of matrix products, which a CUDA backend sets from gpunet's TF32 switch
    linalg = types.SimpleNamespace(COMPUTE_TYPE_DEFAULT=1, COMPUTE_TYPE_TF32=7, compute_types={},
                                   set_compute_type=lambda dtype, kind: linalg.compute_types.__setitem__(dtype, kind))
    return types.SimpleNamespace(__version__="14.2.0", cuda=types.SimpleNamespace(Device=_Device, runtime=runtime),
                                 get_default_memory_pool=cupy_standin.get_default_memory_pool,
                                 _core=types.SimpleNamespace(_routines_linalg=linalg))
