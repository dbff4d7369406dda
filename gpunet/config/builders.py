"""Objects from a resolved config: the task, its models, the loss, the optimizers and learning-rate schedulers.

Every class comes from a registry entry (``gpunet.config.components``), except a model's ``import:`` path, the one
place a config names code: it must be a ``gpunet.nn.Module`` subclass, checked before anything is called, and it
cannot come from Python's standard library (whose modules can run commands as they are imported).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import sys

from ..data import load_dataset
from ..data.transforms import Compose
from ..nn import Module
from .archs import ARCHS
from .components import construct, public_name
from ..kinds import Path
from .errors import ConfigError
from .layers import build_layers
from .load import where
from .schema import LOSSES, OPTIMIZERS, SCHEDULERS, TRANSFORMS, configured_task


def _located(build):
    """Give the builder's ConfigErrors the file and line (or override) of their key, when the config knows it."""
    @functools.wraps(build)
    def located(config, *args, **kwargs):
        try:
            return build(config, *args, **kwargs)
        except ConfigError as err:
            if all(p.source is not None for p in err.problems):
                raise
            problems = [p if p.source is not None else dataclasses.replace(p, **dict(zip(
                ("source", "line"), where(config, p.path)))) for p in err.problems]
            raise ConfigError(problems) from err.__cause__
    return located


def user_class(spec: str, base: type, path: Path):
    """The class a config names as ``'package.module:ClassName'``, checked to be a subclass of ``base`` before
    anything is called. Standard-library modules are refused without being imported."""
    module_name, _, class_name = spec.partition(":")
    allowed = f"'package.module:ClassName' of a {public_name(base)} subclass in your own code"
    if module_name.partition(".")[0] in sys.stdlib_module_names:
        raise ConfigError.at(None, None, path, f"{module_name} is part of Python's standard library, which holds no "
                             f"{base.__qualname__} classes; nothing was imported", value=spec, allowed=allowed)
    try:
        obj = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError.at(None, None, path, f"cannot import it: {err}", value=spec,
                             allowed="'package.module:ClassName' importable from the current Python path") from err
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        what = f"a class that is not a {base.__qualname__} subclass" if inspect.isclass(obj) else \
            f"not a class but a {type(obj).__name__}"
        raise ConfigError.at(None, None, path, f"{class_name} is {what}; nothing was called", value=spec,
                             allowed=allowed)
    return obj


def model_path(config: dict, name: str = "model") -> Path | None:
    """Where the config describes model ``name``: ``("model",)`` for a one-model task's model, ``("models",
    name)`` for one of several, None when the config leaves it to the task."""
    if config.get("models") and name in config["models"]:
        return ("models", name)
    if name == "model" and config.get("model") is not None:
        return ("model",)
    return None


@_located
def build_model(config: dict, name: str = "model"):
    """The network the config describes for model ``name`` (``model:``, or ``models: {name: ...}``): sequential
    layers, a registered arch, or an imported class."""
    path = model_path(config, name)
    if path is None:
        raise ConfigError.at(None, None, ("models", name) if config.get("model") is None and name != "model"
                             else ("model",), f"the config describes no model {name!r}", allowed="a model section")
    model = config[path[0]] if len(path) == 1 else config["models"][name]
    if "layers" in model:
        return build_layers(model["layers"], path + ("layers",))
    if "arch" in model:
        try:
            return ARCHS[model["arch"]].build(**model["args"])
        except (TypeError, ValueError, IndexError) as err:  # a ConfigError (a ValueError) from build_layers too
            if isinstance(err, ConfigError):
                raise
            raise ConfigError.at(None, None, path + ("args",), f"architecture {model['arch']!r} cannot be built "
                                 f"from these arguments: {type(err).__name__}: {err}") from err
    cls = user_class(model["import"], Module, path + ("import",))
    return construct(cls, model["args"], path + ("args",))


@_located
def build_task(config: dict):
    """The ``gpunet.train.tasks.Task`` that ``config['task']`` describes (default: classify)."""
    return configured_task(config)


def build_models(config: dict, task, info) -> dict:
    """Every model of ``task`` by name: from the config, or built by the task (its ``own_models``) from its keys and
    the data's ``info``."""
    return {name: build_model(config, name) if model_path(config, name) else task.build_model(name, info)
            for name in tuple(task.models)}


@_located
def build_param_groups(config: dict, task, name: str, model):
    """``task.param_groups(name, model)``; a ValueError naming one of the task's keys (``"freeze: ..."``, e.g. a
    layer the model does not have) becomes a ConfigError at ``task.<key>``."""
    try:
        return task.param_groups(name, model)
    except ValueError as err:
        key, _, message = str(err).partition(": ")
        if key not in getattr(task, "keys", {}) or not message:
            raise
        raise ConfigError.at(None, None, ("task", key), message, value=getattr(task, key)) from err


def _component(registry: dict, section: dict, path: Path, *leading):
    spec = registry[section["name"]]
    return construct(spec.cls, spec.arguments(section), path, *leading)


@_located
def build_loss(config: dict):
    """``gpunet.nn.<Loss>`` for ``config['loss']``, or None for a task that uses none."""
    return None if config.get("loss") is None else _component(LOSSES, config["loss"], ("loss",))


@_located
def build_optimizer(config: dict, params, name: str | None = None):
    """``gpunet.optim.<Optimizer>(params, ...)`` for model ``name``: ``config['optimizers'][name]`` when given,
    else ``config['optimizer']``."""
    if name is not None and name in (config.get("optimizers") or {}):
        return _component(OPTIMIZERS, config["optimizers"][name], ("optimizers", name), params)
    return _component(OPTIMIZERS, config["optimizer"], ("optimizer",), params)


@_located
def build_scheduler(config: dict, optimizer):
    """``gpunet.optim.lr_scheduler.<Scheduler>(optimizer, ...)`` for ``config['scheduler']``, or None without one.

    ``scheduler.interval`` (epoch or step) and ``scheduler.monitor`` are for the Trainer, not the scheduler.
    """
    if config.get("scheduler") is None:
        return None
    return _component(SCHEDULERS, config["scheduler"], ("scheduler",), optimizer)


def dataset_options(config: dict) -> dict:
    """Keyword options for ``gpunet.data.load_dataset(config['data']['name'], **options)``."""
    options = {k: v for k, v in config["data"].items() if k not in ("name", "val_split", "augment")}
    return {"seed": config["seed"], "validation_split": config["data"]["val_split"], **options}


def build_dataset(config: dict):
    """The train/validation/test splits ``config['data']`` describes, from ``gpunet.data.load_dataset``."""
    return load_dataset(config["data"]["name"], **dataset_options(config))


@_located
def build_augment(config: dict, info):
    """``gpunet.data.transforms.Compose`` of ``config['data']['augment']`` for the training loader, or None without
    transforms. ``info`` (the loaded data's ``DatasetInfo``) gives MixUp/CutMix their ``num_classes``; samples that
    are not images, or a transform that would change their shape, are a ConfigError naming the entry."""
    entries = config["data"].get("augment") or []
    if not entries:
        return None
    shape, built = tuple(info.input_shape), []
    for index, entry in enumerate(entries):
        spec, path = TRANSFORMS[entry["type"]], ("data", "augment", index)
        args = spec.arguments(entry)
        if getattr(spec.cls, "changes_targets", False):  # labels become class probabilities: say how many classes
            args["num_classes"] = info.num_classes
        transform = construct(spec.cls, args, path)
        try:
            transform.check_sample_shape(shape)
        except ValueError as err:
            hint = " (set data.flatten: false to keep the images' shape)" if config["data"].get("flatten") else ""
            raise ConfigError.at(None, None, path, f"{err}, from the data ({info.name}){hint}") from None
        if transform.sample_shape(shape) != shape:
            raise ConfigError.at(None, None, path, f"{entry['type']} would change the samples' shape from {shape} to "
                                 f"{transform.sample_shape(shape)}, but evaluation data is not augmented and keeps "
                                 f"{shape}; keep the size and add padding instead")
        built.append(transform)
    return Compose(built)
