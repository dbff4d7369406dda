"""Helpers of the config tests: a small valid config, writing it, and collecting the problems it raises."""
from __future__ import annotations

from pathlib import Path

import pytest

from gpunet.config import ConfigError, load_config

BASE = (Path(__file__).resolve().parents[1] / "fixtures" / "digits_base.yaml").read_text(encoding="utf-8")


def edited(old: str, new: str, text: str = BASE) -> str:
    """``text`` with the single occurrence of ``old`` replaced by ``new``."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def line_of(text: str, fragment: str) -> int:
    """1-based number of the only line of ``text`` containing ``fragment``."""
    lines = [i + 1 for i, line in enumerate(text.splitlines()) if fragment in line]
    assert len(lines) == 1, f"{fragment!r} is on lines {lines}"
    return lines[0]


def write(tmp_path, text: str, name: str = "run.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path, text: str, overrides=()) -> tuple[str, list[str]]:
    """(file name, the str() of every problem) of a config that must fail."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    return str(path), [str(p) for p in info.value.problems]


def only_problem(tmp_path, text: str, overrides=()) -> tuple[str, str]:
    """(file name, the str() of the one problem) of a config that must fail with exactly one problem."""
    path, found = problems(tmp_path, text, overrides)
    assert len(found) == 1, found
    return path, found[0]
