"""Whether operations record the graph that backward needs: ``no_grad``, ``enable_grad``, ``set_grad_enabled``."""
from __future__ import annotations

import contextlib


class _State:
    enabled = True


state = _State()


def is_grad_enabled() -> bool:
    return state.enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Within the block (or the decorated function), record the graph only when ``mode`` is true.

    A class rather than a generator-based context: every backward and every optimizer step enters one, and the
    generator machinery costs several times as much."""

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._previous = []  # a stack: one object may be entered again inside itself (a recursive decorated function)

    def __enter__(self):
        self._previous.append(state.enabled)
        state.enabled = self.mode

    def __exit__(self, *exc):
        state.enabled = self._previous.pop()
        return False


def no_grad():
    """Within the block, operations record no graph (evaluation, weight updates)."""
    return set_grad_enabled(False)


def enable_grad():
    """Within the block, operations record the graph again (for example inside ``no_grad``)."""
    return set_grad_enabled(True)
