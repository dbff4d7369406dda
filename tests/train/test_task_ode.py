"""The ode task on tiny data, on every backend: its step equals the residual loss of gpunet.models.ode (checked against
PyTorch there) and trains the network, max_abs_error follows the exact solution, resume mid-run is exact, and bad keys
and data are named."""
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
from gpunet.data import ArrayDataset, DataLoader, load_dataset
from gpunet.models.ode import ExponentialDecay, HarmonicOscillator
from gpunet.config import load_config
from gpunet.runner.run import run
from gpunet.train import ModelCheckpoint, Trainer
from gpunet.train.interrupt import TrainingInterrupted
from gpunet.train.checkpoint import save_checkpoint
from gpunet.train.tasks import TASKS
from gpunet.train.tasks.ode import ODE

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _run(task, epochs, data=None, resume=None, lr=0.05, callbacks=()):
    gn.manual_seed(0)
    data = data or load_dataset("collocation", n_points=120, validation_split=0.2, test_split=0.0)
    model = task.build_model("model", data.info)
    trainer = Trainer(model, None, gn.optim.Adam(model.parameters(), lr=lr), task=task, metrics=(),
                      callbacks=list(callbacks))
    train = DataLoader(data.train, batch_size=12, shuffle=True, seed=0)
    val = DataLoader(data.validation, batch_size=50) if data.validation is not None else None
    history = trainer.fit(train, val, epochs=epochs, resume=resume)
    return trainer, history


def test_ode_is_registered_with_its_keys():
    assert TASKS["ode"] is ODE and ODE.data == "generated" and not ODE.uses_loss


def test_a_step_is_the_residual_loss_and_training_lowers_it(device):
    task = ODE(hidden=[8])
    trainer, history = _run(task, epochs=4)
    losses = [e["train_loss"] for e in history]
    assert losses[-1] < losses[0] / 3
    x = np.linspace(0.0, 1.0, 7, dtype=np.float32)[:, None]
    expected = ExponentialDecay(2.0, 10.0)
    g = gn.tensor(x, requires_grad=True)
    n = trainer.model(g)
    (dn,) = gn.grad(n.sum(), [g])  # an independent path: g_t' = N + x N'
    n, dn = n.detach().numpy(), dn.numpy()
    residual = (n + x * dn) + expected.gamma * (expected.g0 + x * n)
    assert trainer.evaluate(DataLoader(ArrayDataset(x, np.zeros_like(x)), batch_size=7))["loss"] == \
        pytest.approx(float(np.mean(residual ** 2)), rel=1e-4)
    grid = np.linspace(0.0, 1.0, task.error_points, dtype=np.float32)[:, None]
    with gn.no_grad():
        approx = (10.0 + grid * trainer.model(gn.tensor(grid)).numpy())[:, 0]
    error = np.max(np.abs(approx - 10.0 * np.exp(-2.0 * grid[:, 0])))
    assert history["max_abs_error"][-1] == pytest.approx(error, rel=1e-5)
    assert task.summary({}) == {"max_abs_error": history["max_abs_error"][-1]}


def test_the_oscillator_task_meets_both_initial_conditions(device):
    task = ODE(equation="harmonic_oscillator", omega=3.0, g0=0.5, v0=2.0, hidden=[6], activation="Tanh")
    trainer, _ = _run(task, epochs=1)
    assert isinstance(task.solution.equation, HarmonicOscillator) and task.solution.equation.omega == 3.0
    x = gn.tensor(np.zeros((1, 1), dtype=np.float32), requires_grad=True)
    g = task.solution(x)
    (dg,) = gn.grad(g.sum(), [x])
    assert g.numpy()[0, 0] == 0.5 and dg.numpy()[0, 0] == pytest.approx(2.0, rel=1e-6)


def test_resume_mid_run_is_exact(tmp_path):
    gn.set_device("cpu")
    whole, history = _run(ODE(hidden=[8]), epochs=4)
    first, _ = _run(ODE(hidden=[8]), epochs=2)
    save_checkpoint(tmp_path / "c.npz", first.checkpoint())
    resumed, rest = _run(ODE(hidden=[8]), epochs=4, resume=str(tmp_path / "c.npz"))
    assert [e["train_loss"] for e in rest] == [e["train_loss"] for e in history]
    assert rest["max_abs_error"][-1] == history["max_abs_error"][-1]


def test_resume_mid_epoch_is_exact(tmp_path):
    """Stopped by SIGTERM after step 11 (8 steps per epoch) and resumed from last.npz: the same history and weights."""
    gn.set_device("cpu")
    straight, whole = _run(ODE(hidden=[8]), epochs=3)

    class SignalAt(gn.train.Callback):
        def on_batch_end(self, step, logs):
            if logs["global_step"] == 11:
                os.kill(os.getpid(), signal.SIGTERM)
    with pytest.raises(TrainingInterrupted):
        _run(ODE(hidden=[8]), epochs=3, callbacks=[SignalAt(), ModelCheckpoint(tmp_path, monitor=None)])
    resumed, rest = _run(ODE(hidden=[8]), epochs=3, resume=str(tmp_path / "last.npz"))
    assert [{k: v for k, v in e.items() if k != "time"} for e in rest] == \
        [{k: v for k, v in e.items() if k != "time"} for e in whole]
    for key, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[key], value, err_msg=key)


@pytest.mark.parametrize("keys, message", [
    ({"equation": "heat"}, "task ode: equation must be one of exponential_decay, harmonic_oscillator, got 'heat'"),
    ({"omega": 2.0}, "omega: the equation exponential_decay has no parameter omega"),
    ({"equation": "harmonic_oscillator", "gamma": 1.0}, "gamma: the equation harmonic_oscillator has no parameter"),
    ({"equation": "harmonic_oscillator", "omega": 0.0}, "task ode: omega must be > 0, got 0.0"),
])
def test_bad_keys_are_named(keys, message):
    with pytest.raises(ValueError, match=message):
        ODE(**keys)


def test_points_outside_the_interval_and_wrong_inputs_are_named():
    data = load_dataset("collocation", n_points=30, high=2.0, validation_split=0.0, test_split=0.0)
    with pytest.raises(ValueError, match=r"outside \[0, x_max\] = \[0, 1\]; make data.low, data.high and task.x_max"):
        _run(ODE(hidden=[4]), epochs=1, data=data)
    digits = load_dataset("digits", flatten=True)
    with pytest.raises(ValueError, match=r"one input per sample .* got samples of shape \(64,\)"):
        ODE().build_model("model", digits.info)


@pytest.mark.parametrize("name", ["ode_decay", "ode_oscillator"])
def test_the_shipped_configs_run_and_resume_to_the_same_files(tmp_path, name):
    """A short run of each shipped ode config (cpu): summary.json's max_abs_error is the last epoch's, solution.png is
    drawn, and a run stopped after epoch 1 and resumed ends with the same numbers."""
    gn.set_device("cpu")
    short = ["trainer.epochs=2", "scheduler.T_max=2", "data.n_points=100", "device=cpu"]
    config = load_config(CONFIGS / f"{name}.yaml", short)
    summary = run(config, str(tmp_path / "whole"), config_name=name, progress=False)
    history = [json.loads(line) for line in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert summary["max_abs_error"] == history[-1]["max_abs_error"] and summary["max_abs_error"] < 20
    assert (tmp_path / "whole" / "solution.png").stat().st_size > 1000
    run(load_config(CONFIGS / f"{name}.yaml", ["trainer.epochs=1"] + short[1:]), str(tmp_path / "cut"),
        config_name=name, progress=False)
    resumed = run(config, str(tmp_path / "cut"), resume=True, config_name=name, progress=False)
    assert resumed["max_abs_error"] == summary["max_abs_error"] and resumed["test_loss"] == summary["test_loss"]
