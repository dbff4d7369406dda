"""Devices: parsing of device strings such as "cpu", "cuda:1", "auto" and "cuda-emu"."""
from __future__ import annotations

from dataclasses import dataclass

KINDS = ("cpu", "cuda", "cuda-emu")


class DeviceError(RuntimeError):
    """A device was asked for that is malformed or not available here."""


@dataclass(frozen=True)
class Device:
    """Where arrays live: ``Device("cpu")``, ``Device("cuda", 0)`` or ``Device("cuda-emu")``."""

    kind: str
    index: int = 0

    def __str__(self) -> str:
        return "cpu" if self.kind == "cpu" else f"{self.kind}:{self.index}"

    def __repr__(self) -> str:
        return f"device('{self}')"


def parse_device(spec) -> Device:
    """Turn ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"cuda-emu"`` or a Device into a Device ("auto" is resolved elsewhere)."""
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise DeviceError(f"device must be a string such as 'cpu' or 'cuda:0', got {spec!r}")
    text = spec.strip().lower()
    kind, _, index = text.partition(":")
    if kind not in KINDS or (kind == "cpu" and index not in ("", "0")):
        raise DeviceError(f"unknown device {spec!r}: use 'cpu', 'cuda', 'cuda:N', 'cuda-emu' or 'auto'")
    if index and not index.isdigit():
        raise DeviceError(f"bad device index in {spec!r}: the part after ':' must be a number, as in 'cuda:1'")
    return Device(kind, int(index or 0))
