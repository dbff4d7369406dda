"""Looking at a config's model without training it: its layer tables (``gpunet summary``) and the CUDA kernel files
its training step uses, compiled ahead of time (``gpunet warmup``)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy

from ..backend import current
from ..backend.warmup import kernels_called, warmup
from ..config import build_dataset, build_loss, build_models, build_task, check_model
from ..config.dry_run import input_dtype, zero_targets
from ..train.trainer import Trainer
from .run import build_training, use_device

__all__ = ["summarize", "warm_up"]


def summarize(config: dict, input_shape: tuple | None = None, input_from: str = "input_shape") -> list:
    """The layer table (``ModelSummary``) of every model of the config's task, as ``(name, table)`` in the order
    of the task's dry run, each on the input shape that run gives it: ``input_shape`` (one sample; ``input_from``
    names where it came from in error messages) for the first model, or by default the shape of the config's data.
    Uses the config's device."""
    use_device(config["device"])
    if input_shape is not None:
        info = SimpleNamespace(name=input_from, input_shape=tuple(input_shape), num_classes=None,
                               target_shape=None)
        origin = info.name
    else:
        info = build_dataset(config).info
        origin = f"the data ({info.name})"
    task = build_task(config)
    models = build_models(config, task, info)
    tables = []

    def show(name, shape, input_from=None):
        output = check_model(config, models[name], shape, info.num_classes, input_from or origin, name,
                             info.target_shape)
        tables.append((name, models[name].summary(shape, dtype=input_dtype(models[name]), print_fn=None)))
        return output
    task.dry_run(show, info)
    return tables


def warm_up(config: dict) -> tuple:
    """Make the config's device current; return its backend and the compilations of the kernel files one training
    step and one evaluation call (``gpunet.backend.warmup.warmup``: ``(family, kernels, seconds)`` each), or None
    when the backend compiles nothing (NumPy). The compilations are lazy: the work runs as they are iterated."""
    use_device(config["device"])
    backend = current()
    if backend.name != "cupy":
        return backend, None
    return backend, _compilations(config, backend)


def _compilations(config: dict, backend):
    info = build_dataset(config).info
    task, models, optimizers, _ = build_training(config, info)
    trainer = Trainer(models, build_loss(config), optimizers, grad_clip=config["trainer"]["grad_clip"], task=task,
                      metrics=())  # metrics run on host copies: no kernels
    x = numpy.zeros((2, *info.input_shape), dtype=input_dtype(next(iter(models.values()))))
    y = zero_targets(2, info.target_shape, num_classes=info.num_classes).numpy()  # NumPy batches, as a loader gives them
    # the kernels a training step and an evaluation call, seen by running them on a zero batch (which compiles them
    # on the way; the evaluation covers what a task's later stage trains, e.g. a DBN's fine-tuning after its RBMs)
    kernels = kernels_called(lambda: (trainer.train_on_batch(x, y), trainer.evaluate([(x, y)])))
    yield from warmup(backend, kernels)
