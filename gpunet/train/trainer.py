"""The Trainer: ``fit`` / ``evaluate`` / ``predict`` for a model, a loss and an optimizer (Keras' loop, PyTorch's
parts), or for any training task (``gpunet.train.tasks``: named models, one optimizer each, the task's own steps).

Batches arrive as NumPy arrays (from ``gpunet.data.DataLoader``) and become gpunet tensors on the Trainer's device;
all array math runs through gpunet ops, and metrics are computed on host copies. A step never waits for a CUDA
device: the steps' named losses and outputs stay on the device (``EpochCollector``) until a log point (every
``log_every`` steps and the end of a pass), when they come to the host in one copy; on the CPU every step is a log
point. Each epoch's logs on a CUDA device hold ``host_syncs``, the device-to-host copies its training and
validation loops made (``backend.host_syncs()``).

Exact resume: ``checkpoint()`` captures everything that decides what happens next (weights, optimizer and scheduler
state, gpunet's RNG, the training loader's position, the epoch in progress, the history and every callback's state),
so a run restored with ``load_checkpoint`` continues with bitwise the same numbers as one never interrupted (on
the CPU).

Clean stops: while ``fit`` runs, SIGINT (Ctrl-C) and SIGTERM stop it between two steps (``gpunet.train.interrupt``):
the callbacks' ``on_interrupt`` run (``ModelCheckpoint`` saves a mid-epoch checkpoint) and ``fit`` raises
``TrainingInterrupted``; calling ``fit`` again continues exactly. A NaN or infinite training loss stops training
(``on_nonfinite="stop"``, the default) before the epoch ends, so no checkpoint of the diverged model is written.

Data parallel: with ``distributed`` set (a ``gpunet.train.distributed.DataParallel``) every rank trains on its
share of each batch, gradients are averaged over the global batch after backward, and losses and metrics are
those of the whole batch / split (see ``gpunet.train.distributed``).
"""
from __future__ import annotations

import math
import signal
import sys
import time

from .. import no_grad, random
from ..autograd import Tensor
from ..backend import current, get_backend
from ..nn import Module, ModuleDict
from ..nn.utils import clip_grad_norm_
from ..ops import tensor
from .callbacks import Callback
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .distributed import local_share, rank_seed
from .interrupt import StopSignals, TrainingInterrupted
from .metrics import EpochCollector
from .tasks import Step, Task
from .tasks.classify import Classify

__all__ = ["History", "Trainer"]


class History:
    """The per-epoch logs of ``fit``: ``history.epochs`` is a list of dicts; ``history["val_loss"]`` the values of
    one key over the epochs (``None`` where an epoch lacks it)."""

    def __init__(self, epochs=None):
        self.epochs: list[dict] = list(epochs or [])

    def append(self, logs: dict) -> None:
        self.epochs.append(logs)

    def __getitem__(self, key: str) -> list:
        if not any(key in e for e in self.epochs):
            known = sorted({k for e in self.epochs for k in e})
            raise KeyError(f"no {key!r} in the history; logged keys: {', '.join(known) or 'none (no epochs yet)'}")
        return [e.get(key) for e in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)

    def __iter__(self):
        return iter(self.epochs)

    def __repr__(self) -> str:
        return f"History({len(self.epochs)} epochs, keys={sorted({k for e in self.epochs for k in e})})"


def _as_floats(losses: dict) -> dict:
    """Named losses (tensors on the device or numbers) as Python floats."""
    return {name: float(value.item()) if isinstance(value, Tensor) else float(value) for name, value in losses.items()}


class Trainer:
    """Train ``model`` on ``loss_fn(model(x), y)`` with ``optimizer``, or run any training ``task``.

    ``task`` (a ``gpunet.train.tasks.Task``; default: ``classify``, which is the model, loss and optimizer above)
    decides what a step does; a task with several models takes ``model`` and ``optimizer`` (and ``scheduler``) as
    dicts by model name (``{"generator": G, "discriminator": D}``). ``scheduler`` steps after every epoch
    (``scheduler_interval="epoch"``) or every batch (``"step"``); a ``ReduceLROnPlateau`` scheduler is stepped with
    the epoch's ``scheduler_monitor`` value. ``metrics`` are names from ``gpunet.train.metrics`` (``accuracy``,
    ``top5_accuracy``, ``f1``, ``mse``, ...), reported as ``train_<name>`` and ``val_<name>`` (for tasks whose steps
    give outputs). ``device`` (default: gpunet's current device) is where the models and batches go. ``grad_clip``
    clips the total gradient norm before each step. ``on_nonfinite``: ``"stop"`` ends training
    (``stopped_on_error``) at the first NaN or infinite training loss, naming the epoch and step; ``"continue"``
    trains on. ``optimizer=None`` makes a Trainer that can only ``evaluate`` and ``predict``.
    """

    def __init__(self, model, loss_fn, optimizer, scheduler=None, callbacks=(), metrics=("accuracy",), device=None,
                 grad_clip=None, scheduler_interval: str = "epoch", scheduler_monitor: str = "val_loss",
                 on_nonfinite: str = "stop", task: Task | None = None, log_every: int = 50):
        if on_nonfinite not in ("stop", "continue"):
            raise ValueError(f"Trainer: on_nonfinite must be 'stop' or 'continue', got {on_nonfinite!r}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"Trainer: grad_clip must be a positive number or None, got {grad_clip!r}")
        if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 0:
            raise ValueError(f"Trainer: log_every must be an integer >= 0, got {log_every!r}")
        if task is not None and not isinstance(task, Task):
            raise TypeError(f"Trainer: task must be a gpunet.train.tasks.Task, got {type(task).__name__}")
        self.task = Classify() if task is None else task
        if self.task.uses_loss and loss_fn is None and optimizer is not None:
            raise ValueError(f"Trainer: the {self.task.name!r} task computes its loss with loss_fn, which is None; "
                             "give a loss (e.g. gpunet.nn.CrossEntropyLoss())")
        self.backend = current() if device is None else get_backend(device)
        self.device = self.backend.device
        models = {name: m.to(self.device) for name, m in self._by_model(model, "model").items()}
        self.optimizers = {} if optimizer is None else self._by_model(optimizer, "optimizer")
        self.schedulers = {} if scheduler is None else self._by_model(scheduler, "scheduler")
        # the one model, or a ModuleDict of the named ones (its state_dict keys are "<name>.<key>")
        self.model = next(iter(models.values())) if len(models) == 1 else ModuleDict(models)
        self.optimizer = next(iter(self.optimizers.values()), None)  # the first model's (the only one, mostly)
        self.scheduler = next(iter(self.schedulers.values()), None)
        self.loss_fn = loss_fn
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        self.grad_clip = grad_clip
        self.on_nonfinite = on_nonfinite
        self.log_every = log_every
        self.threshold = getattr(loss_fn, "decision_threshold", 0.5)
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"Trainer: callbacks must be gpunet.train.Callback objects, got "
                                f"{type(callback).__name__}")
        self.callbacks = sorted(callbacks, key=lambda c: c.order)  # stable: equal orders keep the given order
        self.config: dict | None = None  # stored in checkpoints when set (the run's resolved config)
        self.distributed = None  # a DataParallel when this is one rank of a data-parallel run
        self.history = History()
        self.epoch = 0  # completed epochs
        self.global_step = 0  # training batches done
        self.epochs = 0  # the epoch fit() trains up to
        self.steps_per_epoch: int | None = None
        self.stop_training = False
        self.stop_reason: str | None = None
        self.stopped_on_error = False
        self._train_loader = None
        self._partial: dict | None = None  # the epoch in progress: collector, lr, time spent, host syncs
        self._signals: StopSignals | None = None  # while fit runs
        self._updating = False  # inside a step or an epoch's end: weights, counters and position may disagree
        self._heard_stop: bool | None = None  # data parallel: whether any rank had a stop signal at the last step
        self._share = 0  # samples in this rank's share of the batch being trained
        self.task.bind(self, models, self.optimizers, loss_fn)
        for callback in self.callbacks:
            callback.set_trainer(self)

    def _by_model(self, value, what: str) -> dict:
        """``value`` by model name: a dict with exactly the task's model names, or one object for a one-model task."""
        names = tuple(self.task.models)
        if isinstance(value, dict):
            if set(value) != set(names):
                raise ValueError(f"Trainer: the {what} dict names {', '.join(map(str, value)) or 'nothing'}, but task "
                                 f"{self.task.name!r} has the models {', '.join(names)}")
            return {name: value[name] for name in names}
        if len(names) != 1:
            raise ValueError(f"Trainer: task {self.task.name!r} has several models ({', '.join(names)}); give the "
                             f"{what} as a dict by model name")
        if what == "model" and not isinstance(value, Module):
            raise TypeError(f"Trainer: model must be a gpunet.nn.Module, got {type(value).__name__}")
        return {names[0]: value}

    @property
    def models(self) -> dict:
        """The task's models by name."""
        return self.task.models

    # ----- stopping -------------------------------------------------------------------------------------------
    def stop(self, reason: str, error: bool = False) -> None:
        """Ask ``fit`` to stop (after this batch if ``error``, else at the end of this epoch), saying why on stderr."""
        self.stop_training, self.stop_reason, self.stopped_on_error = True, reason, error
        print(f"gpunet: {reason}", file=sys.stderr, flush=True)

    def stop_if_nonfinite(self, loss: float, step: int) -> None:
        """Stop with an error after this batch if the training ``loss`` of batch ``step`` (of the epoch; on a CUDA
        device found at the next log point) is NaN or infinite, naming the epoch and step and what to change."""
        if math.isfinite(loss) or self.stopped_on_error:
            return
        behind = self._partial["collector"].batches - step if self._partial is not None else 0
        self.stop(f"non-finite loss: the training loss is {loss} at epoch {self.epoch + 1}, step {step} of the epoch "
                  f"(global step {self.global_step - behind}); training stopped. Lower the learning rate "
                  "(optimizer.lr) or clip the gradients (trainer.grad_clip); trainer.on_nonfinite: continue trains on "
                  "regardless",
                  error=True)

    def _stop_asked(self) -> bool:
        return self._signals is not None and self._signals.received is not None

    def _check_signals(self) -> None:
        """Between two steps: if SIGINT or SIGTERM arrived, let the callbacks save (``on_interrupt``) and raise
        ``TrainingInterrupted``. Data parallel: every rank stops at the same step, when any of them had a signal."""
        if self._signals is None:
            return
        received = self._signals.received
        if self.distributed is not None:
            heard, self._heard_stop = self._heard_stop, None  # from the step's gather, else asked now
            if heard is None:
                heard = any(self.distributed.allgather(received is not None))
            received = (received or signal.SIGTERM) if heard else None
        if received is None:
            return
        if self._partial is not None:
            done, total = self._partial["collector"].batches, self.steps_per_epoch or "?"
            where = f"step {done} of {total} of epoch {self.epoch + 1}"
        else:
            where = f"the end of epoch {self.epoch}"
        for callback in self.callbacks:
            callback.on_interrupt()
        if self._partial is not None:  # the time spent and copies made so far count when fit continues this epoch
            now, syncs = time.perf_counter(), self._host_syncs()
            self._partial["time"] += now - self._partial.pop("started", now)
            self._partial["host_syncs"] += syncs - self._partial.pop("syncs_from", syncs)
        raise TrainingInterrupted(received, where)

    def _refuse_if_cut_off(self, what: str) -> None:
        if self._updating:
            raise RuntimeError(f"{what}: training was cut off in the middle of a step or of an epoch's end (by a "
                               "second interrupt or an error), so the weights, optimizer state, counters and data "
                               "position may disagree; restore a checkpoint first (fit(..., resume=PATH) or "
                               "load_checkpoint(PATH))")

    # ----- batches and updates ----------------------------------------------------------------------------------
    def to_device(self, x) -> Tensor:
        """``x`` (a NumPy array or a Tensor) as a Tensor on the Trainer's device."""
        return x.to(self.device) if isinstance(x, Tensor) else tensor(x, device=self.device)

    @staticmethod
    def _split(batch):
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch
        raise TypeError(f"training and evaluation batches must be (inputs, targets) pairs, got "
                        f"{type(batch).__name__}{' of length ' + str(len(batch)) if isinstance(batch, (tuple, list)) else ''}")

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _parameters(self, name: str | None = None) -> list:
        """The parameters of model ``name``'s optimizer (every optimizer's without a name)."""
        optimizers = self.optimizers.values() if name is None else [self.optimizers[name]]
        return [p for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]]

    def update(self, names, loss) -> None:
        """One gradient step of the model(s) ``names`` (a name or a tuple of names) on the scalar Tensor ``loss``
        (None: this rank's share of the batch is empty): zero their gradients, backward, then ``apply_gradients``."""
        names = (names,) if isinstance(names, str) else tuple(names)
        for name in names:
            self.optimizers[name].zero_grad()
            if self.distributed is not None:  # each bucket's all-reduce starts as soon as backward finished it
                self.distributed.prepare(self._parameters(name), self._share)
        if loss is not None:
            loss.backward()
        for name in names:
            self.apply_gradients(name)

    def apply_gradients(self, name: str) -> None:
        """Step model ``name``'s optimizer on its parameters' ``.grad``: averaged over the ranks of a data-parallel
        run (weighted by their shares of the batch), clipped to ``grad_clip``."""
        parameters = self._parameters(name)
        if self.distributed is not None:
            self.distributed.average_gradients(parameters, None, self._share)
        if self.grad_clip is not None:
            clip_grad_norm_(parameters, self.grad_clip)
        self.optimizers[name].step()

    @staticmethod
    def _unpack(result) -> Step:
        return result if isinstance(result, Step) else Step(dict(result))

    def _whole_losses(self, means: dict, count: int) -> dict:
        """Data parallel: the whole batch's named losses over every rank's share (``means`` this rank's, as floats),
        gathered with the stop signals at every step."""
        parts = self.distributed.allgather((means, count, self._stop_asked()))
        sums, counts = {}, {}
        for rank_means, rank_count, _ in parts:
            for name, value in rank_means.items():
                sums[name] = sums.get(name, 0.0) + value * rank_count
                counts[name] = counts.get(name, 0) + rank_count
        self._heard_stop = any(stop for _, _, stop in parts)
        return {name: sums[name] / counts[name] for name in sums}

    def _host_syncs(self) -> int:
        """Device-to-host copies so far on a CUDA device (0 on the CPU, which has none)."""
        return self.backend.host_syncs() if self.device.kind != "cpu" else 0

    # ----- training ---------------------------------------------------------------------------------------------
    def fit(self, train_loader, val_loader=None, epochs: int = 1, resume=None) -> History:
        """Train until ``epochs`` epochs are complete in total (Keras' meaning: a Trainer restored at epoch 2 and
        fitted with ``epochs=4`` trains epochs 3 and 4). ``resume``: a checkpoint path or ``Checkpoint`` to continue
        from. Returns the history of all epochs so far.

        SIGINT and SIGTERM stop training after the current step (see ``gpunet.train.interrupt``): the callbacks
        save, then ``TrainingInterrupted`` (a ``KeyboardInterrupt``) is raised, and ``fit`` again continues
        exactly."""
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"fit: epochs must be an integer >= 1, got {epochs!r}")
        if self.optimizer is None:
            raise ValueError("fit: this Trainer has no optimizer (optimizer=None is for evaluate and predict only)")
        if resume is not None:
            self.load_checkpoint(resume, train_loader)
        self._refuse_if_cut_off("fit")
        self.epochs, self._train_loader = epochs, train_loader
        if self.distributed is not None:
            self.distributed.watch(self.model)
            self.distributed.broadcast_parameters(list(self.model.parameters()))
        self.steps_per_epoch = len(train_loader) if hasattr(train_loader, "__len__") else None
        self.stop_training, self.stop_reason, self.stopped_on_error = False, None, False
        with StopSignals() as self._signals:
            try:
                for callback in self.callbacks:
                    callback.on_train_begin()
                while self.epoch < epochs and not self.stop_training:
                    self._run_epoch(train_loader, val_loader)
                    self._check_signals()
            finally:
                self._signals = None
        for callback in self.callbacks:
            callback.on_train_end()
        return self.history

    def train_on_batch(self, x, y) -> dict:
        """One training step on one batch outside ``fit`` (Keras' ``train_on_batch``): the task's ``train_step``
        with its optimizer updates; returns the batch's named losses as floats (data parallel: the whole batch's)."""
        result, whole = self._train_step(x, y)
        return whole if whole is not None else _as_floats(result.losses)

    def _train_step(self, x, y) -> tuple[Step, dict | None]:
        """One batch through the task's ``train_step``: its result (named losses, still on the device, and the
        outputs and targets that feed the metrics) and, data parallel, the whole batch's losses as floats (the
        ranks exchange them at every step; the result's losses are then this rank's as floats), else None."""
        self._share = len(x)
        result = self._unpack(self.task.train_step(x, y))
        if self.distributed is None:
            return result, None
        result.losses = _as_floats(result.losses)
        return result, self._whole_losses(result.losses, len(x))

    def _gathered(self, collector: EpochCollector) -> EpochCollector:
        """The collector of every rank's share (data parallel), else ``collector``."""
        return collector if self.distributed is None else self.distributed.gather_collector(collector)

    def _record(self, collector: EpochCollector, count: int, result: Step) -> None:
        collector.add(count, result.losses, result.outputs if collector.keep_outputs else None, result.targets)

    def _logged(self, collector: EpochCollector, whole: dict | None) -> tuple[dict, int]:
        """The named losses for the callbacks after this step and the step they belong to: at a log point (every
        step on the CPU and in a data-parallel run; on a CUDA device every ``log_every`` steps and the epoch's last)
        the latest ones, brought to the host with the pass's other pending values (the first non-finite ``loss``
        since the previous log point instead, if any); else ``{}``."""
        step = collector.batches
        if whole is not None:
            return whole, step
        last = self.steps_per_epoch is not None and step >= self.steps_per_epoch
        if self.device.kind != "cpu" and not last and not (self.log_every and step % self.log_every == 0):
            return {}, step
        collector.sync()
        logged = dict(collector.last_losses)
        bad = collector.first_nonfinite
        if bad is not None and bad[0] > self._partial["logged"]:
            step, logged["loss"] = bad
        self._partial["logged"] = collector.batches
        return logged, step

    def _step_schedulers(self, logs: dict | None) -> None:
        """Step every scheduler: per batch (``logs`` None) or at an epoch's end (a metric's with its value)."""
        for scheduler in self.schedulers.values():
            if logs is not None and getattr(scheduler, "steps_on_metric", False):
                if self.scheduler_monitor not in logs:
                    raise ValueError(f"the {type(scheduler).__name__} scheduler monitors {self.scheduler_monitor!r}, "
                                     f"which is not logged; logged values: "
                                     f"{', '.join(k for k in logs if k != 'time')}")
                scheduler.step(logs[self.scheduler_monitor])
            else:
                scheduler.step()

    def _run_epoch(self, train_loader, val_loader) -> None:
        if self._partial is None:  # a fresh epoch (not one resumed mid-way)
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(self.epoch)
            self._partial = {"collector": EpochCollector(self.metrics, self.threshold), "lr": self._lr(), "time": 0.0,
                             "host_syncs": 0}
        partial, number = self._partial, self.epoch + 1
        collector = partial["collector"]
        partial["started"], partial["syncs_from"] = time.perf_counter(), self._host_syncs()
        partial["logged"] = collector.batches
        for callback in self.callbacks:
            callback.on_epoch_begin(number)
        self.model.train()
        batches = train_loader
        if self.steps_per_epoch is not None and collector.batches >= self.steps_per_epoch:
            batches = ()  # stopped after the epoch's last step: only its end remains (the loader is at its end)
        for batch in batches:
            self._updating = True
            x, y = self._split(batch)
            result, whole = self._train_step(x, y)
            self.global_step += 1
            self._record(collector, len(x), result)
            if self.scheduler_interval == "step":
                self._step_schedulers(None)
            self._updating = False
            logged, step = self._logged(collector, whole)
            for callback in self.callbacks:
                callback.on_batch_end(collector.batches, {**logged, "global_step": self.global_step})
            if self.on_nonfinite == "stop" and "loss" in logged:
                self.stop_if_nonfinite(logged["loss"], step)
            if self.stop_training and self.stopped_on_error:
                return
            self._check_signals()
        if collector.batches == 0:
            raise ValueError("the training loader yielded no batches; check the data split and batch_size")
        logs = {"epoch": number, **self._with_derived(self._gathered(collector).results("train_"), "train_")}
        if val_loader is not None:
            logs.update(self.evaluate(val_loader, prefix="val_"))
        if self.device.kind != "cpu":
            logs["host_syncs"] = partial["host_syncs"] + self._host_syncs() - partial["syncs_from"]
        self._updating = True
        logs.update(self.task.end_epoch(number))
        logs["lr"] = partial["lr"]
        logs["time"] = partial["time"] + time.perf_counter() - partial["started"]
        self.epoch, self._partial = number, None
        if self.scheduler_interval == "epoch":
            self._step_schedulers(logs)
        self.history.append(logs)
        self._updating = False
        for callback in self.callbacks:
            callback.on_epoch_end(number, logs)

    # ----- evaluation -------------------------------------------------------------------------------------------
    def evaluate(self, loader, prefix: str = "") -> dict:
        """The task's named losses (mean ``loss`` first) and the metrics over ``loader`` in evaluation mode, without
        gradients: ``{prefix + "loss": ..., prefix + "<name>": ...}`` (with ``confusion_matrix`` as a nested list if
        asked)."""
        collector = EpochCollector(self.metrics, self.threshold)
        self.model.eval()
        with no_grad():
            for batch in loader:
                x, y = self._split(batch)
                if not len(x):  # an empty share of a data-parallel batch
                    continue
                self._record(collector, len(x), self._unpack(self.task.eval_step(x, y)))
        return self._with_derived(self._gathered(collector).results(prefix, confusion=not prefix.startswith("val")),
                                  prefix)

    def _with_derived(self, results: dict, prefix: str) -> dict:
        """A pass's results (each name prefixed) and the task's figures derived from them (``Task.derived``)."""
        means = {name[len(prefix):]: value for name, value in results.items() if name.startswith(prefix)}
        return {**results, **{prefix + name: value for name, value in self.task.derived(means).items()}}

    def predict(self, data, batch_size: int = 256):
        """The model's outputs (a NumPy array) for an array or Tensor of inputs, or for the inputs of a loader."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"predict: batch_size must be an integer >= 1, got {batch_size!r}")
        if hasattr(data, "shape"):
            batches = (data[i:i + batch_size] for i in range(0, len(data), batch_size))
        else:
            batches = (b[0] if isinstance(b, (tuple, list)) else b for b in data)
        collector = EpochCollector(keep_outputs=True)
        self.model.eval()
        with no_grad():
            for x in batches:
                collector.add(len(x), outputs=self.task.predict_step(x))
        return collector.outputs()

    # ----- checkpoints ------------------------------------------------------------------------------------------
    def _callback_key(self, index: int) -> str:
        return f"{index}:{type(self.callbacks[index]).__name__}"

    def _states(self, objects: dict):
        """The state_dicts of per-model objects: one model's alone (the classic format), else ``{name: state}``."""
        if not objects:
            return None
        if len(self.task.models) == 1:
            return next(iter(objects.values())).state_dict()
        return {name: obj.state_dict() for name, obj in objects.items()}

    def _load_states(self, objects: dict, state) -> None:
        if not objects or state is None:
            return
        if len(self.task.models) == 1:
            next(iter(objects.values())).load_state_dict(state)
            return
        for name, obj in objects.items():
            if name not in state:
                raise KeyError(f"no state for model {name!r} (the checkpoint has {', '.join(map(str, state))})")
            obj.load_state_dict(state[name])

    def checkpoint(self) -> Checkpoint:
        """Everything needed to continue exactly from this point (also mid-epoch)."""
        self._refuse_if_cut_off("checkpoint")
        partial = None
        if self._partial is not None:
            spent = self._partial["time"] + time.perf_counter() - self._partial.get("started", time.perf_counter())
            now = self._host_syncs()
            syncs = self._partial["host_syncs"] + now - self._partial.get("syncs_from", now)
            partial = {"collector": self._gathered(self._partial["collector"]).state_dict(), "lr": self._partial["lr"],
                       "time": spent, "host_syncs": syncs}
        extra, ranks = {}, [(random.get_rng_state(), self.task.rank_state_dict())]
        if self.distributed is not None:  # each rank's generator (its dropout masks) and task state
            ranks = self.distributed.allgather(ranks[0])
            extra = {"world_size": self.distributed.world.size, "rank_rng": [rng for rng, _ in ranks]}
        return Checkpoint(
            model=self.model.state_dict(),
            optimizer=self._states(self.optimizers),
            scheduler=self._states(self.schedulers),
            rng=random.get_rng_state(),
            loader=self._train_loader.state_dict() if hasattr(self._train_loader, "state_dict") else None,
            epoch=self.epoch,
            step=self.global_step,
            history=[dict(e) for e in self.history],
            config=self.config,
            extra={"partial_epoch": partial,
                   "callbacks": {self._callback_key(i): c.state_dict() for i, c in enumerate(self.callbacks)},
                   "task": {"name": self.task.name, "state": self.task.state_dict(),
                            "ranks": [state for _, state in ranks]},
                   **extra},
        )

    def load_checkpoint(self, source, train_loader=None) -> Checkpoint:
        """Restore the state saved by ``checkpoint`` (a path or a ``Checkpoint``); ``train_loader`` gets its position
        back. The callbacks must be the same kinds in the same order as when it was saved."""
        ckpt = load_checkpoint(source) if not isinstance(source, Checkpoint) else source
        where = source if not isinstance(source, Checkpoint) else "the checkpoint"
        saved_task = ckpt.extra.get("task") or {"name": "classify", "state": {}}  # older checkpoints: classify
        if saved_task["name"] != self.task.name and {saved_task["name"], self.task.name} != {"classify", "regress"}:
            raise CheckpointError(f"{where} was saved by a {saved_task['name']!r} task, but this Trainer runs a "
                                  f"{self.task.name!r} task; give the config or task it was trained with")
        try:
            self.model.load_state_dict(ckpt.model)
            if self.optimizers:
                self._load_states(self.optimizers, ckpt.optimizer)
            self._load_states(self.schedulers, ckpt.scheduler)
            self.task.load_state_dict(saved_task["state"])
            world = self.distributed.world if self.distributed is not None else None
            self.task.load_rank_state_dict(self.task.saved_rank_state(
                saved_task.get("ranks", []), world.rank if world else 0, world.size if world else 1))
            saved = ckpt.extra.get("callbacks", {})
            for index, callback in enumerate(self.callbacks):
                key = self._callback_key(index)
                if key in saved:
                    callback.load_state_dict(saved[key])
            if train_loader is not None and ckpt.loader is not None and hasattr(train_loader, "load_state_dict"):
                train_loader.load_state_dict(ckpt.loader)
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise CheckpointError(f"{where} does not fit this model/optimizer/data: {exc}") from None
        if ckpt.rng is not None:
            random.set_rng_state(ckpt.rng)
        if self.distributed is not None:
            world, states = self.distributed.world, ckpt.extra.get("rank_rng")
            if states is not None and len(states) == world.size:
                random.set_rng_state(states[world.rank])
            elif world.rank > 0:  # saved with another number of ranks: a fresh stream per rank
                random.manual_seed(rank_seed(ckpt.step, world.rank))
        self.epoch, self.global_step = ckpt.epoch, ckpt.step
        self._updating = False
        self.history = History(ckpt.history)
        partial = ckpt.extra.get("partial_epoch")
        self._partial = None
        if partial is not None:
            collector = EpochCollector(self.metrics, self.threshold)
            state = partial["collector"]
            if "losses" in partial:  # saved while the named losses had a class of their own: the whole batch's
                state = {**state, **partial["losses"]}
            collector.load_state_dict(state if self.distributed is None else local_share(self.distributed.world, state))
            self._partial = {"collector": collector, "lr": partial["lr"], "time": partial["time"],
                             "host_syncs": partial.get("host_syncs", 0)}
        return ckpt
