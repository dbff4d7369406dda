"""Turning a YAML file (plus overrides) or a dict into a checked, fully resolved config, and writing it back."""
from __future__ import annotations

import copy
from pathlib import Path as FilePath

from ..kinds import INVALID, Checker
from .errors import ConfigError
from .overrides import apply_overrides
from .schema import check_config
from .yaml_io import dump_yaml, parse_yaml, read_yaml_file


class ResolvedConfig(dict):
    """A resolved config: a plain dict of plain values that also remembers where each key was written, so that
    problems found later (building the model, its dry run) can name the file and line or the override."""

    def __init__(self, data: dict, origins: dict | None = None, source: str | None = None):
        super().__init__(data)
        self.origins = dict(origins or {})
        self.source = source

    def where(self, path) -> tuple[str | None, int | None]:
        """(source, line) of the nearest key at or above ``path`` whose place is known."""
        return Checker(self.origins, self.source).where(tuple(path))


def where(config: dict, path) -> tuple[str | None, int | None]:
    """Where ``path`` of ``config`` was written: (file or override, line), or (None, None) for a plain dict."""
    return config.where(path) if isinstance(config, ResolvedConfig) else (None, None)


def validate_config(data, origins: dict | None = None, source: str | None = None) -> dict:
    """Check ``data`` against the schema and fill in every default; raises ConfigError listing all problems."""
    ck = Checker(origins, source)
    resolved = check_config(copy.deepcopy(data), ck)
    if resolved is INVALID:
        raise ConfigError(ck.problems)
    return ResolvedConfig(resolved, origins, source)


def _resolve_read(data, lines: dict, source: str, overrides) -> dict:
    origins = {path: (source, line) for path, line in lines.items()}
    if isinstance(data, dict):
        apply_overrides(data, origins, overrides)
    return validate_config(data, origins, source)


def load_config(path: str | FilePath, overrides=()) -> dict:
    """Read a config file safely, apply ``key=value`` overrides, check everything, and return the resolved dict."""
    return _resolve_read(*read_yaml_file(path), str(path), overrides)


def loads_config(text: str, overrides=(), source: str = "<string>") -> dict:
    """Like ``load_config`` for YAML text."""
    return _resolve_read(*parse_yaml(text, source), source, overrides)


def dump_config(config: dict, path: str | FilePath | None = None) -> str:
    """The resolved config as YAML text (written to ``path`` if given); loading it gives back an equal config."""
    text = "# gpunet config, resolved: every default filled in\n" + dump_yaml(dict(config))
    if path is not None:
        FilePath(path).write_text(text, encoding="utf-8")
    return text
