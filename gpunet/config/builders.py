"""Objects from a resolved config: the model, loss, optimizer and learning-rate scheduler.

``gpunet.nn`` and ``gpunet.optim`` are imported inside the functions, so the config package loads (and checks
configs) without the engine.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib

from .archs import ARCHS
from .errors import ConfigError, Path
from .load import where
from .schema import LOSSES, OPTIMIZERS, SCHEDULERS, Component


def _located(build):
    """Give the builder's ConfigErrors the file and line (or override) of their key, when the config knows it."""
    @functools.wraps(build)
    def located(config, *args):
        try:
            return build(config, *args)
        except ConfigError as err:
            if all(p.source is not None for p in err.problems):
                raise
            problems = [p if p.source is not None else dataclasses.replace(p, **dict(zip(
                ("source", "line"), where(config, p.path)))) for p in err.problems]
            raise ConfigError(problems) from err.__cause__
    return located


def _gpunet_class(target: str, path: Path, key: str):
    """``gpunet.<target>``, e.g. ``nn.Linear``; a ConfigError naming the config key if it does not exist."""
    module_name, _, name = f"gpunet.{target}".rpartition(".")
    module = importlib.import_module(module_name)
    if not hasattr(module, name):
        raise ConfigError.at(None, None, path + (key,), f"{module_name} has no {name}, so this cannot be built "
                             "with this version of gpunet")
    return getattr(module, name)


def _construct(cls, args: dict, path: Path, *leading):
    try:
        return cls(*leading, **args)
    except (TypeError, ValueError) as err:
        raise ConfigError.at(None, None, path, f"{cls.__name__} rejected its arguments {args}: {err}") from err


def build_layers(layers: list[dict], path: Path = ("model", "layers")):
    """``gpunet.nn.Sequential`` of ``gpunet.nn.<type>(**arguments)`` for each checked layer mapping."""
    nn = importlib.import_module("gpunet.nn")
    modules = []
    for index, layer in enumerate(layers):
        args = {k: v for k, v in layer.items() if k != "type"}
        cls = _gpunet_class(f"nn.{layer['type']}", path + (index,), "type")
        modules.append(_construct(cls, args, path + (index,)))
    return nn.Sequential(*modules)


@_located
def build_model(config: dict):
    """The network ``config['model']`` describes: sequential layers, a registered arch, or an imported class."""
    model = config["model"]
    if "layers" in model:
        return build_layers(model["layers"])
    if "arch" in model:
        try:
            return ARCHS[model["arch"]].build(**model["args"])
        except (TypeError, ValueError, IndexError) as err:  # a ConfigError (a ValueError) from build_layers too
            if isinstance(err, ConfigError):
                raise
            raise ConfigError.at(None, None, ("model", "args"), f"architecture {model['arch']!r} cannot be built "
                                 f"from these arguments: {type(err).__name__}: {err}") from err
    module_name, _, class_name = model["import"].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as err:
        raise ConfigError.at(None, None, ("model", "import"), f"cannot import it: {err}", value=model["import"],
                             allowed="'package.module:ClassName' importable from the current Python path") from err
    built = _construct(cls, model["args"], ("model", "args"))
    nn = importlib.import_module("gpunet.nn")
    if not isinstance(built, nn.Module):
        raise ConfigError.at(None, None, ("model", "import"), f"{class_name} did not produce a gpunet.nn.Module "
                             f"(got {type(built).__name__})", value=model["import"])
    return built


def _component(registry: dict, section: dict, path: Path, *leading):
    spec: Component = registry[section["name"]]
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in section.items()
            if k != "name" and k not in spec.config_only}
    return _construct(_gpunet_class(spec.target, path, "name"), args, path, *leading)


@_located
def build_loss(config: dict):
    """``gpunet.nn.<Loss>`` for ``config['loss']``."""
    return _component(LOSSES, config["loss"], ("loss",))


@_located
def build_optimizer(config: dict, params):
    """``gpunet.optim.<Optimizer>(params, ...)`` for ``config['optimizer']``."""
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
    options = {k: v for k, v in config["data"].items() if k not in ("name", "val_split")}
    return {"seed": config["seed"], "validation_split": config["data"]["val_split"], **options}


def build_dataset(config: dict):
    """The train/validation/test splits ``config['data']`` describes, from ``gpunet.data.load_dataset``."""
    load_dataset = importlib.import_module("gpunet.data").load_dataset
    return load_dataset(config["data"]["name"], **dataset_options(config))
