"""YAML run configs: one schema (``schema``), safe loading with line numbers, overrides, checking, builders.

    cfg = load_config("configs/mlp_digits.yaml", ["optimizer.lr=0.05"])   # ConfigError lists every problem
    model = build_model(cfg); optimizer = build_optimizer(cfg, model.parameters())
"""
from .archs import ARCHS, register_arch
from .builders import (build_augment, build_dataset, build_loss, build_model, build_models, build_optimizer,
                       build_param_groups, build_scheduler, build_task, dataset_options)
from .dry_run import check_model
from ..kinds import Problem, format_path
from .errors import ConfigError
from .layers import LAYERS, build_layers, register_layer
from .load import dump_config, load_config, loads_config, validate_config
from .overrides import apply_overrides
from .schema import (CALLBACKS, CONFIG, DATASETS, LOSSES, OPTIMIZERS, SCHEDULERS, TASK_TYPES, TRANSFORMS,
                     register_callback, register_dataset, register_loss, register_optimizer, register_scheduler,
                     register_transform)

__all__ = [
    "ARCHS", "CALLBACKS", "CONFIG", "DATASETS", "LAYERS", "LOSSES", "OPTIMIZERS", "SCHEDULERS", "TASK_TYPES",
    "TRANSFORMS", "ConfigError", "Problem", "apply_overrides", "build_augment", "build_dataset", "build_layers",
    "build_loss", "build_model", "build_models", "build_optimizer", "build_param_groups", "build_scheduler",
    "build_task", "check_model", "dataset_options", "dump_config",
    "format_path", "load_config", "loads_config", "register_arch", "register_callback", "register_dataset",
    "register_layer", "register_loss", "register_optimizer", "register_scheduler", "register_transform",
    "validate_config",
]
