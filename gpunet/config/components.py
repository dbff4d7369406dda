"""Config entries for classes: a component's keys, kinds, defaults, rules and builder read from the class itself.

A registry entry (a layer, loss, optimizer, scheduler, callback, transform or architecture) names its class and
gives, per offered argument, only what is the config's own: a one-line description. The argument must be a
parameter of the class, its kind is the one the class declares (``cls.arguments``, ``gpunet.kinds``: the class
checks its arguments through the same kinds) and its default is the class's (``inspect.signature``); the class's
rules between arguments are run on the section too, each refusal reported at the key it names. A default or a kind
that differs on purpose is given with ``Field(..., why_default=...)`` or ``Field(kind, ..., why_kind=...)`` and
documented. ``tests/config/test_components_match_classes.py`` checks all of this against the classes.
"""
from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field, replace
from typing import Any

from ..kinds import AnyCallable, AnyOf, ArgumentError, Arguments, Kind, Path
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


def declared_arguments(cls) -> Arguments:
    """The kinds and rules ``cls`` (a class or a builder function) declares for its arguments."""
    declared = getattr(cls, "arguments", None)
    return declared if isinstance(declared, Arguments) else Arguments()


def from_data(kind: Kind) -> Kind:
    """``kind`` without the alternatives no data value can be (a callable): what a YAML key of that kind takes."""
    if isinstance(kind, AnyOf) and any(isinstance(k, AnyCallable) for k in kind.kinds):
        kept = tuple(k for k in kind.kinds if not isinstance(k, AnyCallable))
        return kept[0] if len(kept) == 1 else AnyOf(kept)
    return kind


def signature_fields(cls, fields: dict, *, skip: int = 0, config_only: tuple = (), renames: dict | None = None,
                     declared: Arguments | None = None):
    """``fields`` (key -> description, or a Field) with each key checked against ``cls``'s parameters (after the
    first ``skip``, e.g. ``params``), its kind the one ``cls`` declares (or ``declared``, for a class that states
    its kinds another way) and its default read from the signature (REQUIRED where the class has none)."""
    parameters = dict(list(inspect.signature(cls).parameters.items())[skip:])
    declared = (declared or declared_arguments(cls)).kinds
    resolved = {}
    for key, spec in fields.items():
        spec = spec if isinstance(spec, Field) else Field(doc=spec)
        if key in config_only:
            if not isinstance(spec.kind, Kind):
                raise TypeError(f"{cls.__name__}: config-only key {key!r} needs a Kind, got {spec.kind!r}")
            resolved[key] = spec
            continue
        name = (renames or {}).get(key, key)
        if name not in parameters:
            raise TypeError(f"{cls.__name__} has no parameter {name!r} (config key {key!r}); its parameters: "
                            f"{', '.join(parameters)}")
        if spec.kind is None and name not in declared:
            raise TypeError(f"{cls.__name__} declares no kind for its argument {name!r} (config key {key!r}); give "
                            f"it in {cls.__name__}.arguments")
        if spec.kind is not None and spec.why_kind is None:
            raise TypeError(f"{cls.__name__}: config key {key!r} states a kind; the class declares it (a kind that "
                            f"differs on purpose needs why_kind)")
        if spec.kind is None:
            spec = replace(spec, kind=from_data(declared[name]))
        if spec.why_default is None and spec.default is not REQUIRED:
            raise TypeError(f"{cls.__name__}: config key {key!r} states a default; the class's signature gives it "
                            f"(a default that differs on purpose needs why_default)")
        if spec.why_default is None:
            default = parameters[name].default
            spec = replace(spec, default=REQUIRED if default is inspect.Parameter.empty else _plain(default))
        resolved[key] = spec
    return resolved


def class_rules(cls, renames: dict, skip: int, check_fn=None):
    """The section rule of ``cls``'s component: the class's own rules (``cls.arguments.rules``) on the checked
    section with the class's defaults for what it leaves out, each refusal reported at the config key it names;
    then ``check_fn``, the config's own rule, if any."""
    rules = declared_arguments(cls).rules
    if not rules and check_fn is None:
        return None
    defaults = {name: p.default for name, p in list(inspect.signature(cls).parameters.items())[skip:]
                if p.default is not inspect.Parameter.empty}
    keys = {name: key for key, name in renames.items()}

    def check(section, path, ck):
        args = {**defaults, **{renames.get(k, k): tuple(v) if isinstance(v, list) else v for k, v in section.items()}}
        for rule in rules:
            try:
                rule(args)
            except ArgumentError as err:
                value = {"value": _plain(err.value)} if err.value is not ArgumentError.NO_VALUE else {}
                ck.fail(path + (keys.get(err.argument, err.argument),), err.message, allowed=err.allowed, **value)
        if check_fn is not None:
            check_fn(section, path, ck)
    return check


def component(cls, doc: str | None, fields: dict, *, skip: int = 0, config_only: tuple = (),
              renames: dict | None = None, check_fn=None, spec_type=Component, declared: Arguments | None = None,
              **facts) -> Component:
    """A ``spec_type`` section for ``cls``; ``doc`` defaults to the first paragraph of the class's docstring."""
    doc = doc if doc is not None else inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
    resolved = signature_fields(cls, fields, skip=skip, config_only=config_only, renames=renames, declared=declared)
    rules = class_rules(cls, dict(renames or {}), skip, check_fn)
    return spec_type(resolved, doc, rules, cls, tuple(config_only), dict(renames or {}), **facts)
