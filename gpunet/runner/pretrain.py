"""Pre-training inside a fine-tuning run (``task: {type: finetune, pretrain: {classes, epochs, lr, batch_size}}``):
the run first trains its own network, with a head for ``classes`` in place of its own, on those classes of its own
dataset, then fine-tunes from those weights (``gpunet.train.tasks.finetune``), all in one run directory.

The pretraining data is the run's ``data:`` section with ``classes`` replaced and ``train_per_class`` dropped (all
their labels): the same seed and test and validation splits, which are drawn over the whole dataset before classes
are picked, so no image of the run's test split is ever trained on, whichever classes pre-train. It trains with the
run's loss, optimizer (``lr`` from ``pretrain`` when given), metrics and batch size (or ``pretrain.batch_size``),
without the fine-tuning's frozen layers, per-group rates or scheduler.

It writes into the run directory: ``pretrain/metrics.jsonl`` (one object per epoch), ``pretrain/checkpoints/``
(resumed exactly when the run is resumed in the middle of the pretraining) and, once done,
``checkpoints/pretrained.npz`` (the pretrained network, atomically: the fine-tuning's starting point, with the
pretraining's figures, ``pretrain_test_accuracy`` & co., which the run's summary.json repeats). A resumed run whose
``pretrained.npz`` exists does not pre-train again. gpunet's random state is the same after the pretraining as
before it (done now, resumed or skipped), so the fine-tuning trains the same numbers in every case.
"""
from __future__ import annotations

import copy
import os
import sys

from .. import manual_seed, random
from ..config import ConfigError, build_augment, build_dataset, build_loss, build_models, build_optimizer
from ..config.load import where
from ..data import DatasetError
from ..train.atomic import remove_stale_temporaries
from ..train.callbacks import JSONLLogger, ModelCheckpoint, ProgressBar
from ..train.checkpoint import Checkpoint, CheckpointError, load_checkpoint, newest_intact, save_checkpoint
from ..train.interrupt import TrainingInterrupted
from ..train.plots import plot_history
from ..train.trainer import Trainer
from ..train.transfer import replace_head
from .parts import evaluation_loader, trainer_options, training_loader

__all__ = ["PRETRAINED", "Pretraining", "pretraining_config"]

PRETRAINED = os.path.join("checkpoints", "pretrained.npz")  # inside the run directory
DIRECTORY = "pretrain"  # inside the run directory: metrics.jsonl, checkpoints/, the curves


def pretraining_config(config: dict) -> dict:
    """The run's config as the pretraining sees it: ``data.classes`` the pretraining classes, all their training
    samples (no ``train_per_class``), ``optimizer.lr`` and ``trainer.batch_size`` from ``task.pretrain`` when given,
    no scheduler."""
    settings = config["task"]["pretrain"]
    derived = copy.deepcopy(config)
    derived["data"].update(classes=list(settings["classes"]), train_per_class=None)
    if settings.get("lr") is not None:
        derived["optimizer"]["lr"] = settings["lr"]
    if settings.get("batch_size") is not None:
        derived["trainer"]["batch_size"] = settings["batch_size"]
    derived["scheduler"] = None
    return derived


class Pretraining:
    """The pretraining of a fine-tuning run: its data is loaded (and checked) on construction, before the run
    directory is written; ``weights(run_dir, task, resume, progress)`` trains (or resumes, or finds) it."""

    def __init__(self, config: dict):
        self.config, self.derived = config, pretraining_config(config)
        try:
            self.dataset = build_dataset(self.derived)
        except DatasetError as exc:
            path = ("task", "pretrain", "classes")
            source, line = where(config, path)
            raise ConfigError.at(source, line, path, f"the pretraining data: {exc}") from None

    def figures(self, run_dir: str) -> dict:
        """The pretraining's figures saved in the run's ``pretrained.npz``."""
        return dict(load_checkpoint(os.path.join(run_dir, PRETRAINED)).extra["pretrain"])

    def weights(self, run_dir: str, task, resume: bool, progress: bool = True) -> str:
        """The path of the run's pretrained weights: ``checkpoints/pretrained.npz`` when a resumed run has it, else
        trained now (from the newest intact checkpoint in ``pretrain/checkpoints`` when ``resume``). Raises
        ``TrainingInterrupted`` (with ``run_dir`` and ``checkpoint``) when a signal stops it."""
        path = os.path.join(run_dir, PRETRAINED)
        if resume and os.path.exists(path):
            try:
                load_checkpoint(path)
                return path
            except CheckpointError as exc:
                print(f"gpunet: {exc}; writing it again from the pretraining's checkpoints", file=sys.stderr, flush=True)
        state = random.get_rng_state()
        try:
            self._train(run_dir, task, resume, progress)
        finally:
            random.set_rng_state(state)
        return path

    def _train(self, run_dir: str, task, resume: bool, progress: bool) -> None:
        derived, info = self.derived, self.dataset.info
        directory = os.path.join(run_dir, DIRECTORY)
        manual_seed(derived["seed"])
        model = build_models(derived, task, info)["model"]
        replace_head(model, task.head_layer(model), info.num_classes)
        checkpointer = ModelCheckpoint(os.path.join(directory, "checkpoints"), monitor=None, save_best=False)
        callbacks = [JSONLLogger(os.path.join(directory, "metrics.jsonl")), checkpointer]
        if progress:
            callbacks.append(ProgressBar("auto", derived["trainer"]["log_every"]))
        trainer = Trainer(model, build_loss(derived), build_optimizer(derived, model.parameters()),
                          callbacks=callbacks, **trainer_options(derived))
        train = training_loader(derived, self.dataset.train, build_augment(derived, info))
        val = None if self.dataset.validation is None else evaluation_loader(derived, self.dataset.validation)
        for folder in (directory, checkpointer.directory):
            remove_stale_temporaries(folder)
        found = newest_intact(checkpointer.manager.paths()) if resume else None
        if found is not None:
            print(f"gpunet: resuming the pretraining from {found[0]} (epoch {found[1].epoch}, step {found[1].step})",
                  file=sys.stderr, flush=True)
        epochs = self.config["task"]["pretrain"]["epochs"]
        print(f"gpunet: pre-training on classes {derived['data']['classes']} of {info.name} ({len(self.dataset.train)} "
              f"training samples, {epochs} epochs; {directory}), then fine-tuning", file=sys.stderr, flush=True)
        try:
            trainer.fit(train, val, epochs, resume=None if found is None else found[1])
        except TrainingInterrupted as exc:
            exc.run_dir, exc.checkpoint = run_dir, None if exc.at_once else checkpointer.manager.latest()
            raise
        if trainer.stopped_on_error:
            from .run import RunError  # run.py imports this module
            last = checkpointer.manager.latest()
            raise RunError(f"the pretraining did not finish ({trainer.stop_reason}); "
                           + (f"its last good checkpoint is {last}" if last else "it had written no checkpoint yet"))
        plot_history(trainer.history.epochs, directory)
        figures = {"pretrain_epochs": trainer.epoch, "pretrain_train_size": len(self.dataset.train)}
        for name, split in (("val", self.dataset.validation), ("test", self.dataset.test)):
            if split is not None and len(split):
                figures.update(trainer.evaluate(evaluation_loader(derived, split), prefix=f"pretrain_{name}_"))
        figures = {k: v for k, v in figures.items() if not isinstance(v, list)}  # no confusion matrices
        os.makedirs(os.path.join(run_dir, os.path.dirname(PRETRAINED)), exist_ok=True)
        save_checkpoint(os.path.join(run_dir, PRETRAINED),
                        Checkpoint(model=dict(model.state_dict()), epoch=trainer.epoch, step=trainer.global_step,
                                   history=trainer.history.epochs, config=derived, extra={"pretrain": figures}))
