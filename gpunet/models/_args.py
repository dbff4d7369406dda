"""Checks of architecture arguments and inputs: a ValueError naming the architecture, the argument (or input) and
what is allowed."""
from __future__ import annotations

import numbers

from ..kinds import ArgumentError


def positive_int(arch: str, name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{arch}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def one_of(arch: str, name: str, value, allowed):
    if value not in allowed:
        raise ValueError(f"{arch}: {name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def input_size_in(sizes: tuple, why: str):
    """The rule that ``input_size`` is one of ``sizes`` (``why``: what fixes them)."""
    def rule(args):
        if args["input_size"] not in sizes:
            allowed = ", ".join(map(str, sizes))
            raise ArgumentError("input_size", f"must be one of {allowed} ({why})", args["input_size"], allowed)
    return rule


def check_input(where: str, x, channels: int, size: int) -> None:
    """A fixed-size network's input must be (N, channels, size, size)."""
    if x.ndim != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise ValueError(f"{where}: expects inputs of shape (N, {channels}, {size}, {size}), got {tuple(x.shape)}; "
                         f"build it with in_channels and input_size of your data")
