"""Checks of task keys for ``__init__``: a wrong value is a ValueError naming the task, the key and what it takes
(the config's schema refuses the same values with the file and line)."""
from __future__ import annotations


def is_int(value, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def require(ok: bool, task: str, key: str, value, allowed: str) -> None:
    """A task key's check: a ValueError naming the task, the key and what it takes."""
    if not ok:
        raise ValueError(f"{task} task: {key} must be {allowed}, got {value!r}")
