"""The task registry and the Trainer/config/runner plumbing every task goes through: the contract's checks, a
two-model task in the Trainer (prefixed checkpoint keys, one optimizer each, task state, exact mid-epoch resume),
the ``task:`` section's errors naming the key path, and the ``regress`` task against a NumPy reference."""
import json
import signal

import numpy as np
import pytest

import gpunet
from gpunet.config import ConfigError, loads_config
from gpunet.data import DataLoader
from gpunet.runner.run import check_run, run
from gpunet.train import Trainer
from gpunet.train.checkpoint import CheckpointError
from gpunet.train.interrupt import TrainingInterrupted
from gpunet.train.tasks import TASKS, Key, Task, register_task


def test_register_task_refuses_keys_that_are_not_the_signatures():
    class Bad(Task):
        keys = {"rate": Key("a rate")}

        def __init__(self, rate: float = 0.1, extra: int = 2):
            self.rate, self.extra = rate, extra

    with pytest.raises(TypeError, match=r"without a Key: \['extra'\]"):
        register_task("bad")(Bad)

    class NoLoss(Task):
        loss_names = ("mse",)

    with pytest.raises(TypeError, match="loss_names must include 'loss'"):
        register_task("noloss")(NoLoss)
    assert "bad" not in TASKS and "noloss" not in TASKS


class TwoHeads(Task):
    """A test task with two models, each fitted to the targets by its own optimizer, and a state of its own (the
    batches seen, which also scales the second model's loss, so losing it on resume changes the numbers)."""

    models = ("first", "second")
    uses_loss = False
    loss_names = ("loss", "first", "second")
    seen = 0

    def _losses(self, x, y):
        target = self.input(np.eye(2, dtype=np.float32)[y])
        first = ((self.models["first"](self.input(x)) - target) ** 2).mean()
        second = ((self.models["second"](self.input(x)) - target) ** 2).mean() * (1 + self.seen % 3)
        return {"loss": first + second, "first": first, "second": second}

    def train_step(self, x, y):
        losses = self._losses(x, y)
        self.update("first", losses["first"])
        self.update("second", losses["second"])
        self.seen += 1
        return losses

    def eval_step(self, x, y):
        return self._losses(x, y)

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]


def _two_heads(xor, callbacks=()):
    gpunet.manual_seed(0)
    nn = gpunet.nn
    models = {"first": nn.Linear(2, 2), "second": nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 2))}
    optimizers = {"first": gpunet.optim.SGD(models["first"].parameters(), lr=0.1),
                  "second": gpunet.optim.Adam(models["second"].parameters(), lr=0.01)}
    trainer = Trainer(models, None, optimizers, callbacks=list(callbacks), metrics=(), task=TwoHeads())
    train = DataLoader(xor.train, 16, shuffle=True, seed=0)
    return trainer, train, DataLoader(xor.validation, 64)


class StopAt(gpunet.train.Callback):
    def __init__(self, step):
        self.step = step

    def on_batch_end(self, step, logs):
        if logs["global_step"] == self.step:
            import os
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_two_model_task_trains_checkpoints_and_resumes_exactly_mid_epoch(xor, tmp_path):
    straight, train, val = _two_heads(xor)
    history = straight.fit(train, val, epochs=3)
    assert set(history.epochs[0]) >= {"train_loss", "train_first", "train_second", "val_loss", "val_first"}
    assert history["train_first"][2] < history["train_first"][0]  # each model learns with its own optimizer
    state = straight.checkpoint()
    assert {k.split(".")[0] for k in state.model} == {"first", "second"}  # one state_dict, prefixed keys
    assert set(state.optimizer) == {"first", "second"} and "exp_avg" in str(state.optimizer["second"])
    assert state.extra["task"] == {"name": "", "state": {"seen": 27}, "ranks": [{}]}

    path = tmp_path / "last.npz"
    from gpunet.train import ModelCheckpoint
    interrupted, train, val = _two_heads(xor, [StopAt(13), ModelCheckpoint(tmp_path, monitor=None)])
    with pytest.raises(TrainingInterrupted):
        interrupted.fit(train, val, epochs=3)
    fresh, train, val = _two_heads(xor)
    fresh.fit(train, val, epochs=3, resume=str(path))
    assert fresh.task.seen == 27
    assert [{k: v for k, v in e.items() if k != "time"} for e in fresh.history] == \
        [{k: v for k, v in e.items() if k != "time"} for e in straight.history]
    for key, value in straight.model.state_dict().items():
        np.testing.assert_array_equal(fresh.model.state_dict()[key], value, err_msg=key)


def test_a_checkpoint_of_another_task_is_refused_by_name(xor, tmp_path):
    trainer, train, val = _two_heads(xor)
    trainer.fit(train, val, epochs=1)
    state = trainer.checkpoint()
    state.extra["task"]["name"] = "autoencode"
    with pytest.raises(CheckpointError, match="saved by a 'autoencode' task"):
        _two_heads(xor)[0].load_checkpoint(state)


def test_a_task_that_uses_a_loss_refuses_to_train_without_one():
    model = gpunet.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="the 'classify' task computes its loss with loss_fn, which is None"):
        Trainer(model, None, gpunet.optim.SGD(model.parameters(), lr=0.1))
    assert Trainer(model, None, None).predict(np.zeros((3, 2), np.float32)).shape == (3, 2)  # predicting needs none


def test_model_and_optimizer_dicts_must_name_the_tasks_models():
    with pytest.raises(ValueError, match="names first, but task '' has the models first, second"):
        Trainer({"first": gpunet.nn.Linear(2, 2)}, None, None, task=TwoHeads())
    with pytest.raises(ValueError, match="give the model as a dict by model name"):
        Trainer(gpunet.nn.Linear(2, 2), None, None, task=TwoHeads())


AUTOENCODER = """\
seed: 0
device: cpu
data: {name: digits, flatten: true, normalize: scale}
task: {type: autoencode}
models:
  encoder: {layers: [{type: Linear, in_features: 64, out_features: 8}, {type: ReLU}]}
  decoder: {layers: [{type: Linear, in_features: 8, out_features: 64}, {type: Sigmoid}]}
optimizer: {name: adam}
trainer: {epochs: 1}
"""


def _problems(text, *overrides):
    with pytest.raises(ConfigError) as raised:
        loads_config(text, list(overrides), "ae.yaml")
    return str(raised.value)


@pytest.mark.parametrize("override, expected", [
    ("task.noise_std=-0.1", "task.noise_std: out of range; got -0.1"),
    ("task.nois_std=0.1", "task.nois_std: unknown key"),
    ("task.sparsity=l2", "task.sparsity: unknown value"),
    ("task.sparsity_target=1", "task.sparsity_target: out of range"),
    ("task.type=autoencoder", "task.type: unknown task"),
    ("models.encodr={layers: [{type: ReLU}]}", "models.encodr: task 'autoencode' has no model 'encodr'"),
    ("optimizers.generator={name: sgd, lr: 0.1}", "optimizers.generator: task 'autoencode' has no model"),
    ("trainer.metrics=[accuracy]", "trainer.metrics: task 'autoencode' reports its own figures"),
    ("checkpoint.monitor=val_accuracy", "checkpoint.monitor: not a logged metric"),
    ("model={layers: [{type: ReLU}]}", "model: task 'autoencode' has the models encoder, decoder"),
])
def test_bad_task_settings_name_the_key_path(override, expected):
    assert expected in _problems(AUTOENCODER, override)


def test_a_missing_model_and_a_loss_for_a_task_without_one_are_named():
    text = AUTOENCODER.replace("  decoder: {layers: [{type: Linear, in_features: 8, out_features: 64}, "
                               "{type: Sigmoid}]}\n", "")
    assert "models.decoder: missing required key (a model of task 'autoencode')" in _problems(text)
    classify = AUTOENCODER.replace("task: {type: autoencode}", "task: {type: classify}")
    assert "model: missing required key" in _problems(classify)


def test_task_defaults_fill_the_loss_and_metrics():
    config = loads_config(AUTOENCODER, ["checkpoint.monitor=val_mse"])
    assert config["loss"]["name"] == "mse" and config["trainer"]["metrics"] == []
    assert config["task"] == {"type": "autoencode", "noise_std": 0.0, "sparsity": "none", "sparsity_weight": 0.001,
                              "sparsity_target": 0.05, "contractive_weight": 0.0, "grid_images": 10}


def test_a_decoder_that_cannot_rebuild_the_input_is_a_config_error_at_the_decoder():
    config = loads_config(AUTOENCODER, ["models.decoder.layers[0].out_features=32"])
    with pytest.raises(ConfigError, match=r"models.decoder: the decoder turns codes of shape \(8,\) into \(32,\)"):
        check_run(config, announce_device=False)


REGRESS = """\
seed: 0
device: cpu
data: {name: planewave, sequences: 24, frames: 5, points: 6, val_split: 0.2}
task: {type: regress}
model: {layers: [{type: Linear, in_features: 6, out_features: 6}]}
optimizer: {name: sgd, lr: 0.1}
trainer: {epochs: 3, batch_size: 8}
"""


def test_regress_reports_test_mse_and_rmse_that_numpy_recomputes(tmp_path, device, monkeypatch):
    monkeypatch.setenv("GPUNET_DEVICE", device)
    config = loads_config(REGRESS, ["device=auto"])
    assert config["loss"]["name"] == "mse" and config["trainer"]["metrics"] == ["mse", "rmse"]
    summary = run(config, str(tmp_path / "run"), progress=False, announce_device=False)
    from gpunet.config import build_dataset
    from gpunet.train.checkpoint import load_checkpoint
    test = build_dataset(config).test
    weights = load_checkpoint(tmp_path / "run/checkpoints/last.npz").model
    prediction = test.x.astype(np.float64) @ weights["0.weight"].T.astype(np.float64) + weights["0.bias"]
    expected = np.mean((prediction - test.y) ** 2)
    assert summary["test_mse"] == pytest.approx(expected, rel=1e-5)
    assert summary["test_rmse"] == pytest.approx(np.sqrt(expected), rel=1e-5)
    assert summary["test_loss"] == pytest.approx(expected, rel=1e-5)
    assert json.loads((tmp_path / "run/summary.json").read_text())["test_mse"] == summary["test_mse"]


def test_reduce_lr_on_plateau_reduces_every_models_learning_rate(xor):
    from gpunet.train import ReduceLROnPlateau

    plateau = ReduceLROnPlateau("train_loss", mode="max", factor=0.5, patience=0)  # a falling loss never improves
    trainer, train, val = _two_heads(xor, [plateau])
    trainer.fit(train, val, epochs=3)
    assert [trainer.optimizers[name].param_groups[0]["lr"] for name in ("first", "second")] == [0.025, 0.0025]
    state = plateau.state_dict()
    assert set(state) == {"first", "second"}
    again = ReduceLROnPlateau("train_loss", mode="max", factor=0.5, patience=0)
    _two_heads(xor, [again])
    again.load_state_dict(state)
    assert again.state_dict() == state


def test_a_sweep_over_a_task_key_trains_every_cell_with_its_value(tmp_path, capsys):
    import csv

    from gpunet.cli import main

    path = tmp_path / "ae.yaml"
    path.write_text(AUTOENCODER)
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--grid", "task.noise_std=0,0.3", "--out", str(out)]) == 0, \
        capsys.readouterr().err
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["task.noise_std"] for row in rows] == ["0", "0.3"]
    summaries = [json.loads(p.read_text()) for p in sorted(out.glob("*/summary.json"))]
    assert len(summaries) == 2 and all("test_mse" in s for s in summaries)
    assert summaries[0]["train_loss"] != summaries[1]["train_loss"]  # the noise changed the training
    configs = sorted(out.glob("*/config.yaml"))
    assert [loads_config(p.read_text())["task"]["noise_std"] for p in configs] == [0.0, 0.3]


@pytest.mark.parametrize("earlier", ["before tasks", "with LossMeans"])
def test_a_mid_epoch_checkpoint_of_the_earlier_format_resumes_exactly(xor, tmp_path, earlier):
    """Checkpoints written before tasks had no task entry and kept the epoch's loss in the collector (loss_sum);
    for a while after, the named losses had an entry of their own ("losses")."""
    from gpunet.train import ModelCheckpoint
    from gpunet.train.checkpoint import load_checkpoint, save_checkpoint

    def classic(callbacks=()):
        gpunet.manual_seed(0)
        model = gpunet.nn.Sequential(gpunet.nn.Linear(2, 8), gpunet.nn.Tanh(), gpunet.nn.Linear(8, 2))
        trainer = Trainer(model, gpunet.nn.CrossEntropyLoss(), gpunet.optim.SGD(model.parameters(), lr=0.5),
                          callbacks=list(callbacks))
        return trainer, DataLoader(xor.train, 16, shuffle=True, seed=0), DataLoader(xor.validation, 64)

    straight, train, val = classic()
    straight.fit(train, val, epochs=2)
    stopped, train, val = classic([StopAt(13), ModelCheckpoint(tmp_path, monitor=None)])
    with pytest.raises(TrainingInterrupted):
        stopped.fit(train, val, epochs=2)
    old = load_checkpoint(tmp_path / "last.npz")
    collector = old.extra["partial_epoch"]["collector"]
    losses = {"sums": collector.pop("sums"), "counts": collector.pop("counts")}
    if earlier == "before tasks":
        old.extra.pop("task")
        collector["loss_sum"] = losses["sums"]["loss"]  # where the earlier format kept it
    else:
        collector["loss_sum"] = 0.0
        old.extra["partial_epoch"]["losses"] = losses
    save_checkpoint(tmp_path / "old.npz", old)
    fresh, train, val = classic()
    fresh.fit(train, val, epochs=2, resume=str(tmp_path / "old.npz"))
    assert [{k: v for k, v in e.items() if k != "time"} for e in fresh.history] == \
        [{k: v for k, v in e.items() if k != "time"} for e in straight.history]


CLASSIFY = """\
seed: 0
device: auto
data: {name: xor, n_samples: 200, noise: 0.2}
model: {layers: [{type: Linear, in_features: 2, out_features: 8}, {type: Tanh},
                 {type: Linear, in_features: 8, out_features: 2}]}
loss: {name: cross_entropy}
optimizer: {name: sgd, lr: 0.5}
trainer: {epochs: 3, batch_size: 16}
"""


def test_classify_reports_the_accuracy_numpy_recomputes_on_every_device(tmp_path, device, monkeypatch):
    monkeypatch.setenv("GPUNET_DEVICE", device)
    config = loads_config(CLASSIFY)
    assert config["task"] == {"type": "classify"} and config["trainer"]["metrics"] == ["accuracy"]
    summary = run(config, str(tmp_path / "run"), progress=False, announce_device=False)
    from gpunet.config import build_dataset
    from gpunet.train.checkpoint import load_checkpoint
    test = build_dataset(config).test
    w = load_checkpoint(tmp_path / "run/checkpoints/last.npz").model
    hidden = np.tanh(test.x.astype(np.float64) @ w["0.weight"].T + w["0.bias"])
    scores = hidden @ w["2.weight"].T + w["2.bias"]
    assert summary["test_accuracy"] == pytest.approx(np.mean(scores.argmax(axis=1) == test.y))
    log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
    assert summary["test_loss"] == pytest.approx(-np.mean(log_p[np.arange(len(test.y)), test.y]), rel=1e-5)


def test_a_decoder_layer_that_does_not_take_the_codes_is_named_with_the_fix():
    config = loads_config(AUTOENCODER, ["models.decoder.layers[0].in_features=16"])
    with pytest.raises(ConfigError) as raised:
        check_run(config, announce_device=False)
    assert "models.decoder.layers[0] (Linear): the dry run failed: the layer receives input of shape (2, 8)" \
        in str(raised.value)
    assert "hint: the encoder gives samples of shape (8,), that is 8 features: set in_features: 8" in str(raised.value)


def test_task_keys_get_their_kinds_from_the_annotations_and_their_defaults_from_the_signature():
    from gpunet.config.schema import task_section
    from gpunet.config.spec import Checker

    class Keys(Task):
        name = "keys"
        keys = {"steps": Key("steps", ge=1), "rate": Key("rate", gt=0, lt=1), "mode": Key("mode", choices=("a", "b")),
                "frozen": Key("names"), "rates": Key("per-layer rates"), "flag": Key("a flag")}

        def __init__(self, steps: int = 2, rate: float = 0.5, mode: str = "a", frozen: list[str] | None = None,
                     rates: dict[str, float] | None = None, flag: bool = False):
            self.steps, self.rate, self.mode, self.frozen, self.rates, self.flag = steps, rate, mode, frozen, rates, flag

    section = task_section(Keys)
    assert {k: f.kind.describe() for k, f in section.fields.items()} == {
        "steps": "an integer >= 1", "rate": "a number in (0, 1)", "mode": "a, b",
        "frozen": "null or a list of (a string)", "rates": "null or a mapping of argument names to values",
        "flag": "true or false"}
    ck = Checker()
    resolved = section.check({"frozen": ["0", "2"], "rates": {"4": 0.01}}, ("task",), ck)
    assert not ck.problems and resolved == {"steps": 2, "rate": 0.5, "mode": "a", "frozen": ["0", "2"],
                                            "rates": {"4": 0.01}, "flag": False}
    section.check({"steps": 0, "mode": "c"}, ("task",), ck)
    assert [str(p).split(":")[0] for p in ck.problems] == ["task.steps", "task.mode"]


def test_the_progress_display_and_telemetry_show_a_tasks_losses(tmp_path, capsys, monkeypatch):
    from gpunet.cli import main

    monkeypatch.setenv("GPUNET_DEVICE", "cuda-emu")
    path = tmp_path / "ae.yaml"
    path.write_text(AUTOENCODER.replace("device: cpu", "device: auto") +
                    "callbacks: [{type: progress, style: lines}]\n")
    assert main(["train", str(path), "--out", str(tmp_path / "run"), "trainer.log_every=20"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("epoch 1/1 step 20/") and " loss=" in out[0]
    assert out[-2].startswith("epoch 1/1 train_loss=") and " train_mse=" in out[-2] and " val_mse=" in out[-2]
    record = json.loads((tmp_path / "run/metrics.jsonl").read_text())
    assert record["train_mse"] > 0 and {"cupy_pool_used_bytes", "cupy_pool_total_bytes"} <= set(record)  # device state


@pytest.mark.parametrize("task, keys, message", [
    ("rbm", {"n_hidden": 0}, "task rbm: n_hidden must be >= 1, got 0"),
    ("rbm", {"n_hidden": 2.5}, "task rbm: n_hidden must be an integer, got 2.5"),
    ("rbm", {"persistent": 1}, "task rbm: persistent must be true or false, got 1"),
    ("dbn", {"hidden": [256, 0]}, r"task dbn: hidden must be >= 1, got \[256, 0\]"),
    ("dbn", {"hidden": 256}, "task dbn: hidden must be a list, got 256"),
    ("dbn", {"dropout": 1.0}, "task dbn: dropout must be < 1, got 1.0"),
    ("perceptron", {"kind": "ternary"}, "task perceptron: kind must be one of binary, bipolar, got 'ternary'"),
    ("autoencode", {"sparsity_target": 0}, "task autoencode: sparsity_target must be > 0, got 0"),
    ("ode", {"gamma": "fast"}, "task ode: gamma must be a number, got 'fast'"),
    ("finetune", {"freeze": [0]}, r"task finetune: freeze must be a list of strings, got \[0\]"),
    ("gan", {"clip_value": -0.01}, "task gan: clip_value must be > 0, got -0.01"),
])
def test_every_task_checks_its_keys_from_python_as_the_config_does(task, keys, message):
    """One checker (``check_keys``) reads each key's annotation and Key bounds, for every task."""
    with pytest.raises(ValueError, match=message):
        TASKS[task](**keys)


def test_every_task_calls_the_key_checker():
    """A task whose __init__ forgot check_keys would accept what its config refuses."""
    import inspect
    for name, cls in TASKS.items():
        if cls.__init__ is not object.__init__ and cls.keys:
            assert "check_keys(self" in inspect.getsource(cls.__init__), name


@pytest.mark.parametrize("name", ["rbm", "dbn", "perceptron"])
def test_an_empty_share_of_a_data_parallel_batch_joins_the_gradient_average_and_changes_nothing(name, monkeypatch):
    """A rank whose share of a batch is empty (data parallel) still joins the ranks' gradient average, with no
    gradient of its own: alone it changes nothing, even right after a step that left gradients behind."""
    import test_task_dbn
    import test_task_perceptron
    import test_task_rbm
    from gpunet.data import load_dataset

    if name == "perceptron":
        trainer, train, _ = test_task_perceptron.make("and")
    else:
        digits = load_dataset("digits", flatten=True, normalize="scale", seed=0)
        trainer, train, _ = (test_task_rbm if name == "rbm" else test_task_dbn).make(digits, persistent=True)
    x, y = next(iter(train))
    assert trainer.task.train_step(x, y)  # a real step: gradients (and momentum) remain
    before, averaged = trainer.model.state_dict(), []
    apply_gradients = trainer.apply_gradients  # where the ranks' gradients are averaged
    monkeypatch.setattr(trainer, "apply_gradients", lambda name: averaged.append(name) or apply_gradients(name))
    assert trainer.task.train_step(x[:0], y[:0]) == {}
    assert averaged == ["model"]
    for key, value in trainer.model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
