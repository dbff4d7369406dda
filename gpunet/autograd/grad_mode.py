"""Whether operations record the graph that backward needs: ``no_grad``, ``enable_grad``, ``set_grad_enabled``."""
from __future__ import annotations

import contextlib


class _State:
    enabled = True


state = _State()


def is_grad_enabled() -> bool:
    return state.enabled


@contextlib.contextmanager
def set_grad_enabled(mode: bool):
    """Within the block, record the graph only when ``mode`` is true."""
    previous, state.enabled = state.enabled, bool(mode)
    try:
        yield
    finally:
        state.enabled = previous


def no_grad():
    """Within the block, operations record no graph (evaluation, weight updates)."""
    return set_grad_enabled(False)


def enable_grad():
    """Within the block, operations record the graph again (for example inside ``no_grad``)."""
    return set_grad_enabled(True)
