"""A whole run from a checked config: seed, device, data, model, loss, optimizer, scheduler and callbacks, training,
and the run directory.

The run directory holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one object per epoch),
``checkpoints/`` (``last.npz``, ``best.npz``, recent ``epoch-NNNN.npz``), for text data ``vocabulary.json`` (the
vocabulary of the token ids, for ``gpunet predict``), ``summary.json`` (the final model's metrics on every split:
``test_accuracy``, ``test_loss``, ...; a forecasting dataset's baselines beside them: ``test_persistence_mse``, ...)
and PNG plots of the curves (a fine-tuning run that pre-trains adds ``pretrain/`` and ``checkpoints/pretrained.npz``:
``gpunet.runner.pretrain``). Every file is written atomically (``gpunet.train.atomic``); a directory that holds a
run is never written by a new run. ``resume=True`` continues exactly from the newest intact checkpoint, or starts
the run when it has none yet.

Data parallel (started by ``mpiexec``, see ``gpunet.train.distributed``): every rank builds the same run and trains
its share of each batch; rank 0 alone writes the run directory, the other ranks' callbacks write to a private
temporary directory, removed at the end.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime

from .. import manual_seed, no_grad, random, set_device
from ..backend import DeviceError
from ..backend.cuda_settings import set_allow_tf32
from ..config import (ConfigError, build_augment, build_dataset, build_loss, build_models, build_optimizer,
                      build_param_groups, build_scheduler, build_task, check_model, dump_config, load_config,
                      loads_config, validate_config)
from ..config.builders import model_path
from ..config.load import where
from ..data import DataLoader, StreamLoader
from ..train.callbacks import (Callback, CSVLogger, EarlyStopping, JSONLLogger, ModelCheckpoint, ProgressBar,
                              ReduceLROnPlateau, TerminateOnNaN)
from ..train import strict_json
from ..train.atomic import atomic_write_text, remove_stale_temporaries
from ..train.distributed import DataParallel, rank_seed, world
from ..train.checkpoint import (Checkpoint, CheckpointError, CheckpointManager, fallback_message,
                               load_checkpoint, newest_intact, open_checkpoint)
from ..train.interrupt import TrainingInterrupted
from ..ops.normalization import BatchStatisticsError
from ..train.tasks import ModelShapeError
from ..train.plots import plot_augmented_samples, plot_history
from ..train.trainer import Trainer
from .parts import evaluation_loader, trainer_options, training_loader
from .pretrain import Pretraining

__all__ = ["Run", "RunError", "build_callbacks", "build_run", "build_training", "check_run", "config_differences",
           "default_run_dir", "final_metrics", "resumed_config", "run", "summary_line", "use_device"]

# Config keys a resumed run may change without breaking exactness of what was already trained.
RESUMABLE_CHANGES = ("trainer.epochs", "device", "trainer.log_every", "trainer.on_nonfinite", "allow_tf32")
# Config keys an evaluation may change: neither the data (splits, normalisation) nor the model depend on them.
EVALUATION_CHANGES = ("device", "trainer.batch_size", "trainer.eval_batch_size", "trainer.metrics", "trainer.log_every",
                      "allow_tf32")


DEVICE_VARIABLE = "GPUNET_DEVICE"


def use_device(spec: str, announce: bool = True):
    """Make a config's ``device`` the current one. ``auto`` defers to the GPUNET_DEVICE environment variable when it
    is set (to anything but auto), else picks the first CUDA GPU or the CPU; any other value is used as it is.
    ``announce``: say on stderr what ``auto`` chose (a sweep says it once)."""
    chosen = os.environ.get(DEVICE_VARIABLE, "").strip()
    if spec == "auto" and chosen and chosen.lower() != "auto":
        try:
            device = set_device(chosen)
        except DeviceError as exc:
            raise DeviceError(f"{DEVICE_VARIABLE}={chosen} (used because the config's device is auto): {exc}, "
                              f"or unset {DEVICE_VARIABLE}") from None
        if announce:
            print(f"gpunet: device auto -> {device} ({DEVICE_VARIABLE}={chosen})", file=sys.stderr)
        return device
    return set_device(spec, announce=announce)


class RunError(RuntimeError):
    """A run cannot start or did not finish normally (nothing to resume, a diverged loss, an occupied directory)."""


def default_run_dir(config_name: str, now: datetime | None = None) -> str:
    """``runs/<config-name>-<YYYYmmdd-HHMMSS>``."""
    return os.path.join("runs", f"{config_name}-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}")


def _inside(run_dir: str, path: str) -> str:
    return path if os.path.isabs(path) else os.path.join(run_dir, path)


def build_callbacks(config: dict, run_dir: str, progress: bool = True) -> tuple[list, ModelCheckpoint]:
    """The run's callbacks: those listed in ``config['callbacks']`` (file paths inside ``run_dir``), the
    ``metrics.jsonl`` logger, a progress display (unless ``progress`` is false or the config sets style none) and
    the run's own checkpointer from ``config['checkpoint']``, which is also returned on its own."""
    log_every = config["trainer"]["log_every"]
    callbacks, progress_style = [], "auto"
    for entry in config["callbacks"]:
        kind, args = entry["type"], {k: v for k, v in entry.items() if k != "type"}
        if kind == "early_stopping":
            callbacks.append(EarlyStopping(**args))
        elif kind == "reduce_lr_on_plateau":
            callbacks.append(ReduceLROnPlateau(**args))
        elif kind == "terminate_on_nan":
            callbacks.append(TerminateOnNaN())
        elif kind == "csv_logger":
            callbacks.append(CSVLogger(_inside(run_dir, args["filename"]), args["append"]))
        elif kind == "jsonl_logger":
            callbacks.append(JSONLLogger(_inside(run_dir, args["filename"]), args["append"]))
        elif kind == "model_checkpoint":
            callbacks.append(_checkpointer(args, run_dir))
        elif kind == "progress":
            progress_style = args["style"]
        else:
            raise RunError(f"callbacks: no builder for callback type {kind!r}")
    callbacks.append(JSONLLogger(os.path.join(run_dir, "metrics.jsonl")))
    if progress and progress_style != "none":
        callbacks.append(ProgressBar(progress_style, log_every))
    own = _checkpointer(config["checkpoint"], run_dir)
    callbacks.append(own)
    return callbacks, own


def _checkpointer(section: dict, run_dir: str) -> ModelCheckpoint:
    return ModelCheckpoint(_inside(run_dir, section["dir"]), section["monitor"], section["mode"],
                           section["save_best"], section["keep"], section["every_n_epochs"])


@dataclass
class Run:
    """Everything a run is made of, built from a config (``build_run``)."""

    config: dict
    directory: str
    dataset: object
    trainer: Trainer
    train_loader: DataLoader
    val_loader: DataLoader | None
    test_loader: DataLoader | None
    checkpointer: ModelCheckpoint | None
    splits: dict  # whole, unshuffled loaders of every split, by name, for the task's pictures and figures

    @classmethod
    def from_checkpoint(cls, path: str, overrides=(), config_path: str | None = None,
                        announce_device: bool = True) -> tuple["Run", str, object]:
        """The run a checkpoint was trained in, rebuilt from the config stored in it (same data splits and
        normalisation, same model) with the checkpoint's weights, for evaluation: no directory is written.
        ``overrides`` may change only ``EVALUATION_CHANGES``. A checkpoint without a config (saved from Python)
        takes the config file ``config_path`` with ``overrides``. A damaged ``last.npz``/``epoch-NNNN.npz`` gives way
        to the newest intact checkpoint beside it (said on stderr). Returns the run, the path of the checkpoint used
        and the checkpoint."""
        path, checkpoint, problems = open_checkpoint(path)
        if problems:
            print(fallback_message(path, checkpoint, problems), file=sys.stderr, flush=True)
        if checkpoint.config is None:
            if config_path is None:
                raise RunError(f"{path} holds no config (it was saved from Python, not by a gpunet run), so its data "
                               "and model are unknown; give the config it was trained with")
            saved = config = load_config(config_path, overrides)
        else:
            saved = validate_config(checkpoint.config, source=f"{path} (its stored config)")
            config = loads_config(dump_config(saved), overrides, f"{path} (its stored config)") if overrides else saved
        refused = config_differences(saved, config, EVALUATION_CHANGES)
        if refused:
            raise RunError(f"cannot evaluate {path} with these overrides: evaluation uses the run's own config (its "
                           f"data splits, normalisation and model), of which only {', '.join(EVALUATION_CHANGES)} may "
                           "change, but they change " + "; ".join(refused[:5]))
        built = build_run(config, None, progress=False, announce_device=announce_device)
        try:
            built.trainer.model.load_state_dict(checkpoint.model)
            built.trainer.task.load_state_dict((checkpoint.extra.get("task") or {}).get("state", {}))  # e.g. a baseline
        except (RuntimeError, ValueError, KeyError) as exc:
            origin = "its own config" if checkpoint.config is not None else config_path
            raise CheckpointError(f"{path} does not fit the model of {origin}: {exc}") from None
        return built, path, checkpoint

    def evaluate(self, split: str = "test", task_figures: bool = True) -> dict:
        """The model's loss and metrics on ``split`` (``train``, ``val`` or ``test``), in eval mode, each key
        prefixed ``<split>_``, then (``task_figures``) the task's own figures as summary.json has them
        (``task_summary``: an ODE's ``max_abs_error``, a GAN's ``sample_quality``, ...)."""
        ranks = world()
        loaders = {"train": evaluation_loader(self.config, self.dataset.train, ranks.size, ranks.rank),
                   "val": self.val_loader, "test": self.test_loader}
        if split not in loaders:
            raise ValueError(f"split must be one of {', '.join(loaders)}, got {split!r}")
        if loaders[split] is None:
            raise RunError(f"the run's data has no {split} split (its fraction is 0); choose another split")
        results = self.trainer.evaluate(loaders[split], prefix=f"{split}_")
        return {**results, **self.task_summary()} if task_figures else results

    def task_summary(self) -> dict:
        """The task's own figures for summary.json (``Task.summary`` on the whole splits), in eval mode without
        gradients."""
        self.trainer.model.eval()
        with no_grad():
            return self.trainer.task.summary(self.splits)


def _checked_models(config: dict, task, info) -> dict:
    """Seed and build the task's models, then dry-run them on zero batches (``Task.dry_run``: the data's input
    shape for a one-model task)."""
    manual_seed(config["seed"])
    models = build_models(config, task, info)
    try:
        task.dry_run(lambda name, shape, input_from=None: check_model(
            config, models[name], shape, info.num_classes, input_from or f"the data ({info.name})", name,
            info.target_shape), info)
    except ModelShapeError as err:
        path = model_path(config, err.model) or ("task",)
        source, line = where(config, path)
        raise ConfigError.at(source, line, path, str(err)) from None
    return models


def build_training(config: dict, info) -> tuple:
    """The task, its dry-run models, one optimizer per model (over ``task.param_groups``) and one scheduler each
    when the config has one (else None), for data described by ``info``."""
    task = build_task(config)
    models = _checked_models(config, task, info)
    optimizers = {name: build_optimizer(config, build_param_groups(config, task, name, model), name)
                  for name, model in models.items()}
    schedulers = None if config.get("scheduler") is None else \
        {name: build_scheduler(config, optimizer) for name, optimizer in optimizers.items()}
    return task, models, optimizers, schedulers


class TaskArtifacts(Callback):
    """Draws the task's per-epoch pictures (``Task.epoch_artifacts``) into the run directory, last of all the
    callbacks (so adding it kept the checkpoint keys of the others)."""

    order = 200

    def __init__(self, directory: str, splits: dict):
        self.directory, self.splits = directory, splits

    def on_epoch_end(self, epoch, logs):
        self.trainer.model.eval()
        with no_grad():
            self.trainer.task.epoch_artifacts(self.directory, epoch, self.splits)


def _check_batches(config: dict, info) -> None:
    """``drop_last`` with a batch larger than the training split would leave no batch to train on; every rank of
    a data-parallel run needs a share of a full batch."""
    batch, drop_last = config["trainer"]["batch_size"], config["trainer"]["drop_last"]
    ranks, samples = world().size, min(batch, info.train_size or batch)
    if ranks > samples:
        source, line = where(config, ("trainer", "batch_size"))
        raise ConfigError.at(source, line, ("trainer", "batch_size"),
                             f"{ranks} ranks (--nproc) cannot share batches of {samples} samples (trainer.batch_size "
                             f"{batch}, {info.train_size} training samples of {info.name}): a rank would get none",
                             allowed=f"at most {samples} ranks, or a larger trainer.batch_size")
    if drop_last and info.train_size is not None and batch > info.train_size:
        source, line = where(config, ("trainer", "batch_size"))
        raise ConfigError.at(source, line, ("trainer", "batch_size"),
                             f"with trainer.drop_last true, a batch of {batch} is larger than the {info.train_size} "
                             f"training samples of {info.name}, so every epoch would have no batch",
                             allowed=f"trainer.batch_size at most {info.train_size}, or trainer.drop_last false")


def check_run(config: dict, dataset_info=None, announce_device: bool = True):
    """Everything ``build_run`` checks before writing anything: the data loads, the model builds and its dry run
    passes, the loss, optimizer and scheduler build. Returns the dataset's info (pass it back to skip loading)."""
    use_device(config["device"], announce_device)
    set_allow_tf32(config["allow_tf32"])
    info = dataset_info or build_dataset(config).info
    _check_batches(config, info)
    build_training(config, info)
    _pretraining(config)
    build_augment(config, info)
    build_loss(config)
    return info


def build_run(config: dict, run_dir: str | None, progress: bool = True, announce_device: bool = True) -> Run:
    """Seed, choose the device (``use_device``), load the data, build and dry-run the model, build the training
    objects; creates ``run_dir`` only once all of that has passed (no training yet). ``run_dir`` None: no
    directory and no callbacks (to evaluate)."""
    device, ranks = use_device(config["device"], announce_device), world()
    set_allow_tf32(config["allow_tf32"])  # process-wide, as the device: every run sets its own
    if ranks.distributed and device.kind in ("cuda", "cuda-emu"):  # one GPU per rank, as PyTorch DDP's local rank
        set_device(f"{device.kind}:{ranks.local_rank}", announce=False)
    dataset = build_dataset(config)
    _check_batches(config, dataset.info)
    task, models, optimizers, schedulers = build_training(config, dataset.info)
    task.vocabulary = dataset.vocabulary  # token data: how ids read as text (a language model's samples)
    augment = build_augment(config, dataset.info)
    loss = build_loss(config)
    scheduler_cfg = config.get("scheduler") or {}
    splits = {name: evaluation_loader(config, split) for name, split in
              (("train", dataset.train), ("val", dataset.validation), ("test", dataset.test)) if split is not None}
    callbacks, checkpointer = [], None
    if run_dir is not None:
        os.makedirs(run_dir, exist_ok=True)
        callbacks, checkpointer = build_callbacks(config, run_dir, progress)
        if ranks.rank == 0:
            callbacks.append(TaskArtifacts(run_dir, splits))
    trainer = Trainer(models, loss, optimizers, schedulers, callbacks, task=task,
                      scheduler_interval=scheduler_cfg.get("interval", "epoch"),
                      scheduler_monitor=scheduler_cfg.get("monitor") or "val_loss", **trainer_options(config))
    trainer.config = config
    if ranks.distributed:
        trainer.distributed = DataParallel(ranks)
        if ranks.rank > 0:  # every rank built the same weights; their dropout masks differ
            random.manual_seed(rank_seed(0, ranks.rank))
    if task.stateful_batches:
        train_loader = StreamLoader(dataset.train, config["trainer"]["batch_size"], seed=config["seed"],
                                    transform=augment, num_replicas=ranks.size, rank=ranks.rank)
    else:
        train_loader = training_loader(config, dataset.train, augment, num_replicas=ranks.size, rank=ranks.rank)
    val_loader, test_loader = (None if split is None else evaluation_loader(config, split, ranks.size, ranks.rank)
                               for split in (dataset.validation, dataset.test))
    return Run(config, run_dir, dataset, trainer, train_loader, val_loader, test_loader, checkpointer, splits)


def _flatten(value, prefix="") -> dict:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}[{index}]"))
        return out or {prefix: []}
    return {prefix: value}


def _within(key: str, allowed) -> bool:
    return any(key == a or key.startswith((a + ".", a + "[")) for a in allowed)


def config_differences(saved: dict, current: dict, allowed=RESUMABLE_CHANGES) -> list[str]:
    """``key: old -> new`` for every setting that differs, except those under ``allowed`` (default: those a resume
    may change)."""
    old, new = _flatten(saved), _flatten(current)
    return [f"{key}: {old.get(key, '(absent)')!r} -> {new.get(key, '(absent)')!r}" for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key) and not _within(key, allowed)]


def resumed_config(run_dir: str, overrides=()) -> dict | None:
    """The config that continues the run in ``run_dir``: its own ``config.yaml`` (or, when that is missing or
    unreadable, the config saved in its newest intact checkpoint, said on stderr) with ``overrides`` applied, which
    may change only ``RESUMABLE_CHANGES`` (Lightning's and Keras' resume continues that run, whatever a config file
    says now). None when ``run_dir`` holds no run yet (resuming it starts a new one). Raises RunError when an
    override changes anything else."""
    path = os.path.join(run_dir, "config.yaml")
    try:
        load = functools.partial(load_config, path)
        saved = load()
    except ConfigError as exc:
        found = newest_intact(CheckpointManager(os.path.join(run_dir, "checkpoints")).paths())
        if found is None or found[1].config is None:
            if not os.path.exists(path):
                return None
            raise
        problem = "does not exist" if not os.path.exists(path) else f"cannot be read ({str(exc).splitlines()[0]})"
        print(f"gpunet: {path} {problem}; using the config saved in {found[0]}", file=sys.stderr, flush=True)
        load = functools.partial(loads_config, dump_config(found[1].config), source=found[0])
        saved = load()
    config = load(overrides) if overrides else saved
    differences = config_differences(saved, config)
    if differences:
        raise RunError(f"cannot resume {run_dir} with these overrides: only {', '.join(RESUMABLE_CHANGES)} may "
                       f"change on resume, but they change " + "; ".join(differences[:5]) +
                       "; to train with other values start a new run (another --out)")
    return config


RUN_FILES = ("config.yaml", "metrics.jsonl", "summary.json")
VOCABULARY_FILE = "vocabulary.json"  # a token dataset's Vocabulary.state_dict()


def _existing_run(run_dir: str, config: dict) -> str | None:
    """A file showing that ``run_dir`` already holds a run, or None."""
    for name in RUN_FILES:
        if os.path.exists(os.path.join(run_dir, name)):
            return os.path.join(run_dir, name)
    for manager in _managers(config, run_dir):
        if manager.paths():
            return manager.paths()[0]
    return None


def _managers(config: dict, run_dir: str) -> list[CheckpointManager]:
    """The checkpoint directories of the run's checkpointers (its own first)."""
    sections = [config["checkpoint"]] + [c for c in config["callbacks"] if c["type"] == "model_checkpoint"]
    return [CheckpointManager(_inside(run_dir, section["dir"]), monitor=None) for section in sections]


def _resume_point(run: Run) -> Checkpoint | None:
    """The newest intact checkpoint of the run (saying on stderr which damaged ones were skipped), or None when the
    run has none yet (it then starts from the beginning)."""
    found = newest_intact(run.checkpointer.manager.paths())
    if found is None:
        print(f"gpunet: {run.directory} has no checkpoint yet; starting the run from the beginning", file=sys.stderr,
              flush=True)
        return None
    path, saved, problems = found
    if problems:
        print(fallback_message(path, saved, problems), file=sys.stderr, flush=True)
    else:
        run.checkpointer.manager.prune()  # epoch files a kill kept from being removed
    if saved.config is not None:
        stored = validate_config(saved.config, source=f"{path} (its stored config)")  # keys added since: defaults
        differences = config_differences(stored, run.config)
        if differences:
            raise RunError(f"cannot resume {run.directory}: the config differs from the one it was trained with "
                           f"(only {', '.join(RESUMABLE_CHANGES)} may change): " + "; ".join(differences[:5]))
    return saved


def final_metrics(run: Run) -> dict:
    """The trained model's loss and metrics on every split (``train_*``, ``val_*``, ``test_*``), in eval mode."""
    results = {}
    for split, present in (("train", True), ("val", run.val_loader is not None), ("test", run.test_loader is not None)):
        if present:
            results.update(run.evaluate(split, task_figures=False))
    return results


def _pretraining(config: dict) -> Pretraining | None:
    """The run's pretraining (``task.pretrain`` of a finetune run, its data loaded and checked), or None."""
    if not (config.get("task") or {}).get("pretrain"):
        return None
    if world().distributed:
        raise RunError("task.pretrain: the pretraining is not data-parallel; pre-train in a run of one process and "
                       "give its checkpoints/pretrained.npz as task.weights")
    return Pretraining(config)


def run(config: dict, run_dir: str, resume: bool = False, config_name: str = "run", progress: bool = True,
        announce_device: bool = True) -> dict:
    """Train as ``config`` says, write the run directory, and return the summary (also in ``summary.json``).
    ``announce_device``: say on stderr what ``device: auto`` chose.

    ``resume``: continue from the newest intact checkpoint (from the beginning if there is none yet). Raises
    ``RunError`` when ``run_dir`` already holds a run and ``resume`` is false, when another process is writing to it,
    or when training stopped on a NaN/infinite loss; ConfigError, DatasetError, CheckpointError and
    DeviceError for problems with the config, the data, a checkpoint or the device; ``TrainingInterrupted`` (its
    ``run_dir`` and ``checkpoint`` filled in) when SIGINT or SIGTERM stopped training.
    """
    ranks, pretraining = world(), _pretraining(config)
    if ranks.rank > 0:
        return _run_other_rank(config, resume, progress=False)
    started = time.perf_counter()
    if not resume:
        existing = _existing_run(run_dir, config)
        if existing:
            raise RunError(f"{run_dir} already holds a run ({existing}); nothing was changed. Continue it with "
                           "--resume, or choose another --out directory")
    built = build_run(config, run_dir, progress, announce_device)
    with _exclusive(run_dir):
        logs = [os.path.dirname(os.path.abspath(c.filename)) for c in built.trainer.callbacks
                if isinstance(c, (CSVLogger, JSONLLogger))]
        for directory in {run_dir, *logs, *(m.directory for m in _managers(config, run_dir))}:
            remove_stale_temporaries(directory)
        checkpoint = _resume_point(built) if resume else None
        if ranks.distributed and resume:  # the other ranks resume from the same checkpoint
            built.trainer.distributed.allgather(checkpoint)
        config_path, config_text = os.path.join(run_dir, "config.yaml"), dump_config(config)
        if not os.path.exists(config_path) or _read_text(config_path) != config_text:
            atomic_write_text(config_path, config_text)
        if built.dataset.vocabulary is not None:  # how gpunet predict turns new text into the model's ids
            vocabulary_path = os.path.join(run_dir, VOCABULARY_FILE)
            vocabulary_text = json.dumps(built.dataset.vocabulary.state_dict(), ensure_ascii=False) + "\n"
            if not os.path.exists(vocabulary_path) or _read_text(vocabulary_path) != vocabulary_text:
                atomic_write_text(vocabulary_path, vocabulary_text)
        plot_augmented_samples(built.train_loader, run_dir)
        trainer = built.trainer
        if pretraining is not None:  # resumed from a checkpoint, fit replaces these weights anyway
            trainer.task.load_body(pretraining.weights(run_dir, trainer.task, resume, progress))
        try:
            with _batch_statistics_advice(config, built):
                trainer.fit(built.train_loader, built.val_loader, config["trainer"]["epochs"], resume=checkpoint)
        except TrainingInterrupted as exc:
            exc.run_dir, exc.checkpoint = run_dir, None if exc.at_once else built.checkpointer.manager.latest()
            raise
        plot_history(trainer.history.epochs, run_dir)
        trainer.model.eval()
        with no_grad():
            trainer.task.final_artifacts(run_dir, built.splits)
        if trainer.stopped_on_error:
            last = built.checkpointer.manager.latest()
            kept = f"the last good checkpoint is {last} (epoch {load_checkpoint(last).epoch})" if last \
                else "no checkpoint had been written yet"
            raise RunError(f"training did not finish ({trainer.stop_reason.split(':')[0]} stopped it at epoch "
                           f"{trainer.epoch + 1}); {kept}")
        summary = {"config": config_name, "run_dir": run_dir, "world_size": ranks.size, "epochs": trainer.epoch,
                   "stopped_early": trainer.stop_reason, "best_epoch": built.checkpointer.manager.best_epoch,
                   **final_metrics(built), **built.task_summary(), **built.dataset.baselines,
                   **(pretraining.figures(run_dir) if pretraining is not None else {}),
                   "time_s": round(time.perf_counter() - started, 3)}
        atomic_write_text(os.path.join(run_dir, "summary.json"), strict_json.dumps(summary, indent=2) + "\n")
    return summary


def _run_other_rank(config: dict, resume: bool, progress: bool) -> dict:
    """Rank > 0 of a data-parallel run: train in step with rank 0, whose run directory it never writes (its
    callbacks write to a temporary directory), resuming from the checkpoint rank 0 sends; returns the metrics."""
    scratch = tempfile.mkdtemp(prefix=f"gpunet-rank{world().rank}-")
    try:
        built = build_run(config, scratch, progress, announce_device=False)
        trainer = built.trainer
        checkpoint = trainer.distributed.allgather(None)[0] if resume else None
        with _batch_statistics_advice(config, built):
            trainer.fit(built.train_loader, built.val_loader, config["trainer"]["epochs"], resume=checkpoint)
        if trainer.stopped_on_error:  # rank 0 says so and ends the job
            return {}
        return final_metrics(built)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextlib.contextmanager
def _batch_statistics_advice(config: dict, built):
    """A batch too small for BatchNorm's training statistics (a 1-sample last batch, or a rank's 1-sample share)
    is the config's batch size at fault, not a bug: say so, with the sizes and the fix; the checkpoints written so
    far stay."""
    try:
        yield
    except BatchStatisticsError as exc:
        batch, samples = config["trainer"]["batch_size"], built.dataset.info.train_size
        last = f", whose last batch has {samples % batch}" if samples and samples % batch else ""
        shares = f", shared by {world().size} ranks" if world().size > 1 else ""
        raise RunError(f"{exc}: a training batch is too small for batch normalization (trainer.batch_size {batch}, "
                       f"{samples} training samples{last}{shares}); set trainer.drop_last: true, or a "
                       "trainer.batch_size that leaves at least 2 samples per batch and rank") from exc


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


@contextlib.contextmanager
def _exclusive(run_dir: str):
    """Hold an exclusive lock on ``run_dir`` (the directory itself: no lock file to leave behind) while writing it;
    RunError if another gpunet process holds it."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): nothing to hold
        yield
        return
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise RunError(f"another gpunet process is writing to {run_dir}; wait for it to finish, or choose "
                           "another --out directory") from None
        yield
    finally:
        os.close(fd)


def summary_line(summary: dict) -> str:
    """The summary as one line of JSON, without list values (confusion matrices stay in summary.json)."""
    return strict_json.dumps({k: v for k, v in summary.items() if not isinstance(v, list)})

