"""Training tasks (``task:`` in a config): the ``Task`` contract and registry in ``base``, one module per task.

Every module of this package is imported here, so a task registers itself by being a module with
``@register_task(name)``; nothing else lists the tasks.
"""
import importlib as _importlib
import pkgutil as _pkgutil

from .base import DATA_KINDS, TASKS, Key, ModelShapeError, Step, Task, check_keys, register_task

for _module in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    _importlib.import_module(f"{__name__}.{_module}")

__all__ = ["DATA_KINDS", "Key", "ModelShapeError", "Step", "TASKS", "Task", "check_keys", "register_task"]
