"""Turning a YAML file (plus overrides) or a dict into a checked, fully resolved config, and writing it back."""
from __future__ import annotations

import copy
from pathlib import Path as FilePath

from .errors import ConfigError
from .overrides import apply_overrides
from .schema import check_config
from .spec import INVALID, Checker
from .yaml_io import dump_yaml, parse_yaml, read_yaml_file


def validate_config(data, origins: dict | None = None, source: str | None = None) -> dict:
    """Check ``data`` against the schema and fill in every default; raises ConfigError listing all problems."""
    ck = Checker(origins, source)
    resolved = check_config(copy.deepcopy(data), ck)
    if resolved is INVALID:
        raise ConfigError(ck.problems)
    return resolved


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
    text = "# gpunet config, resolved: every default filled in\n" + dump_yaml(config)
    if path is not None:
        FilePath(path).write_text(text, encoding="utf-8")
    return text
