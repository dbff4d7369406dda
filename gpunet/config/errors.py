"""Config problems: where each one is (file, line, dotted key path), what was found and what is allowed."""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable

Path = tuple  # of str (mapping keys) and int (list indices)

_NO_VALUE = object()


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
    """One thing wrong with a config."""

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


class ConfigError(ValueError):
    """A config cannot be used. ``problems`` lists every problem found; ``str()`` shows them all."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            text = str(self.problems[0])
        else:
            text = f"{len(self.problems)} problems in the config:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(text)

    @classmethod
    def at(cls, source: str | None, line: int | None, path: Path, message: str, **details) -> "ConfigError":
        """An error for a single problem."""
        return cls([Problem(source, line, tuple(path), message, **details)])
