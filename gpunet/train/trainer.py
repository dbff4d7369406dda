"""The Trainer: ``fit`` / ``evaluate`` / ``predict`` for a model, a loss and an optimizer (Keras' loop, PyTorch's parts).

Batches arrive as NumPy arrays (from ``gpunet.data.DataLoader``) and become gpunet tensors on the Trainer's device;
all array math runs through gpunet ops, and metrics are computed on host copies (``Tensor.numpy()``).

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
from ..nn.losses import loss_target
from ..nn.utils import clip_grad_norm_
from ..ops import tensor
from .callbacks import Callback
from .checkpoint import Checkpoint, CheckpointError, load_checkpoint
from .distributed import local_share, rank_seed
from .interrupt import StopSignals, TrainingInterrupted
from .metrics import EpochCollector

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


class Trainer:
    """Train ``model`` on ``loss_fn(model(x), y)`` with ``optimizer``.

    ``scheduler`` steps after every epoch (``scheduler_interval="epoch"``) or every batch (``"step"``); a
    ``ReduceLROnPlateau`` scheduler is stepped with the epoch's ``scheduler_monitor`` value. ``metrics`` are names
    from ``gpunet.train.metrics`` (``accuracy``, ``top5_accuracy``, ``f1``, ``mse``, ...), reported as
    ``train_<name>`` and ``val_<name>``. ``device`` (default: gpunet's current device) is where the model and batches
    go. ``grad_clip`` clips the total gradient norm before each step. ``on_nonfinite``: ``"stop"`` ends training
    (``stopped_on_error``) at the first NaN or infinite training loss, naming the epoch and step; ``"continue"`` trains
    on. ``optimizer=None`` makes a Trainer that can only ``evaluate`` and ``predict``.
    """

    def __init__(self, model, loss_fn, optimizer, scheduler=None, callbacks=(), metrics=("accuracy",), device=None,
                 grad_clip=None, scheduler_interval: str = "epoch", scheduler_monitor: str = "val_loss",
                 on_nonfinite: str = "stop"):
        if on_nonfinite not in ("stop", "continue"):
            raise ValueError(f"Trainer: on_nonfinite must be 'stop' or 'continue', got {on_nonfinite!r}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"Trainer: grad_clip must be a positive number or None, got {grad_clip!r}")
        self.backend = current() if device is None else get_backend(device)
        self.device = self.backend.device
        self.model = model.to(self.device)
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.scheduler_monitor = scheduler_monitor
        self.metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        self.grad_clip = grad_clip
        self.on_nonfinite = on_nonfinite
        self.threshold = getattr(loss_fn, "decision_threshold", 0.5)
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"Trainer: callbacks must be gpunet.train.Callback objects, got "
                                f"{type(callback).__name__}")
        self.callbacks = sorted(callbacks, key=lambda c: c.order)  # stable: equal orders keep the given order
        for callback in self.callbacks:
            callback.set_trainer(self)
        self.config: dict | None = None  # stored in checkpoints when set (the run's resolved config)
        self.distributed = None  # a DataParallel when this is one rank of a data-parallel run
        self.history = History()
        self.epoch = 0  # completed epochs
        self.global_step = 0  # optimizer steps taken
        self.epochs = 0  # the epoch fit() trains up to
        self.steps_per_epoch: int | None = None
        self.stop_training = False
        self.stop_reason: str | None = None
        self.stopped_on_error = False
        self._train_loader = None
        self._partial: dict | None = None  # the epoch in progress: collector, lr, time spent
        self._signals: StopSignals | None = None  # while fit runs
        self._updating = False  # inside a step or an epoch's end: weights, counters and position may disagree
        self._heard_stop: bool | None = None  # data parallel: whether any rank had a stop signal at the last step

    # ----- stopping -------------------------------------------------------------------------------------------
    def stop(self, reason: str, error: bool = False) -> None:
        """Ask ``fit`` to stop (after this batch if ``error``, else at the end of this epoch), saying why on stderr."""
        self.stop_training, self.stop_reason, self.stopped_on_error = True, reason, error
        print(f"gpunet: {reason}", file=sys.stderr, flush=True)

    def stop_if_nonfinite(self, loss: float, step: int) -> None:
        """Stop with an error after this batch if the training ``loss`` of batch ``step`` (of the epoch) is NaN or
        infinite, naming the epoch and step and what to change."""
        if math.isfinite(loss) or self.stopped_on_error:
            return
        self.stop(f"non-finite loss: the training loss is {loss} at epoch {self.epoch + 1}, step {step} of the epoch "
                  f"(global step {self.global_step}); training stopped. Lower the learning rate (optimizer.lr) or "
                  "clip the gradients (trainer.grad_clip); trainer.on_nonfinite: continue trains on regardless",
                  error=True)

    def _check_signals(self) -> None:
        """Between two steps: if SIGINT or SIGTERM arrived, let the callbacks save (``on_interrupt``) and raise
        ``TrainingInterrupted``. Data parallel: every rank stops at the same step, when any of them had a signal."""
        if self._signals is None:
            return
        received = self._signals.received
        if self.distributed is not None:
            heard, self._heard_stop = self._heard_stop, None  # from the step's all-reduce, else asked now
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
        if self._partial is not None:  # the time spent so far counts when fit continues this epoch
            now = time.perf_counter()
            self._partial["time"] += now - self._partial.pop("started", now)
        raise TrainingInterrupted(received, where)

    def _refuse_if_cut_off(self, what: str) -> None:
        if self._updating:
            raise RuntimeError(f"{what}: training was cut off in the middle of a step or of an epoch's end (by a "
                               "second interrupt or an error), so the weights, optimizer state, counters and data "
                               "position may disagree; restore a checkpoint first (fit(..., resume=PATH) or "
                               "load_checkpoint(PATH))")

    # ----- batches ----------------------------------------------------------------------------------------------
    def _input(self, x) -> Tensor:
        return x.to(self.device) if isinstance(x, Tensor) else tensor(x, device=self.device)

    def _target(self, y, output: Tensor) -> Tensor:
        return loss_target(self.loss_fn, self._input(y), output)

    @staticmethod
    def _split(batch):
        if isinstance(batch, (tuple, list)) and len(batch) == 2:
            return batch
        raise TypeError(f"training and evaluation batches must be (inputs, targets) pairs, got "
                        f"{type(batch).__name__}{' of length ' + str(len(batch)) if isinstance(batch, (tuple, list)) else ''}")

    def _host(self, y):
        """Host targets for the metrics; class probabilities (MixUp's labels) for an "index" loss count as their
        likeliest class."""
        y = y.numpy() if isinstance(y, Tensor) else y
        if getattr(self.loss_fn, "target_kind", "float") == "index" and getattr(y, "ndim", 0) == 2 \
                and y.dtype.kind == "f":
            return y.argmax(axis=1)
        return y

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

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
            self.distributed.broadcast_parameters(self._parameters())
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

    def _parameters(self) -> list:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _train_step(self, x, y) -> tuple[float | None, float, Tensor | None]:
        """One step; returns this batch's (this rank's share's) mean loss, the whole batch's and the output. An
        empty share of a data-parallel batch has no loss and no output."""
        self.optimizer.zero_grad()
        loss = output = None
        if len(x):
            output = self.model(self._input(x))
            loss_tensor = self.loss_fn(output, self._target(y, output))
            loss_tensor.backward()
            loss = float(loss_tensor.item())
        whole = loss
        if self.distributed is not None:
            stop = self._signals is not None and self._signals.received is not None
            whole, self._heard_stop = self.distributed.average_gradients(self._parameters(), loss, len(x), stop)
        if self.grad_clip is not None:
            clip_grad_norm_(self._parameters(), self.grad_clip)
        self.optimizer.step()
        return loss, whole, output

    def _gathered(self, collector: EpochCollector) -> EpochCollector:
        """The collector of every rank's share (data parallel), else ``collector``."""
        return collector if self.distributed is None else self.distributed.gather_collector(collector)

    def _run_epoch(self, train_loader, val_loader) -> None:
        if self._partial is None:  # a fresh epoch (not one resumed mid-way)
            if hasattr(train_loader, "set_epoch"):
                train_loader.set_epoch(self.epoch)
            self._partial = {"collector": EpochCollector(self.metrics, self.threshold), "lr": self._lr(), "time": 0.0}
        partial, number = self._partial, self.epoch + 1
        collector = partial["collector"]
        partial["started"] = time.perf_counter()
        for callback in self.callbacks:
            callback.on_epoch_begin(number)
        self.model.train()
        batches = train_loader
        if self.steps_per_epoch is not None and collector.batches >= self.steps_per_epoch:
            batches = ()  # stopped after the epoch's last step: only its end remains (the loader is at its end)
        for batch in batches:
            self._updating = True
            x, y = self._split(batch)
            loss, whole, output = self._train_step(x, y)
            self.global_step += 1
            collector.add(len(x), loss, output.numpy() if collector.keep_outputs and output is not None else None,
                          self._host(y))
            if self.scheduler is not None and self.scheduler_interval == "step":
                self.scheduler.step()
            self._updating = False
            for callback in self.callbacks:
                callback.on_batch_end(collector.batches, {"loss": whole, "global_step": self.global_step})
            if self.on_nonfinite == "stop":
                self.stop_if_nonfinite(whole, collector.batches)
            if self.stop_training and self.stopped_on_error:
                return
            self._check_signals()
        if collector.batches == 0:
            raise ValueError("the training loader yielded no batches; check the data split and batch_size")
        logs = {"epoch": number, **self._gathered(collector).results("train_")}
        if val_loader is not None:
            logs.update(self.evaluate(val_loader, prefix="val_"))
        logs["lr"] = partial["lr"]
        logs["time"] = partial["time"] + time.perf_counter() - partial["started"]
        self._updating = True
        self.epoch, self._partial = number, None
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if getattr(self.scheduler, "steps_on_metric", False):
                if self.scheduler_monitor not in logs:
                    raise ValueError(f"the {type(self.scheduler).__name__} scheduler monitors "
                                     f"{self.scheduler_monitor!r}, which is not logged; logged values: "
                                     f"{', '.join(k for k in logs if k != 'time')}")
                self.scheduler.step(logs[self.scheduler_monitor])
            else:
                self.scheduler.step()
        self.history.append(logs)
        self._updating = False
        for callback in self.callbacks:
            callback.on_epoch_end(number, logs)

    # ----- evaluation -------------------------------------------------------------------------------------------
    def evaluate(self, loader, prefix: str = "") -> dict:
        """Mean loss and the metrics over ``loader`` in evaluation mode, without gradients:
        ``{prefix + "loss": ..., prefix + "<metric>": ...}`` (with ``confusion_matrix`` as a nested list if asked)."""
        collector = EpochCollector(self.metrics, self.threshold)
        self.model.eval()
        with no_grad():
            for batch in loader:
                x, y = self._split(batch)
                if not len(x):  # an empty share of a data-parallel batch
                    continue
                output = self.model(self._input(x))
                loss = self.loss_fn(output, self._target(y, output))
                collector.add(len(x), float(loss.item()), output.numpy() if collector.keep_outputs else None,
                              self._host(y))
        return self._gathered(collector).results(prefix, confusion=not prefix.startswith("val"))

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
                collector.add(len(x), outputs=self.model(self._input(x)).numpy())
        return collector.outputs()

    # ----- checkpoints ------------------------------------------------------------------------------------------
    def _callback_key(self, index: int) -> str:
        return f"{index}:{type(self.callbacks[index]).__name__}"

    def checkpoint(self) -> Checkpoint:
        """Everything needed to continue exactly from this point (also mid-epoch)."""
        self._refuse_if_cut_off("checkpoint")
        partial = None
        if self._partial is not None:
            spent = self._partial["time"] + time.perf_counter() - self._partial.get("started", time.perf_counter())
            partial = {"collector": self._gathered(self._partial["collector"]).state_dict(), "lr": self._partial["lr"],
                       "time": spent}
        extra = {}
        if self.distributed is not None:  # each rank's generator (its dropout masks)
            world = self.distributed.world
            extra = {"world_size": world.size, "rank_rng": self.distributed.allgather(random.get_rng_state())}
        return Checkpoint(
            model=self.model.state_dict(),
            optimizer=None if self.optimizer is None else self.optimizer.state_dict(),
            scheduler=None if self.scheduler is None else self.scheduler.state_dict(),
            rng=random.get_rng_state(),
            loader=self._train_loader.state_dict() if hasattr(self._train_loader, "state_dict") else None,
            epoch=self.epoch,
            step=self.global_step,
            history=[dict(e) for e in self.history],
            config=self.config,
            extra={"partial_epoch": partial,
                   "callbacks": {self._callback_key(i): c.state_dict() for i, c in enumerate(self.callbacks)},
                   **extra},
        )

    def load_checkpoint(self, source, train_loader=None) -> Checkpoint:
        """Restore the state saved by ``checkpoint`` (a path or a ``Checkpoint``); ``train_loader`` gets its position
        back. The callbacks must be the same kinds in the same order as when it was saved."""
        ckpt = load_checkpoint(source) if not isinstance(source, Checkpoint) else source
        where = source if not isinstance(source, Checkpoint) else "the checkpoint"
        try:
            self.model.load_state_dict(ckpt.model)
            if self.optimizer is not None and ckpt.optimizer is not None:
                self.optimizer.load_state_dict(ckpt.optimizer)
            if self.scheduler is not None and ckpt.scheduler is not None:
                self.scheduler.load_state_dict(ckpt.scheduler)
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
            collector.load_state_dict(partial["collector"] if self.distributed is None else
                                      local_share(self.distributed.world, partial["collector"]))
            self._partial = {"collector": collector, "lr": partial["lr"], "time": partial["time"]}
        return ckpt
