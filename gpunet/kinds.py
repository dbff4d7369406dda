"""Kinds of argument values: what a class (or a config key) accepts, checked and described in one place.

A class states its arguments' kinds once, as PyTorch-like classes do with their own checks, and its constructor
checks through them; the YAML config (``gpunet.config``) reads the same kinds from the class::

    class Dropout(Module):
        arguments = Arguments(p=Float(ge=0, lt=1), inplace=Bool())

        @checked
        def __init__(self, p=0.5, inplace=False): ...

    Dropout(1.5)  # ValueError: Dropout: p must be a number in [0, 1), got 1.5

A rule between arguments (``min_val < max_val``) is a function of the bound arguments that raises ``ArgumentError``
naming the argument at fault; the class and the config both run it. A kind's ``check(value, path, ck)`` returns the
resolved value or reports a ``Problem`` to ``ck`` (a ``Checker``) and returns INVALID.
"""
from __future__ import annotations

import copy
import difflib
import functools
import inspect
import math
import numbers
import os
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping

Path = tuple  # of str (mapping keys) and int (list indices)

_NO_VALUE = object()
INVALID = type("Invalid", (), {"__repr__": lambda self: "INVALID"})()


# ----------------------------------------------------------------------------------------------- problems
def format_path(path: Path) -> str:
    """``("model", "layers", 2, "p")`` -> ``"model.layers[2].p"``; the empty path is ``"<config>"``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<config>"


def show(value: Any) -> str:
    """A value as the user wrote it in YAML: strings quoted, ``null``/``true``/``false``, long values cut."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def did_you_mean(word: Any, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word`` (ignoring case), or None if nothing is close."""
    if not isinstance(word, str):
        return None
    by_lower = {c.lower(): c for c in choices}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a value: where it is (file, line, key path), what was found and what is allowed."""

    source: str | None  # a file name, or "override 'a.b=1'"
    line: int | None  # 1-based
    path: Path
    message: str
    value: Any = _NO_VALUE
    allowed: str | None = None
    hint: str | None = None
    label: str | None = None  # shown after the path, e.g. the layer type: "model.layers[4] (Linear): ..."

    def __str__(self) -> str:
        where = ""
        if self.source:
            where = f"{self.source}:{self.line}: " if self.line is not None else f"{self.source}: "
        label = f" ({self.label})" if self.label else ""
        text = f"{where}{format_path(self.path)}{label}: {self.message}"
        if self.value is not _NO_VALUE:
            text += f"; got {show(self.value)}"
        if self.allowed:
            text += f"; allowed: {self.allowed}"
        if self.hint:
            text += f"; did you mean {show(self.hint)}?"
        return text


class Checker:
    """Collects problems while values are checked; knows where each key path came from."""

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


# ----------------------------------------------------------------------------------------------- kinds
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


def integral(value) -> bool:
    """``value`` is an integer in ``numbers.Integral``'s sense (NumPy integers and bools too). Ops test their
    arguments on every call: the type test comes first, as the ABC's isinstance costs several times as much."""
    return type(value) is int or isinstance(value, numbers.Integral)


@dataclass(frozen=True)
class Number(Kind):
    """An int (``integer=True``) or a finite float, optionally bounded; ``gt``/``lt`` are strict bounds, ``ge``/``le``
    not. NumPy scalars count as the Python numbers they stand for; bools are not numbers."""

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
        wanted = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, wanted):
            return ck.fail(path, "wrong type", value=value, allowed=self.describe())
        if not self.integer and not math.isfinite(value):
            return ck.fail(path, "must be finite", value=value, allowed=self.describe())
        out_of_range = (
            (self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt))
        if out_of_range:
            return ck.fail(path, "out of range", value=value, allowed=self.describe())
        return int(value) if self.integer else float(value)


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
class FilePath(Kind):
    """A file or directory path: a non-empty string (or, from code, an ``os.PathLike``)."""

    text: str = "a file path"

    def describe(self) -> str:
        return self.text

    def check(self, value, path, ck):
        if isinstance(value, os.PathLike) or (isinstance(value, str) and value):
            return value
        return ck.fail(path, "wrong type" if not isinstance(value, str) else "invalid value", value=value,
                       allowed=self.describe())


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
    """``null`` (None) or a value of ``kind``."""

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
    """A list (or tuple) of ``item`` values, with at least ``min_len`` (and exactly ``length`` if given) items;
    resolved to a list."""

    item: Kind
    min_len: int = 0
    length: int | None = None

    def describe(self) -> str:
        if self.length is not None:
            return f"a list of {self.length} ({self.item.describe()})"
        minimum = f" with at least {self.min_len} item(s)" if self.min_len else ""
        return f"a list of ({self.item.describe()}){minimum}"

    def check(self, value, path, ck):
        if not isinstance(value, (list, tuple)):
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
class AnyCallable(Kind):
    """A callable (an activation function, ...): for code only, as no data value is one (the config leaves it out
    of the kinds it reads from a class)."""

    def describe(self) -> str:
        return "a callable"

    def check(self, value, path, ck):
        return value if callable(value) else ck.fail(path, "wrong type", value=value, allowed=self.describe())


def sizes(n: int, low: int) -> AnyOf:
    """An int >= low, or n of them (one per spatial dimension): a kernel size, stride, padding, ..."""
    return AnyOf((Int(ge=low), ListOf(Int(ge=low), length=n)))


# ----------------------------------------------------------------------------------------------- arguments
class ArgumentError(ValueError):
    """An argument refused: ``argument`` names it, ``message`` says the rule ("must be greater than min_val (0)"),
    ``allowed`` what would do; ``owner`` (the class or function) is filled in by whoever checked it."""

    NO_VALUE = _NO_VALUE

    def __init__(self, argument: str, message: str, value: Any = _NO_VALUE, allowed: str | None = None,
                 owner: str | None = None):
        self.argument, self.message, self.value, self.allowed, self.owner = argument, message, value, allowed, owner
        got = "" if value is _NO_VALUE else f", got {value!r}"
        super().__init__(f"{owner + ': ' if owner else ''}{argument} {message}{got}")


def _for_code(kind: Kind) -> str:
    """What ``kind`` allows, as a Python caller writes it (None, quoted strings)."""
    if isinstance(kind, Optional):
        return f"None or {_for_code(kind.kind)}"
    if isinstance(kind, AnyOf):
        return " or ".join(_for_code(k) for k in kind.kinds)
    if isinstance(kind, Choice):
        return "one of " + ", ".join(map(repr, kind.names()))
    return kind.describe()


class Arguments:
    """The kinds of a class's (or function's) arguments, by parameter name, and the rules between them: functions
    of the bound arguments (every parameter, defaults filled in) that raise ``ArgumentError``."""

    def __init__(self, *, rules: tuple = (), **kinds: Kind):
        self.kinds, self.rules = kinds, tuple(rules)

    def refusal(self, args: Mapping[str, Any]) -> ArgumentError | None:
        """What is wrong with ``args``: the first argument its kind refuses, else the first rule's refusal."""
        for name, kind in self.kinds.items():
            ck = Checker()
            if name in args and kind.check(args[name], (name,), ck) is INVALID:
                hint = ck.problems[0].hint
                return ArgumentError(name, f"must be {_for_code(kind)}" + (f" (did you mean {hint!r}?)"
                                                                            if hint else ""), args[name],
                                     kind.describe())
        for rule in self.rules:
            try:
                rule(args)
            except ArgumentError as err:
                return err
        return None

    def check(self, owner: str, args: Mapping[str, Any]) -> None:
        """Raise the refusal of ``args`` (a ValueError) naming ``owner``, if there is one."""
        err = self.refusal(args)
        if err is not None:
            raise ArgumentError(err.argument, err.message, err.value, err.allowed, owner)


def _bound(function, args, kwargs) -> dict:
    bound = inspect.signature(function).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def checked(init: Callable) -> Callable:
    """Decorates a class's ``__init__``: the call's arguments are checked against the class's ``arguments``
    first; a refused one raises ValueError "<Class>: <argument> must be ..., got <value>"."""
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        type(self).arguments.check(type(self).__name__, _bound(init, (self,) + args, kwargs))
        init(self, *args, **kwargs)
    return wrapper


def takes(*, rules: tuple = (), **kinds: Kind) -> Callable:
    """Decorates a function (a model builder): its arguments' kinds, checked at each call like ``checked`` does,
    and kept as the function's ``arguments``."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            wrapper.arguments.check(function.__name__, _bound(function, args, kwargs))
            return function(*args, **kwargs)
        wrapper.arguments = Arguments(rules=rules, **kinds)
        return wrapper
    return decorate
