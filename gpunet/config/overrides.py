"""Command-line overrides ``dotted.key=value`` (``optimizer.lr=0.05``, ``model.layers[1].p=0.3``) on raw config data."""
from __future__ import annotations

import re

from ..kinds import Path, Problem, format_path
from .errors import ConfigError
from .yaml_io import check_characters, parse_yaml

_KEY_PART = re.compile(r"([A-Za-z_][\w-]*)((?:\[-?\d+\])*)")
_INDEX = re.compile(r"\[(-?\d+)\]")
_SYNTAX = "key.path=value, e.g. optimizer.lr=0.05 or model.layers[1].p=0.3"


def parse_key(text: str, source: str) -> Path:
    """``"model.layers[1].p"`` -> ``("model", "layers", 1, "p")``."""
    path: list = []
    for part in text.split("."):
        match = _KEY_PART.fullmatch(part)
        if not match:
            raise ConfigError.at(source, None, tuple(path), f"malformed key {text!r} in override", allowed=_SYNTAX)
        path.append(match.group(1))
        path += [int(i) for i in _INDEX.findall(match.group(2))]
    return tuple(path)


def apply_override(data: dict, origins: dict, text: str) -> None:
    """Set one ``key=value`` in ``data`` (creating missing mappings) and record the override as the value's origin."""
    source = f"override {text!r}"
    check_characters(text, source, lines=False)
    key, sep, value_text = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError.at(source, None, (), "an override needs the form key=value", allowed=_SYNTAX)
    path = parse_key(key.strip(), source)
    try:
        value, _ = parse_yaml(value_text, source)
    except ConfigError as err:  # a one-line value: the key path says more than a line number
        raise ConfigError([Problem(source, None, path, p.message) for p in err.problems]) from None
    set_value(data, origins, path, value, source)


def set_value(data: dict, origins: dict, path: Path, value, source: str) -> None:
    """Put ``value`` at ``path`` in ``data`` (creating missing mappings); ``source`` becomes its origin."""
    node = data
    for depth, part in enumerate(path[:-1]):
        node = _child(node, part, path[:depth], path[depth + 1], source, origins)
    last = path[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or not -len(node) <= last < len(node):
            raise _bad_step(node, last, path[:-1], source)
        last %= len(node)
        path = path[:-1] + (last,)
    elif not isinstance(node, dict):
        raise _bad_step(node, last, path[:-1], source)
    node[last] = value
    for known in [p for p in origins if p[:len(path)] == path]:
        del origins[known]
    origins[path] = (source, None)


def _child(node, part, path: Path, next_part, source: str, origins: dict):
    """The child ``part`` of ``node``, a new empty mapping/list in its place if it is missing or null."""
    if isinstance(part, int):
        if not isinstance(node, list) or not -len(node) <= part < len(node):
            raise _bad_step(node, part, path, source)
        return node[part]
    if not isinstance(node, dict):
        raise _bad_step(node, part, path, source)
    if node.get(part) is None:
        if isinstance(next_part, int):
            raise ConfigError.at(source, None, path + (part,), "no list here to index", value=None)
        node[part] = {}
        origins[path + (part,)] = (source, None)
    return node[part]


def _bad_step(node, part, path: Path, source: str) -> ConfigError:
    if isinstance(part, int) and isinstance(node, list):
        return ConfigError.at(source, None, path + (part,), f"index out of range: {format_path(path)} has "
                              f"{len(node)} item(s)", allowed=f"an index from 0 to {len(node) - 1}")
    kind = "a list" if isinstance(part, int) else "a mapping"
    return ConfigError.at(source, None, path, f"is not {kind}, so {format_path(path + (part,))} cannot be set",
                          value=node)


def apply_overrides(data: dict, origins: dict, overrides) -> dict:
    """Apply every override in order; errors from all of them are reported together."""
    problems = []
    for text in overrides:
        try:
            apply_override(data, origins, text)
        except ConfigError as err:
            problems += err.problems
    if problems:
        raise ConfigError(problems)
    return data
