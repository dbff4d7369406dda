"""The small language the config schema is written in: kinds of values that check, fill in and describe themselves."""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from .errors import Path, Problem, did_you_mean

REQUIRED = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()
INVALID = type("Invalid", (), {"__repr__": lambda self: "INVALID"})()


class Checker:
    """Collects problems while a config is checked; knows where each key path came from."""

    def __init__(self, origins: Mapping[Path, tuple[str | None, int | None]] | None = None, source: str | None = None):
        self.origins = dict(origins or {})
        self.source = source
        self.problems: list[Problem] = []

    def where(self, path: Path) -> tuple[str | None, int | None]:
        """(source, line) of the nearest key at or above ``path`` whose place is known."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.origins:
                return self.origins[path[:end]]
        return self.source, None

    def fail(self, path: Path, message: str, **details) -> Any:
        source, line = self.where(path)
        self.problems.append(Problem(source, line, tuple(path), message, **details))
        return INVALID


class Kind:
    """A kind of value: ``check`` returns the resolved value (or INVALID, after reporting it); ``describe`` says
    what is allowed."""

    def check(self, value: Any, path: Path, ck: Checker) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


def _bound_text(lo, lo_open, hi, hi_open) -> str:
    if lo is not None and hi is not None:
        return f" in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if lo is not None:
        return f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        return f" {'<' if hi_open else '<='} {hi:g}"
    return ""


@dataclass(frozen=True)
class Number(Kind):
    """An int (``integer=True``) or a float, optionally bounded; ``gt``/``lt`` are strict bounds, ``ge``/``le`` not."""

    integer: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def describe(self) -> str:
        lo, lo_open = (self.gt, True) if self.gt is not None else (self.ge, False)
        hi, hi_open = (self.lt, True) if self.lt is not None else (self.le, False)
        return ("an integer" if self.integer else "a number") + _bound_text(lo, lo_open, hi, hi_open)

    def check(self, value, path, ck):
        wanted = int if self.integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            return ck.fail(path, "wrong type", value=value, allowed=self.describe())
        if not self.integer and not math.isfinite(value):
            return ck.fail(path, "must be finite", value=value, allowed=self.describe())
        out_of_range = (
            (self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt))
        if out_of_range:
            return ck.fail(path, "out of range", value=value, allowed=self.describe())
        return value if self.integer else float(value)


def Int(**bounds) -> Number:
    return Number(integer=True, **bounds)


def Float(**bounds) -> Number:
    return Number(integer=False, **bounds)


@dataclass(frozen=True)
class Bool(Kind):
    def describe(self) -> str:
        return "true or false"

    def check(self, value, path, ck):
        return value if isinstance(value, bool) else ck.fail(path, "wrong type", value=value, allowed=self.describe())


@dataclass(frozen=True)
class Str(Kind):
    """Any non-empty string, or one matching ``pattern`` (described by ``text``)."""

    pattern: str | None = None
    text: str = "a string"

    def describe(self) -> str:
        return self.text

    def check(self, value, path, ck):
        if not isinstance(value, str) or not value or (self.pattern and not re.fullmatch(self.pattern, value)):
            return ck.fail(path, "wrong type" if not isinstance(value, str) else "invalid value",
                           value=value, allowed=self.describe())
        return value


@dataclass(frozen=True)
class Choice(Kind):
    """One of a fixed set of strings; ``choices`` may be a live registry (a dict) that grows after import."""

    choices: Any
    what: str = "value"

    def names(self) -> list[str]:
        return list(self.choices)

    def describe(self) -> str:
        return ", ".join(self.names())

    def check(self, value, path, ck):
        names = self.names()
        if isinstance(value, str) and value in names:
            return value
        message = f"unknown {self.what}" if isinstance(value, str) else "wrong type"
        return ck.fail(path, message, value=value, allowed=self.describe(), hint=did_you_mean(value, names))


@dataclass(frozen=True)
class Optional(Kind):
    """``null`` or a value of ``kind``."""

    kind: Kind

    def describe(self) -> str:
        return f"null or {self.kind.describe()}"

    def check(self, value, path, ck):
        if value is None:
            return None
        trial = Checker(ck.origins, ck.source)
        result = self.kind.check(value, path, trial)
        ck.problems += [replace(p, allowed=self.describe()) if p.allowed == self.kind.describe() else p
                        for p in trial.problems]  # say that null is allowed too
        return result


@dataclass(frozen=True)
class AnyOf(Kind):
    """The first of ``kinds`` that accepts the value (e.g. an integer or a column name)."""

    kinds: tuple

    def describe(self) -> str:
        return " or ".join(k.describe() for k in self.kinds)

    def check(self, value, path, ck):
        for kind in self.kinds:
            trial = Checker()
            result = kind.check(value, path, trial)
            if not trial.problems:
                return result
        return ck.fail(path, "wrong type", value=value, allowed=self.describe())


@dataclass(frozen=True)
class ListOf(Kind):
    """A list of ``item`` values, with at least ``min_len`` (and exactly ``length`` if given) items."""

    item: Kind
    min_len: int = 0
    length: int | None = None

    def describe(self) -> str:
        if self.length is not None:
            return f"a list of {self.length} ({self.item.describe()})"
        minimum = f" with at least {self.min_len} item(s)" if self.min_len else ""
        return f"a list of ({self.item.describe()}){minimum}"

    def check(self, value, path, ck):
        if not isinstance(value, list):
            return ck.fail(path, "wrong type", value=value, allowed=self.describe())
        if (self.length is not None and len(value) != self.length) or len(value) < self.min_len:
            return ck.fail(path, f"wrong number of items ({len(value)})", value=value, allowed=self.describe())
        items = [self.item.check(v, path + (i,), ck) for i, v in enumerate(value)]
        return INVALID if any(v is INVALID for v in items) else items


@dataclass(frozen=True)
class AnyMapping(Kind):
    """A mapping with string keys and any plain values (arguments for user code, checked by that code)."""

    def describe(self) -> str:
        return "a mapping of argument names to values"

    def check(self, value, path, ck):
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            return ck.fail(path, "wrong type", value=value, allowed=self.describe())
        return copy.deepcopy(value)


@dataclass(frozen=True)
class Field:
    """A key of a Section: its kind, a one-line description and a default (REQUIRED if it has none).

    In a component's section (``gpunet.config.components``) the default comes from the class's signature; a key
    whose default differs on purpose gives it with ``why_default``, the reason shown in the docs."""

    kind: Kind
    doc: str
    default: Any = REQUIRED
    why_default: str | None = None

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
