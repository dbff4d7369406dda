"""The finetune task on tiny digits data, on every backend: pretrained body loaded and the head not, frozen layers
bitwise unchanged and absent from the optimizer's state, per-group learning rates, the from-scratch baseline trained
on the same batches and resumed exactly, and bad names and files named."""
import os
import signal

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.data import DataLoader, load_dataset
from gpunet.train import ModelCheckpoint, Trainer
from gpunet.train.interrupt import TrainingInterrupted
from gpunet.train.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from gpunet.train.tasks import TASKS
from gpunet.train.tasks.finetune import Finetune

DIGITS = dict(flatten=True, normalize="scale", validation_split=0.0)


def _net():
    return gn.nn.Sequential(gn.nn.Linear(64, 16), gn.nn.ReLU(), gn.nn.Linear(16, 12), gn.nn.ReLU(),
                            gn.nn.Linear(12, 5))


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", classes=[5, 6, 7, 8, 9], train_per_class=10, **DIGITS)


@pytest.fixture
def pretrained(tmp_path):
    """A network trained a little on digits 0-4, saved as a gpunet checkpoint."""
    gn.manual_seed(1)
    model = _net()
    old = load_dataset("digits", classes=[0, 1, 2, 3, 4], **DIGITS)
    trainer = Trainer(model, gn.nn.CrossEntropyLoss(), gn.optim.Adam(model.parameters(), lr=0.01))
    trainer.fit(DataLoader(old.train, batch_size=64, shuffle=True), epochs=2)
    path = tmp_path / "best.npz"
    save_checkpoint(path, Checkpoint(model=model.state_dict()))
    return path


class _SignalAt(gn.train.Callback):
    """Sends SIGTERM to this process after global step ``step``: the Trainer saves mid-epoch and stops."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, step, logs):
        if logs["global_step"] == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def _fit(task, data, epochs=2, resume=None, lr=0.05, callbacks=()):
    gn.manual_seed(0)
    model = _net()
    optimizer = gn.optim.SGD(task.param_groups("model", model), lr=lr, momentum=0.9)
    trainer = Trainer(model, gn.nn.CrossEntropyLoss(), optimizer, task=task, callbacks=list(callbacks))
    history = trainer.fit(DataLoader(data.train, batch_size=10, shuffle=True, seed=0),
                          DataLoader(data.test, batch_size=100), epochs=epochs, resume=resume)
    return trainer, history


def test_finetune_is_registered():
    assert TASKS["finetune"] is Finetune and Finetune.data == "labelled"


def test_body_loaded_head_fresh_frozen_layers_fixed_and_stateless(device, data, pretrained):
    weights = load_checkpoint(pretrained).model
    task = Finetune(weights=str(pretrained), freeze=["0"], baseline=False)
    gn.manual_seed(0)
    fresh_head = _net().state_dict()["4.weight"]  # what the model's own initialisation gives the head
    gn.manual_seed(0)
    model = _net()
    optimizer = gn.optim.SGD(task.param_groups("model", model), lr=0.05, momentum=0.9)
    trainer = Trainer(model, gn.nn.CrossEntropyLoss(), optimizer, task=task)
    loaded = model.state_dict()
    for key in ("0.weight", "0.bias", "2.weight", "2.bias"):
        np.testing.assert_array_equal(loaded[key], weights[key])
    np.testing.assert_array_equal(loaded["4.weight"], fresh_head)
    assert not np.array_equal(loaded["4.weight"], weights["4.weight"])

    trainer.fit(DataLoader(data.train, batch_size=10, shuffle=True), epochs=2)
    after = model.state_dict()
    np.testing.assert_array_equal(after["0.weight"], weights["0.weight"])  # frozen: bitwise
    np.testing.assert_array_equal(after["0.bias"], weights["0.bias"])
    assert not np.array_equal(after["2.weight"], weights["2.weight"])
    assert model[0].weight.grad is None
    state = optimizer.state_dict()
    assert len(state["state"]) == 4  # momentum buffers of 2.* and 4.* only
    assert sum(len(g["params"]) for g in state["param_groups"]) == 4


def test_body_and_head_learn_at_their_own_rates(data, pretrained):
    task = Finetune(weights=str(pretrained), freeze=["0"], body_lr=0.001, baseline=False)
    model = _net()
    optimizer = gn.optim.SGD(task.param_groups("model", model), lr=0.1)
    assert [g["lr"] for g in optimizer.param_groups] == [0.001, 0.1]
    assert [[id(p) for p in g["params"]] for g in optimizer.param_groups] == \
        [[id(model[2].weight), id(model[2].bias)], [id(model[4].weight), id(model[4].bias)]]


def test_the_baseline_trains_from_scratch_on_the_same_batches(device, data, pretrained):
    trainer, history = _fit(Finetune(weights=str(pretrained)), data, epochs=3)
    task = trainer.task
    assert set(history.epochs[-1]) >= {"train_scratch_loss", "val_scratch_loss", "val_scratch_accuracy",
                                       "val_accuracy"}
    evaluation = trainer.evaluate(DataLoader(data.test, batch_size=100))
    with gn.no_grad():
        predicted = task.scratch(gn.tensor(data.test.x)).numpy().argmax(axis=1)
    assert evaluation["scratch_accuracy"] == pytest.approx(np.mean(predicted == data.test.y))
    assert evaluation["scratch_accuracy"] == history["val_scratch_accuracy"][-1]


def test_baseline_copy_equals_a_fresh_network_trained_alone(data):
    """The scratch baseline is exactly the plain classify run of a freshly initialised network."""
    gn.set_device("cpu")
    task = Finetune(baseline=True)
    gn.manual_seed(0)
    model = _net()
    trainer = Trainer(model, gn.nn.CrossEntropyLoss(), gn.optim.SGD(task.param_groups("model", model), lr=0.05),
                      task=task)
    start = {k: v.copy() for k, v in task.scratch.state_dict().items()}
    trainer.fit(DataLoader(data.train, batch_size=10, shuffle=True, seed=0), epochs=2)

    alone = _net()
    alone.load_state_dict(start)
    plain = Trainer(alone, gn.nn.CrossEntropyLoss(), gn.optim.SGD(alone.parameters(), lr=0.05))
    plain.fit(DataLoader(data.train, batch_size=10, shuffle=True, seed=0), epochs=2)
    for key, value in alone.state_dict().items():
        np.testing.assert_allclose(task.scratch.state_dict()[key], value, rtol=1e-6, atol=1e-7, err_msg=key)


def test_resume_is_exact_with_the_baseline(tmp_path, data, pretrained):
    gn.set_device("cpu")
    _, whole = _fit(Finetune(weights=str(pretrained), freeze=["0"]), data, epochs=4)
    first, _ = _fit(Finetune(weights=str(pretrained), freeze=["0"]), data, epochs=2)
    save_checkpoint(tmp_path / "c.npz", first.checkpoint())
    _, rest = _fit(Finetune(weights=str(pretrained), freeze=["0"]), data, epochs=4, resume=str(tmp_path / "c.npz"))
    for key in ("train_loss", "val_accuracy", "train_scratch_loss", "val_scratch_accuracy"):
        assert rest[key] == whole[key], key


def test_resume_mid_epoch_is_exact_with_the_baseline(tmp_path, data, pretrained):
    """Stopped by SIGTERM at step 7 (of 5 per epoch), resumed from last.npz: the same history, weights and baseline."""
    gn.set_device("cpu")
    straight, whole = _fit(Finetune(weights=str(pretrained), freeze=["0"]), data, epochs=3)
    with pytest.raises(TrainingInterrupted):
        _fit(Finetune(weights=str(pretrained), freeze=["0"]), data, epochs=3,
             callbacks=[_SignalAt(7), ModelCheckpoint(tmp_path, monitor=None)])
    assert load_checkpoint(tmp_path / "last.npz").step == 7
    resumed, rest = _fit(Finetune(weights=str(pretrained), freeze=["0"]), data, epochs=3,
                         resume=str(tmp_path / "last.npz"))
    assert [{k: v for k, v in e.items() if k != "time"} for e in rest] == \
        [{k: v for k, v in e.items() if k != "time"} for e in whole]
    for mine, theirs in ((resumed.model, straight.model), (resumed.task.scratch, straight.task.scratch)):
        for key, value in theirs.state_dict().items():
            np.testing.assert_array_equal(mine.state_dict()[key], value, err_msg=key)


def test_pytorch_weights_fine_tune_the_same(tmp_path, data):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 12), torch.nn.ReLU(),
                              torch.nn.Linear(12, 3))  # another head size: replaced anyway
    torch.save(net.state_dict(), tmp_path / "net.pt")
    task = Finetune(weights=str(tmp_path / "net.pt"), baseline=False)
    model = _net()
    Trainer(model, gn.nn.CrossEntropyLoss(), gn.optim.SGD(task.param_groups("model", model), lr=0.1), task=task)
    np.testing.assert_array_equal(model.state_dict()["2.weight"], net.state_dict()["2.weight"].numpy())


@pytest.mark.parametrize("keys, message", [
    ({"freeze": ["0", "fc"]}, r"freeze: layer 'fc' names no layer with parameters; the model's layers are: "
                              r"0, 2, 4"),
    ({"freeze": ["4"]}, r"freeze: the head '4' is replaced and must train"),
    ({"head": "3"}, r"head: layer '3' names no layer with parameters; the model's layers are: 0, 2, 4"),
])
def test_bad_layer_names_are_named_with_the_known_ones(keys, message):
    with pytest.raises(ValueError, match=message):
        Finetune(**keys).param_groups("model", _net())


def test_missing_and_mismatched_weights_are_named(tmp_path):
    task = Finetune(weights="nowhere/best.npz")
    model = _net()
    with pytest.raises(CheckpointError, match=r"task.weights: 'nowhere/best.npz' is not a file .* or let this run "
                                              r"pre-train with task.pretrain instead of task.weights"):
        Trainer(model, gn.nn.CrossEntropyLoss(), gn.optim.SGD(task.param_groups("model", model), lr=0.1), task=task)
    other = gn.nn.Sequential(gn.nn.Linear(64, 10), gn.nn.ReLU(), gn.nn.Linear(10, 12), gn.nn.ReLU(),
                             gn.nn.Linear(12, 5))
    np.savez(tmp_path / "w.npz", **other.state_dict())
    task = Finetune(weights=str(tmp_path / "w.npz"), baseline=False)
    model = _net()
    with pytest.raises(ValueError, match=r"w.npz do not fit the model below its head '4': 0.weight has shape "
                                         r"\(10, 64\) there but \(16, 64\) in the model"):
        Trainer(model, gn.nn.CrossEntropyLoss(), gn.optim.SGD(task.param_groups("model", model), lr=0.1), task=task)


def test_a_bad_freeze_name_in_a_config_is_a_config_error_at_its_key(pretrained):
    from gpunet.config import ConfigError, build_param_groups, build_task, loads_config
    text = f"""
task: {{type: finetune, weights: {str(pretrained)!r}, freeze: ['0', fc]}}
data: {{name: digits, flatten: true, classes: [5, 6, 7, 8, 9], train_per_class: 10}}
model:
  layers:
    - {{type: Linear, in_features: 64, out_features: 16}}
    - {{type: ReLU}}
    - {{type: Linear, in_features: 16, out_features: 12}}
    - {{type: ReLU}}
    - {{type: Linear, in_features: 12, out_features: 5}}
loss: {{name: cross_entropy}}
optimizer: {{name: sgd, lr: 0.1}}
trainer: {{epochs: 1}}
"""
    config = loads_config(text, source="my.yaml")
    with pytest.raises(ConfigError, match=r"my.yaml:2: task.freeze: layer 'fc' names no layer with parameters; "
                                          r"the model's layers are: 0, 2, 4"):
        build_param_groups(config, build_task(config), "model", _net())


def test_the_shipped_transfer_config_fine_tunes_from_a_weights_file(tmp_path, pretrained):
    """configs/transfer_digits.yaml with task.weights (a checkpoint of another run) in place of its own pretraining
    (shortened, cpu): test_accuracy next to test_scratch_accuracy, a frozen first layer ends bitwise as the file's,
    and gpunet evaluate brings the baseline back with the checkpoint."""
    from pathlib import Path

    from gpunet.config import load_config
    from gpunet.runner.run import Run, run
    gn.set_device("cpu")
    configs = Path(__file__).resolve().parents[2] / "configs"
    overrides = ["trainer.epochs=6", "device=cpu", "task.pretrain=null", f"task.weights={pretrained}",
                 'task.freeze=["0"]', "model.layers[0].out_features=16", "model.layers[2].in_features=16",
                 "model.layers[2].out_features=12", "model.layers[4].in_features=12"]
    summary = run(load_config(configs / "transfer_digits.yaml", overrides), str(tmp_path / "fine"),
                  config_name="fine", progress=False)
    assert not os.path.exists(tmp_path / "fine" / "pretrain")
    assert 0 <= summary["test_accuracy"] <= 1 and summary["test_scratch_accuracy"] > 0.3
    assert "pretrain_test_accuracy" not in summary
    rebuilt, _, _ = Run.from_checkpoint(str(tmp_path / "fine" / "checkpoints" / "last.npz"), announce_device=False)
    evaluation = rebuilt.evaluate("test")
    assert evaluation["test_scratch_accuracy"] == summary["test_scratch_accuracy"]
    assert evaluation["test_accuracy"] == summary["test_accuracy"]
    final = load_checkpoint(tmp_path / "fine" / "checkpoints" / "last.npz").model
    weights = load_checkpoint(pretrained).model
    np.testing.assert_array_equal(final["0.weight"], weights["0.weight"])
    assert not np.array_equal(final["2.weight"], weights["2.weight"])


def test_the_baseline_refuses_data_parallel_runs_by_name(data):
    from gpunet.train.distributed import DistributedError
    task = Finetune()
    model = _net()
    trainer = Trainer(model, gn.nn.CrossEntropyLoss(), gn.optim.SGD(task.param_groups("model", model), lr=0.1),
                      task=task)
    trainer.distributed = object()  # as a data-parallel rank's Trainer has
    with pytest.raises(DistributedError, match="task.baseline=false"):
        task.train_step(data.train.x[:4], data.train.y[:4])
