"""A training step that never waits for a CUDA device: on cuda-emu the stand-in counts every device-to-host copy,
metrics.jsonl records those of each epoch's training and validation loops (``host_syncs``), the losses come to the
host only at log points, and the figures equal the CPU's."""
import json
from pathlib import Path

import numpy as np
import pytest

from gpunet import backend
from gpunet.cli import main
from gpunet.data import DataLoader
from gpunet.train import Callback
from test_nonfinite import Poison
from trainhelpers import make_trainer

REPO = Path(__file__).resolve().parents[2]
FIGURES = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def _train(config, device, out, epochs=2):
    assert main(["train", str(config), f"device={device}", f"trainer.epochs={epochs}", "--out", str(out)]) == 0
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_cnn_digits_on_cuda_emu_waits_for_the_device_at_most_4_times_per_epoch(tmp_path, capsys):
    """The shipped config (13 steps and 2 validation batches per epoch; 60 copies per epoch before this change):
    every copy in the loops is counted by the stand-in and went through gpunet's own funnel (what a GPU counts);
    the figures equal the CPU run's within float32 rounding."""
    device = backend.get_backend("cuda-emu")
    funnel, counted = device.transfers_to_host, device.host_syncs()
    emulated = _train(REPO / "configs" / "cnn_digits.yaml", "cuda-emu", tmp_path / "emu")
    assert device.transfers_to_host - funnel == device.host_syncs() - counted
    cpu = _train(REPO / "configs" / "cnn_digits.yaml", "cpu", tmp_path / "cpu")
    assert [e["host_syncs"] for e in emulated] == [2, 2]  # the train pass's copy and the validation pass's
    assert all(e["host_syncs"] <= 4 for e in emulated) and all("host_syncs" not in e for e in cpu)
    for ours, theirs in zip(emulated, cpu):
        np.testing.assert_allclose([ours[k] for k in FIGURES], [theirs[k] for k in FIGURES], rtol=1e-5)


class BatchLogs(Callback):
    def __init__(self):
        self.logs = []

    def on_batch_end(self, step, logs):
        self.logs.append((step, dict(logs)))


@pytest.mark.parametrize("device_name", ["cuda-emu", "cuda-emu:1"])
def test_on_a_cuda_device_the_loss_reaches_the_callbacks_only_at_log_points(xor, device_name):
    """log_every=2 on a device that is not the current one: a loss every second step and at the epoch's last,
    each equal to the CPU's loss of that step; the epochs' figures equal the CPU's."""
    def fit(device):
        seen = BatchLogs()
        trainer, train, val = make_trainer(xor, [2, 8, 2], callbacks=[seen], device=device, log_every=2)
        trainer.fit(train, val, epochs=2)
        return trainer, seen.logs

    cuda, cuda_logs = fit(device_name)
    cpu, cpu_logs = fit("cpu")
    steps = cuda.steps_per_epoch
    assert steps % 2 == 1  # the epoch's last step is a log point of its own
    logged = [(s, "loss" in logs) for s, logs in cuda_logs]
    assert logged == [(s, s % 2 == 0 or s == steps) for s in range(1, steps + 1)] * 2
    for (step, ours), (_, theirs) in zip(cuda_logs, cpu_logs):
        if "loss" in ours:
            assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
    assert [e["host_syncs"] for e in cuda.history] == [steps // 2 + 2] * 2  # each log point's copy, validation's
    for ours, theirs in zip(cuda.history, cpu.history):
        np.testing.assert_allclose([ours[k] for k in FIGURES], [theirs[k] for k in FIGURES], rtol=1e-5)


def test_a_nan_loss_on_a_cuda_device_is_found_at_the_next_log_point_naming_its_own_step(xor, capsys):
    trainer, train, val = make_trainer(xor, [2, 8, 2], batch_size=16, device="cuda-emu", log_every=3)
    trainer.model.add_module("poison", Poison(step=2 * 9 + 4))  # 9 steps per epoch: step 4 of epoch 3
    trainer.fit(train, val, epochs=6)
    assert trainer.stopped_on_error and len(trainer.history) == 2
    assert trainer.global_step == 24  # found at step 6, the next log point
    assert trainer.stop_reason.startswith("non-finite loss: the training loss is nan at epoch 3, step 4 of the epoch "
                                          "(global step 22); training stopped.")


@pytest.mark.parametrize("task", ["gan", "vae"])
def test_a_generative_tasks_evaluation_copies_to_the_host_once(task):
    """The evaluation noise comes from the host batch (no copy back of the device's) and the losses add up on the
    device: 4 validation batches cost one device-to-host copy on cuda-emu (5 when each batch's came back), and give
    the CPU's figures."""
    import gpunet
    from test_task_gan import Tiny, gan_trainer
    from test_task_vae import vae_trainer

    data, emulated, results = Tiny(flatten=True), backend.get_backend("cuda-emu"), {}
    for name in ("cpu", "cuda-emu"):
        gpunet.set_device(name)
        trainer, _, _ = (gan_trainer if task == "gan" else vae_trainer)(data)
        before = emulated.host_syncs()
        results[name] = trainer.evaluate(DataLoader(data.validation, 16))
        syncs = emulated.host_syncs() - before
    assert syncs == 1
    assert results["cuda-emu"].keys() == results["cpu"].keys() and "loss" in results["cpu"]
    for key, value in results["cpu"].items():
        assert results["cuda-emu"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
