"""GPU telemetry in metrics.jsonl: every epoch's record on a CUDA device carries the CuPy pool bytes sampled at the
end of that epoch and NVML's readings; a missing or failing NVML gives one warning and training goes on; the CPU
adds nothing. NVML is a fake pynvml, the device the CuPy stand-in with the CUDA emulator."""
import json
import sys
import warnings

import pytest
from fake_gpu import GIB, fake_pynvml

import gpunet
from gpunet import backend, nn, optim
from gpunet.backend import Device
from gpunet.backend.cupy_backend import CupyBackend
from gpunet.data import DataLoader
from gpunet.backend.emulated import cupy_standin
from gpunet.train import JSONLLogger, Trainer

POOL_FIELDS = ("cupy_pool_used_bytes", "cupy_pool_total_bytes")
NVML_FIELDS = ("gpu_memory_used_bytes", "gpu_memory_total_bytes", "gpu_utilization_percent", "gpu_temperature_c",
               "gpu_power_w")


class ScriptedPool:
    """CuPy's memory pool counters, growing by 1 MiB used / 2 MiB held each time they are read."""

    def __init__(self):
        self.reads = 0

    def used_bytes(self):
        self.reads += 1
        return self.reads << 20

    def total_bytes(self):
        return self.reads << 21


@pytest.fixture
def pool(monkeypatch):
    scripted = ScriptedPool()
    monkeypatch.setattr(cupy_standin, "_pool", scripted)
    return scripted


@pytest.fixture
def emulated_cuda0(monkeypatch):
    """Device cuda:0 as the CuPy backend on the CPU stand-in (a CUDA device NVML is asked about)."""
    cuda0 = Device("cuda", 0)
    monkeypatch.setattr(backend, "_backends", {**backend._backends, cuda0: CupyBackend(cuda0, cupy_standin)})
    return "cuda:0"


def train(xor, device, path, epochs=3):
    gpunet.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).to(device)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5), callbacks=[JSONLLogger(path)],
                      device=device)
    trainer.fit(DataLoader(xor.train, 64, shuffle=True, seed=0), DataLoader(xor.validation, 128), epochs=epochs)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return trainer, records


def test_cpu_records_have_no_gpu_fields(xor, tmp_path):
    trainer, records = train(xor, "cpu", tmp_path / "m.jsonl")
    assert records == trainer.history.epochs
    assert not [key for record in records for key in record if key.startswith(("gpu_", "cupy_"))]


def test_emulated_device_records_pool_bytes_of_each_epoch_end(xor, tmp_path, pool, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())  # cuda-emu is no NVML device: never asked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer, records = train(xor, "cuda-emu", tmp_path / "m.jsonl")
    assert trainer.epoch == 3 and pool.reads == 3  # read once per epoch, at its end
    assert [(r["cupy_pool_used_bytes"], r["cupy_pool_total_bytes"]) for r in records] == [
        (1 << 20, 2 << 20), (2 << 20, 4 << 20), (3 << 20, 6 << 20)]
    assert [{k: v for k, v in r.items() if k not in POOL_FIELDS} for r in records] == trainer.history.epochs
    assert not any(field in trainer.history.epochs[0] for field in POOL_FIELDS)  # the history stays the epoch's logs


def test_cuda_device_records_nvml_readings(xor, tmp_path, pool, emulated_cuda0, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(calls))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trainer, records = train(xor, emulated_cuda0, tmp_path / "m.jsonl")
    assert trainer.backend.device == Device("cuda", 0) and trainer.backend.xp.__wrapped__ is cupy_standin
    assert len(records) == 3
    for epoch, record in enumerate(records, start=1):
        assert {k: record[k] for k in POOL_FIELDS + NVML_FIELDS} == {
            "cupy_pool_used_bytes": epoch << 20, "cupy_pool_total_bytes": epoch << 21,
            "gpu_memory_used_bytes": 3 * GIB, "gpu_memory_total_bytes": 80 * GIB, "gpu_utilization_percent": 42,
            "gpu_temperature_c": 61, "gpu_power_w": 215.5}
        assert {k: v for k, v in record.items() if k not in POOL_FIELDS + NVML_FIELDS} == trainer.history.epochs[epoch - 1]
    names = [name for name, _ in calls]
    assert names.count("nvmlInit") == 1 and names.count("nvmlDeviceGetPowerUsage") == 3
    assert ("nvmlDeviceGetHandleByPciBusId", ("0000:00:00.0",)) in calls  # the GPU CuPy calls device 0


@pytest.mark.parametrize("fail_at", ["nvmlInit", "nvmlDeviceGetPowerUsage"])
def test_failing_nvml_warns_once_and_training_finishes(xor, tmp_path, pool, emulated_cuda0, monkeypatch, fail_at):
    calls = []
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(calls, fail_at=fail_at))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer, records = train(xor, emulated_cuda0, tmp_path / "m.jsonl")
    assert trainer.epoch == 3 and len(records) == 3
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and f"NVML is off for cuda:0 (NVMLError: {fail_at} failed)" in messages[0]
    assert [name for name, _ in calls].count(fail_at) == 1  # not asked again after failing
    assert [[k for k in r if k.startswith(("gpu_", "cupy_"))] for r in records] == [list(POOL_FIELDS)] * 3
    assert [r["cupy_pool_used_bytes"] for r in records] == [1 << 20, 2 << 20, 3 << 20]


def test_missing_nvml_warns_once(xor, tmp_path, pool, emulated_cuda0, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # nvidia-ml-py not installed
    with pytest.warns(RuntimeWarning, match="install nvidia-ml-py") as caught:
        trainer, records = train(xor, emulated_cuda0, tmp_path / "m.jsonl", epochs=2)
    assert len(caught) == 1 and trainer.epoch == 2
    assert [r["cupy_pool_total_bytes"] for r in records] == [2 << 20, 4 << 20]


def test_telemetry_can_be_turned_off(xor, tmp_path, pool):
    gpunet.manual_seed(0)
    model = nn.Linear(2, 2).to("cuda-emu")
    logger = JSONLLogger(tmp_path / "m.jsonl", gpu_telemetry=False)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), callbacks=[logger],
                      device="cuda-emu")
    trainer.fit(DataLoader(xor.train, 64), epochs=1)
    assert [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()] == trainer.history.epochs
    assert pool.reads == 0


def test_run_directory_metrics_on_the_emulated_device(tmp_path, pool):
    from gpunet.config import load_config
    from gpunet.runner.run import run

    path = tmp_path / "xor.yaml"
    path.write_text("seed: 0\ndevice: cuda-emu\ndata: {name: xor, n_samples: 100}\n"
                    "model: {layers: [{type: Linear, in_features: 2, out_features: 2}]}\n"
                    "loss: {name: cross_entropy}\noptimizer: {name: sgd, lr: 0.1}\ntrainer: {epochs: 2, batch_size: 32}\n")
    run(load_config(path), str(tmp_path / "run"), progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["cupy_pool_used_bytes"] for r in records] == [1 << 20, 2 << 20]
