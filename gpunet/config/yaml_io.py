"""Safe YAML reading that remembers the line of every key, and writing that reads back to the same values."""
from __future__ import annotations

import re
from pathlib import Path as FilePath
from typing import Any

import yaml

from ..kinds import Problem
from .errors import ConfigError

# YAML 1.1 (PyYAML's default) reads 1e-3 as a string; YAML 1.2 and every user read it as a number.
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
MAX_VALUES = 100_000
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class MarkedLoader(yaml.SafeLoader):
    """A ``yaml.SafeLoader`` that records, for each key path, the 1-based line where it is written."""

    def read(self, source: str) -> tuple[Any, dict]:
        """The document's plain data and ``{path: line}``; raises ConfigError on anything unsafe or malformed."""
        node = self.get_single_node()
        if node is None:
            return None, {}
        lines: dict = {(): node.start_mark.line + 1}
        problems: list[Problem] = []
        self._values_left = MAX_VALUES
        self._walk(node, (), lines, problems, source)
        if problems:
            raise ConfigError(problems)
        return self.construct_document(node), lines

    def _walk(self, node, path, lines, problems, source) -> None:
        self._values_left -= 1
        if self._values_left < 0:  # aliases can make a small file stand for an exponentially large tree
            raise ConfigError.at(source, node.start_mark.line + 1, path, f"the config holds more than {MAX_VALUES} "
                                 "values (counting each use of a YAML alias); write it out plainly")
        if node.tag not in self.yaml_constructors:
            problems.append(Problem(
                source, node.start_mark.line + 1, path,
                f"YAML tag {node.tag!r} is not allowed: configs are read with a safe loader that builds only "
                "mappings, lists, strings, numbers, booleans and null"))
            return
        if isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                lines[path + (index,)] = item.start_mark.line + 1
                self._walk(item, path + (index,), lines, problems, source)
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                child = path + (key,)
                if child in lines:
                    problems.append(Problem(
                        source, key_node.start_mark.line + 1, child,
                        f"duplicate key (first written on line {lines[child]}); write each key once"))
                lines[child] = key_node.start_mark.line + 1
                self._walk(value_node, child, lines, problems, source)


class PlainDumper(yaml.SafeDumper):
    """A ``yaml.SafeDumper`` that quotes strings MarkedLoader would read as numbers, such as ``'1e-3'``."""


for _cls in (MarkedLoader, PlainDumper):
    _cls.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


# What YAML may hold (PyYAML's Reader.NON_PRINTABLE): tab, newlines and printable text; no other control characters.
_NOT_YAML = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
_CONTROL_NAMES = {0: "NUL", 0x1B: "ESC", 0x7F: "DEL"}


def check_characters(text: str, source: str | None, lines: bool = True) -> None:
    """Refuse control characters (a NUL, an escape sequence pasted from a terminal), naming the character and its
    line and column (``lines``), or its position in a one-line ``text`` such as an override."""
    found = _NOT_YAML.search(text)
    if found:
        char, start = found.group(), found.start()
        line = text.count("\n", 0, start) + 1
        column = start - (text.rfind("\n", 0, start) + 1) + 1
        name = _CONTROL_NAMES.get(ord(char), "control character")
        raise ConfigError.at(source, line if lines else None, (),
                             f"{'column' if lines else 'character'} {column} is the {name} {char!r} (U+{ord(char):04X}), "
                             "which a config may not hold; delete it (configs are plain text)")


def parse_yaml(text: str, source: str | None) -> tuple[Any, dict]:
    """Parse YAML text safely; returns ``(data, {path: line})``. Syntax errors become ConfigError naming the line."""
    check_characters(text, source)
    loader = MarkedLoader(text)
    try:
        return loader.read(source)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        detail = " ".join(p for p in (err.context, err.problem) if p)
        raise ConfigError.at(source, mark.line + 1 if mark else None, (), f"invalid YAML: {detail}") from None
    except yaml.YAMLError as err:
        raise ConfigError.at(source, None, (), f"invalid YAML: {err}") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | FilePath) -> tuple[Any, dict]:
    """Read a YAML file safely; a missing or unreadable file is a ConfigError naming it."""
    source = str(path)
    file = FilePath(path)
    if not file.exists():
        raise ConfigError.at(source, None, (), "config file not found; check the path")
    if not file.is_file():
        raise ConfigError.at(source, None, (), "config path is not a file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError.at(source, None, (), f"cannot read the config file: {err}") from None
    return parse_yaml(text, source)


def dump_yaml(data: Any) -> str:
    """YAML text for plain data, keys in their given order, that ``parse_yaml`` reads back to equal data."""
    return yaml.dump(data, Dumper=PlainDumper, sort_keys=False, default_flow_style=False, allow_unicode=True)

