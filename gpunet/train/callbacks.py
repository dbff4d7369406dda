"""Callbacks: code the Trainer calls at fixed points of training (Keras' names and behaviour).

Hooks: ``on_train_begin``, ``on_epoch_begin(epoch)``, ``on_batch_end(step, logs)``, ``on_epoch_end(epoch, logs)``,
``on_train_end``. Epochs are numbered from 1; ``logs`` at the end of an epoch holds ``epoch``, ``train_loss``,
``train_<metric>``, ``val_loss``, ``val_<metric>``, ``lr`` and ``time`` (seconds). A callback reaches the Trainer
as ``self.trainer``. Whatever a callback must remember across a resume (counters, best values, best weights) it
returns from ``state_dict`` and takes back in ``load_state_dict``; the Trainer stores it in every checkpoint.

At the end of an epoch callbacks run in ascending ``order`` (then in the order given): learning-rate and stopping
decisions (0), then loggers and progress (50), then checkpoints (100), so a checkpoint holds every other
callback's state for that epoch.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
import time

from ..kinds import Arguments, Bool, Choice, FilePath, Float, Int, Optional, Str, checked
from ..optim.lr_scheduler import PLATEAU_KINDS, ReduceLROnPlateau as PlateauScheduler
from . import strict_json
from .atomic import append_text, atomic_write_text
from .checkpoint import CheckpointManager

__all__ = [
    "CSVLogger", "Callback", "EarlyStopping", "JSONLLogger", "ModelCheckpoint", "ProgressBar", "ReduceLROnPlateau",
    "TerminateOnNaN", "resolve_mode",
]

_HIGHER_IS_BETTER = re.compile(r"(?:.*_)?(?:accuracy|precision|recall|f1|top\d+_accuracy)")


MONITOR = Str(text="a logged metric such as val_loss or val_accuracy")
MODE = Choice(("auto", "min", "max"), "mode")  # whether lower or higher is better; auto: from the metric's name


def resolve_mode(monitor: str, mode: str) -> str:
    """``"min"`` or ``"max"``; ``"auto"`` is max for accuracy, precision, recall, F1 and top-k, min otherwise."""
    Arguments(mode=MODE).check("resolve_mode", {"mode": mode})
    if mode != "auto":
        return mode
    return "max" if _HIGHER_IS_BETTER.fullmatch(monitor) else "min"


def monitored_value(logs: dict, monitor: str, who: str) -> float:
    """``logs[monitor]``, or a clear error listing what is logged."""
    if monitor not in logs:
        available = ", ".join(k for k in logs if k not in ("epoch", "time"))
        raise ValueError(f"{who} monitors {monitor!r}, which is not logged; logged values: {available}")
    return float(logs[monitor])


class Callback:
    """Base class: every hook does nothing; ``state_dict`` is empty."""

    order = 0
    trainer = None

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    def on_train_begin(self) -> None:
        pass

    def on_train_end(self) -> None:
        pass

    def on_epoch_begin(self, epoch: int) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        pass

    def on_batch_end(self, step: int, logs: dict) -> None:
        """``step``: the batch number within the epoch (from 1); ``logs``: ``global_step`` and, at the Trainer's log
        points only, ``loss`` (every step on the CPU; on a CUDA device every ``log_every`` steps, as a value there
        waits for the device)."""

    def on_interrupt(self) -> None:
        """SIGINT or SIGTERM stopped training between two steps (``gpunet.train.interrupt``); a checkpoint taken
        now (``self.trainer.checkpoint()``) continues exactly."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by more than ``min_delta`` for ``patience`` epochs.

    With ``restore_best_weights`` the model gets back the weights of its best epoch when training stops.
    """

    arguments = Arguments(monitor=MONITOR, patience=Int(ge=0), min_delta=Float(ge=0), mode=MODE,
                          restore_best_weights=Bool())

    @checked
    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0, mode: str = "auto",
                 restore_best_weights: bool = False):
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        self.mode = resolve_mode(monitor, mode)
        self.restore_best_weights = restore_best_weights
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights: dict | None = None

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, epoch, logs):
        value = monitored_value(logs, self.monitor, "EarlyStopping")
        if self._improves(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.copy() for k, v in self.trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self._stop()
            if self.restore_best_weights and self.best_weights is not None:
                self.trainer.model.load_state_dict(self.best_weights)

    def _stop(self) -> None:
        self.trainer.stop(f"EarlyStopping: {self.monitor} has not improved for {self.wait} epoch(s) "
                          f"(best {self.best:.6g} at epoch {self.best_epoch})", error=False)

    def on_train_begin(self):
        if self.stopped_epoch is not None and self.stopped_epoch == self.trainer.epoch:
            self._stop()  # resumed from the checkpoint of the epoch it stopped at: the run stays stopped

    def state_dict(self):
        return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state):
        self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]
        self.stopped_epoch, self.best_weights = state["stopped_epoch"], state["best_weights"]


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` stops improving: wraps
    ``gpunet.optim.lr_scheduler.ReduceLROnPlateau`` on the Trainer's optimizer (same arguments as PyTorch's), one
    per optimizer for a task with several models."""

    arguments = Arguments(monitor=MONITOR, mode=MODE, **PLATEAU_KINDS)

    @checked
    def __init__(self, monitor: str = "val_loss", mode: str = "auto", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0, min_lr: float = 0.0,
                 eps: float = 1e-8):
        self.monitor = monitor
        self.scheduler_arguments = dict(mode=resolve_mode(monitor, mode), factor=factor, patience=patience, threshold=threshold,
                              threshold_mode=threshold_mode, cooldown=cooldown, min_lr=min_lr, eps=eps)
        self.scheduler = None

    def set_trainer(self, trainer):
        super().set_trainer(trainer)
        self.schedulers = {name: PlateauScheduler(optimizer, **self.scheduler_arguments)
                           for name, optimizer in trainer.optimizers.items()}
        self.scheduler = next(iter(self.schedulers.values()), None)

    def on_epoch_end(self, epoch, logs):
        value = monitored_value(logs, self.monitor, "ReduceLROnPlateau")
        for scheduler in self.schedulers.values():
            scheduler.step(value)

    def state_dict(self):  # one optimizer: the scheduler's state as before; several: by model name
        if len(self.schedulers) == 1:
            return self.scheduler.state_dict()
        return {name: scheduler.state_dict() for name, scheduler in self.schedulers.items()}

    def load_state_dict(self, state):
        if len(self.schedulers) == 1:
            self.scheduler.load_state_dict(state)
        else:
            for name, scheduler in self.schedulers.items():
                scheduler.load_state_dict(state[name])


class TerminateOnNaN(Callback):
    """Stop at the first batch whose loss is NaN or infinite, naming the epoch and step, also when the Trainer's
    ``on_nonfinite`` is ``"continue"`` (its default, ``"stop"``, does this already). The epoch is not finished, so
    no checkpoint is written for it: the last good checkpoint stays the latest one."""

    def on_batch_end(self, step, logs):
        if "loss" in logs:  # at a log point: on a CUDA device the first non-finite loss since the previous one
            self.trainer.stop_if_nonfinite(logs["loss"], step)


class _EpochFileLogger(Callback):
    """A file with one record per epoch, appended to (and fsynced) at the end of every epoch.

    At the start of training it is made to agree with the checkpoint resumed from, so it reads as if training had
    never stopped: records of epochs after the checkpoint (written before a crash) and a torn or unreadable line are
    dropped, and records missing for epochs the checkpoint holds are taken from its history. Such a repair replaces
    the file atomically. A new run (no checkpoint) starts the file empty unless ``append`` (then only a torn line
    is dropped).
    """

    order = 50

    arguments = Arguments(filename=FilePath(), append=Bool())

    @checked
    def __init__(self, filename, append: bool = False):
        self.filename = os.fspath(filename)
        self.append = append

    def _read(self) -> tuple[list[dict], bool]:
        """The file's intact records and whether anything in it was unreadable."""
        raise NotImplementedError

    def _text(self, records: list[dict]) -> str:
        """The file's text for ``records`` (the header too, for CSV, when the file is new)."""
        raise NotImplementedError

    def on_train_begin(self):
        resumed, exists = self.trainer.epoch, os.path.exists(self.filename)
        records, damaged = self._read() if exists else ([], False)
        if self.append and resumed == 0 and exists:  # a file of its own to append to: only a torn line goes
            if damaged:
                self._reset()
                atomic_write_text(self.filename, self._text(records))
            return
        by_epoch = {}
        for record in records:
            epoch = _epoch_of(record)
            if epoch is not None and 1 <= epoch <= resumed:
                by_epoch.setdefault(epoch, record)
        for logs in self.trainer.history.epochs[:resumed]:
            by_epoch.setdefault(int(logs["epoch"]), logs)
        kept = [by_epoch[e] for e in sorted(by_epoch)]
        if not exists or damaged or kept != records:
            os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
            self._reset()
            atomic_write_text(self.filename, self._text(kept))

    def _reset(self) -> None:
        pass

    def on_epoch_end(self, epoch, logs):
        append_text(self.filename, self._text([logs]))


def _epoch_of(record: dict) -> int | None:
    try:
        return int(record["epoch"])
    except (KeyError, TypeError, ValueError):
        return None


class JSONLLogger(_EpochFileLogger):
    """Append one JSON object per epoch (the epoch's ``logs``) to ``filename``, e.g. ``metrics.jsonl``.

    On a CUDA device (``cuda-emu`` too) each record also gets the device's state at the end of the epoch from
    ``gpunet.backend.telemetry.GpuTelemetry`` (unless ``gpu_telemetry`` is false): ``cupy_pool_used_bytes`` and
    ``cupy_pool_total_bytes``, and from NVML ``gpu_memory_used_bytes``, ``gpu_memory_total_bytes``,
    ``gpu_utilization_percent``, ``gpu_temperature_c`` and ``gpu_power_w``. Without NVML (or when it fails) there
    is one warning and the pool bytes only; the CPU adds nothing. The Trainer's history and the other callbacks
    see only the epoch's logs.
    """

    def __init__(self, filename="metrics.jsonl", append: bool = False, gpu_telemetry: bool = True):
        super().__init__(filename, append)
        self.gpu_telemetry = gpu_telemetry
        self._telemetry = None

    def set_trainer(self, trainer):
        from ..backend.telemetry import GpuTelemetry

        super().set_trainer(trainer)
        self._telemetry = GpuTelemetry(trainer.backend) if self.gpu_telemetry else None

    def on_epoch_end(self, epoch, logs):
        super().on_epoch_end(epoch, {**logs, **self._telemetry.sample()} if self._telemetry else logs)

    def _read(self):
        records, damaged = [], False
        with open(self.filename, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    record = json.loads(line) if line.endswith("\n") else None
                except json.JSONDecodeError:
                    record = None
                if isinstance(record, dict):
                    records.append(record)
                elif line.strip() or not line.endswith("\n"):
                    damaged = True
        return records, damaged

    def _text(self, records):
        return "".join(strict_json.dumps(record) + "\n" for record in records)


class CSVLogger(_EpochFileLogger):
    """Append one CSV row per epoch to ``filename``; the columns are the keys of the first epoch's logs."""

    def __init__(self, filename="metrics.csv", append: bool = False):
        super().__init__(filename, append)
        self.columns: list | None = None

    def _read(self):
        with open(self.filename, newline="", encoding="utf-8", errors="replace") as f:
            text = f.read()
        reader = csv.DictReader(io.StringIO(text))
        rows = list(reader)
        self.columns = list(reader.fieldnames) if reader.fieldnames else None
        complete = [r for r in rows if None not in r and None not in r.values()]
        damaged = len(complete) != len(rows) or bool(text) and not text.endswith("\n")
        if damaged and rows and rows[-1] in complete:
            complete.pop()  # the last row lost its end: its last value may be cut short
        return complete, damaged

    def _reset(self):
        self.columns = None

    def _text(self, records):
        out = io.StringIO()
        for record in records:
            if self.columns is None:
                self.columns = list(record)
                out.write(",".join(self.columns) + "\n")
            csv.DictWriter(out, self.columns, extrasaction="ignore", lineterminator="\n").writerow(
                {k: repr(v) if isinstance(v, float) else v for k, v in record.items()})
        return out.getvalue()


class ModelCheckpoint(Callback):
    """Write checkpoints through ``CheckpointManager`` into ``directory``: ``last.npz`` every ``every_n_epochs``
    epochs (and when training stops early), ``best.npz`` when ``monitor`` improves (with ``save_best``), and the
    ``keep`` newest ``epoch-NNNN.npz``. Every checkpoint holds the whole Trainer state for an exact resume."""

    order = 100

    arguments = Arguments(directory=FilePath("a directory path"), monitor=Optional(MONITOR), mode=MODE,
                          save_best=Bool(), keep=Int(ge=1), every_n_epochs=Int(ge=1))

    @checked
    def __init__(self, directory, monitor: str | None = "val_loss", mode: str = "auto", save_best: bool = True,
                 keep: int = 1, every_n_epochs: int = 1):
        watch = monitor if save_best else None
        self.manager = CheckpointManager(directory, watch, resolve_mode(watch, mode) if watch else "min", keep)
        self.every_n_epochs = every_n_epochs
        self.last_saved_epoch: int | None = None

    @property
    def directory(self) -> str:
        return self.manager.directory

    def on_epoch_end(self, epoch, logs):
        if epoch % self.every_n_epochs and not self.trainer.stop_training:
            return
        self.last_saved_epoch = epoch
        improved = self.manager.record(epoch, logs)  # before the checkpoint takes this callback's state
        self.manager.save(self.trainer.checkpoint(), improved=improved)

    def on_interrupt(self):
        self.manager.save_last(self.trainer.checkpoint())

    def state_dict(self):
        return {**self.manager.state_dict(), "last_saved_epoch": self.last_saved_epoch}

    def load_state_dict(self, state):
        self.manager.load_state_dict(state)
        self.last_saved_epoch = state["last_saved_epoch"]


class ProgressBar(Callback):
    """Progress on ``stream`` (stdout): a live bar redrawn in place on a terminal; otherwise plain lines, one per
    epoch (plus one every ``log_every`` steps if it is above 0). ``style``: ``auto``, ``bar`` or ``lines``.

    The step count moves every step; the loss shown is the latest the Trainer logged: every step's on the CPU, on a
    CUDA device the one of its last log point (a value every step would make the device wait every step)."""

    order = 50
    _WIDTH = 30

    arguments = Arguments(style=Choice(("auto", "bar", "lines"), "style"), log_every=Int(ge=0))

    @checked
    def __init__(self, style: str = "auto", log_every: int = 0, stream=None):
        self.stream = stream
        self.style = style
        self.log_every = log_every
        self._started = 0.0
        self._loss: float | None = None  # the latest logged loss of this epoch

    def _out(self):
        return self.stream if self.stream is not None else sys.stdout

    def _bar(self) -> bool:
        if self.style != "auto":
            return self.style == "bar"
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty and isatty())

    def _prefix(self, epoch: int) -> str:
        return f"epoch {epoch}/{self.trainer.epochs}"

    def on_epoch_begin(self, epoch):
        self._started, self._loss = time.perf_counter(), None

    def on_batch_end(self, step, logs):
        total = self.trainer.steps_per_epoch
        if "loss" in logs:
            self._loss = logs["loss"]
        if self._bar():
            done = self._WIDTH * step // total if total else self._WIDTH
            bar = "=" * done + (">" if done < self._WIDTH else "") + " " * max(self._WIDTH - done - 1, 0)
            loss = "" if self._loss is None else f"loss {self._loss:.4f} "
            self._out().write(f"\r{self._prefix(self.trainer.epoch + 1)} [{bar}] {step}/{total or '?'} {loss}"
                              f"{_duration(time.perf_counter() - self._started)}")
            self._out().flush()
        elif self.log_every and step % self.log_every == 0:
            loss = "" if self._loss is None else f" loss={self._loss:.6g}"
            print(f"{self._prefix(self.trainer.epoch + 1)} step {step}/{total or '?'}{loss}", file=self._out(),
                  flush=True)

    def on_epoch_end(self, epoch, logs):
        parts = [f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items()
                 if k not in ("epoch", "time") and not isinstance(v, list)]
        line = f"{self._prefix(epoch)} " + " ".join(parts) + f" ({_duration(logs['time'])})"
        self._out().write(("\r\x1b[K" if self._bar() else "") + line + "\n")
        self._out().flush()


def _duration(seconds: float) -> str:
    """A short human duration: milliseconds below one second (a digits epoch takes a few ms), else seconds."""
    return f"{seconds * 1e3:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
