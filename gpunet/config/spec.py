"""The config's own part of the schema language: sections of keys (each a kind, a description and a default) and
tagged sections. The kinds of values are ``gpunet.kinds``, shared with the classes."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

from ..kinds import INVALID, Checker, Choice, Kind, Path, did_you_mean

REQUIRED = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()


@dataclass(frozen=True)
class Field:
    """A key of a Section: its kind, a one-line description and a default (REQUIRED if it has none).

    In a component's section (``gpunet.config.components``) the kind and the default come from the class (its
    ``arguments`` and its signature), so the entry gives only ``doc``; a key whose default differs on purpose gives
    it with ``why_default``, one whose kind differs on purpose (a YAML value the run resolves itself, or fewer
    values than the class takes) gives it with ``why_kind``: the reasons are shown in the docs."""

    kind: Kind | None = None
    doc: str = ""
    default: Any = REQUIRED
    why_default: str | None = None
    why_kind: str | None = None

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class Section(Kind):
    """A mapping with known keys. Unknown keys, missing required keys and bad values are all reported."""

    fields: dict
    doc: str = ""
    check_fn: Callable | None = field(default=None, compare=False)  # (resolved, path, ck) -> None, cross-key rules

    def describe(self) -> str:
        return "a mapping with keys " + ", ".join(self.fields) if self.fields else "an empty mapping"

    def check(self, value, path, ck):
        if value is None and not any(f.required for f in self.fields.values()):
            value = {}
        if not isinstance(value, dict):
            return ck.fail(path, "wrong type", value=value, allowed=self.describe())
        return self.check_keys(value, path, ck, skip=())

    def check_each(self, value: dict, path: Path, ck: Checker, skip: tuple = ()) -> tuple[dict, bool]:
        """Check every key of ``value`` but ``skip``; returns (resolved values, INVALID where bad; all keys fine)."""
        resolved, ok, guessed = {}, True, set()
        for key in value:
            if key in skip or key in self.fields:
                continue
            allowed = [k for k in self.fields if k not in skip] or ["no other keys"]
            hint = did_you_mean(key, self.fields)
            ck.fail(path + (key,), "unknown key", allowed=", ".join(allowed), hint=hint)
            guessed.add(hint)
            ok = False
        for key, spec in self.fields.items():
            if key in value:
                resolved[key] = spec.kind.check(value[key], path + (key,), ck)
            elif spec.required and key in guessed:  # "out_feature: ... did you mean 'out_features'?" says it all
                resolved[key] = INVALID
            elif spec.required:
                resolved[key] = ck.fail(path + (key,), "missing required key", allowed=spec.kind.describe())
            else:  # defaults go through the kind too, so an omitted section gets its own defaults
                resolved[key] = spec.kind.check(copy.deepcopy(spec.default), path + (key,), ck)
        return resolved, ok and all(v is not INVALID for v in resolved.values())

    def check_keys(self, value: dict, path: Path, ck: Checker, skip: tuple) -> Any:
        """Check the keys of ``value`` other than ``skip`` (already checked by the caller), then the cross-key rules."""
        resolved, ok = self.check_each(value, path, ck, skip)
        if not ok:
            return INVALID
        if self.check_fn is not None:
            before = len(ck.problems)
            self.check_fn(resolved, path, ck)
            if len(ck.problems) > before:
                return INVALID
        return resolved


@dataclass(frozen=True)
class Tagged(Kind):
    """A mapping whose ``key`` (e.g. ``name`` or ``type``) picks one of ``variants`` (a live registry of Sections)."""

    key: str
    variants: dict
    what: str

    def describe(self) -> str:
        return f"a mapping with '{self.key}' (one of {', '.join(self.variants)}) and that {self.what}'s settings"

    def check(self, value, path, ck):
        if not isinstance(value, dict):
            return ck.fail(path, "wrong type", value=value, allowed=self.describe())
        if self.key not in value:
            misspelt = [k for k in value if did_you_mean(k, [self.key])]
            if misspelt:
                return ck.fail(path + (misspelt[0],), f"unknown key; the {self.what} is chosen by '{self.key}'",
                               allowed=self.key, hint=self.key)
            return ck.fail(path + (self.key,), "missing required key", allowed=", ".join(self.variants))
        tag = Choice(self.variants, self.what).check(value[self.key], path + (self.key,), ck)
        if tag is INVALID:
            return INVALID
        resolved = self.variants[tag].check_keys(value, path, ck, skip=(self.key,))
        return INVALID if resolved is INVALID else {self.key: tag, **resolved}
