"""Config entries for classes: a component's keys, defaults and builder read from the class's own signature.

A registry entry (a layer, loss, optimizer, scheduler or callback) names its class and gives, per offered
argument, only what is the config's own: the kind of YAML value it accepts and a one-line description. The
argument's name must be a parameter of the class and its default is the class's (``inspect.signature``), so the two
cannot drift; a default that differs on purpose is given with ``Field(..., why_default="...")`` and documented.
``tests/config/test_components_match_classes.py`` checks that each key accepts exactly the values its class accepts.
"""
from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from ..kinds import Kind, Path
from .errors import ConfigError
from .spec import REQUIRED, Field, Section


@dataclass(frozen=True)
class Component(Section):
    """A section built as ``cls(*leading, **arguments)``; ``config_only`` keys are not passed to it, ``renames``
    maps a config key to the class's parameter name (``dir`` -> ``directory``)."""

    cls: Any = field(default=None, compare=False)
    config_only: tuple = ()
    renames: dict = field(default_factory=dict, compare=False)

    def arguments(self, section: dict) -> dict:
        """The keyword arguments for ``cls`` from a checked section (lists become tuples, as PyTorch takes them)."""
        return {self.renames.get(k, k): tuple(v) if isinstance(v, list) else v for k, v in section.items()
                if k in self.fields and k not in self.config_only}


def public_name(cls) -> str:
    """``gpunet.nn.Linear`` rather than ``gpunet.nn.linear.Linear``: the shortest package path that exports it."""
    parts = cls.__module__.split(".")
    for end in range(1, len(parts) + 1):
        if getattr(sys.modules.get(".".join(parts[:end])), cls.__name__, None) is cls:
            return f"{'.'.join(parts[:end])}.{cls.__qualname__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def construct(cls, args: dict, path: Path, *leading):
    """``cls(*leading, **args)``; a ConfigError naming ``path`` if the class refuses its arguments."""
    try:
        return cls(*leading, **args)
    except (TypeError, ValueError) as err:
        raise ConfigError.at(None, None, path, f"{cls.__name__} rejected its arguments {args}: {err}") from err


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def signature_fields(cls, fields: dict, *, skip: int = 0, config_only: tuple = (), renames: dict | None = None):
    """``fields`` (key -> Field or Kind) with each key checked against ``cls``'s parameters (after the first
    ``skip``, e.g. ``params``) and its default read from the signature (REQUIRED where the class has none)."""
    parameters = dict(list(inspect.signature(cls).parameters.items())[skip:])
    resolved = {}
    for key, spec in fields.items():
        spec = spec if isinstance(spec, Field) else Field(spec, "")
        if not isinstance(spec.kind, Kind):
            raise TypeError(f"{cls.__name__}: config key {key!r} needs a Kind, got {spec.kind!r}")
        if key in config_only:
            resolved[key] = spec
            continue
        name = (renames or {}).get(key, key)
        if name not in parameters:
            raise TypeError(f"{cls.__name__} has no parameter {name!r} (config key {key!r}); its parameters: "
                            f"{', '.join(parameters)}")
        if spec.why_default is None and spec.default is not REQUIRED:
            raise TypeError(f"{cls.__name__}: config key {key!r} states a default; the class's signature gives it "
                            f"(a default that differs on purpose needs why_default)")
        if spec.why_default is None:
            default = parameters[name].default
            spec = replace(spec, default=REQUIRED if default is inspect.Parameter.empty else _plain(default))
        resolved[key] = spec
    return resolved


def component(cls, doc: str | None, fields: dict, *, skip: int = 0, config_only: tuple = (),
              renames: dict | None = None, check_fn=None, spec_type=Component, **facts) -> Component:
    """A ``spec_type`` section for ``cls``; ``doc`` defaults to the first paragraph of the class's docstring."""
    doc = doc if doc is not None else inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    resolved = signature_fields(cls, fields, skip=skip, config_only=config_only, renames=renames)
    return spec_type(resolved, doc, check_fn, cls, tuple(config_only), dict(renames or {}), **facts)
