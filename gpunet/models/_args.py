"""Checks of architecture arguments: a ValueError naming the architecture, the argument and the allowed range."""
from __future__ import annotations

import numbers


def positive_int(arch: str, name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{arch}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def one_of(arch: str, name: str, value, allowed):
    if value not in allowed:
        raise ValueError(f"{arch}: {name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def check_input(where: str, x, channels: int, size: int) -> None:
    """A fixed-size network's input must be (N, channels, size, size)."""
    if x.ndim != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise ValueError(f"{where}: expects inputs of shape (N, {channels}, {size}, {size}), got {tuple(x.shape)}; "
                         f"build it with in_channels and input_size of your data")
