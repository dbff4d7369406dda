"""The kernel profiler's case table: one module per kernel family (``<family>.py``) holding ``CASES``.

A family adds its cases in its own module, nothing else to edit::

    # scripts/kernel_cases/mykernels.py
    from . import Case, normal

    CASES = [Case("mykernels", "my_kernel",                     # family, fused kernel name on the backend
                  args=lambda b, rng, n: (normal(b, rng, (n,)),),  # the call's arguments, built on backend b
                  bytes=lambda n: 8 * n, flops=lambda n: n,       # per call: minimum HBM traffic, FLOPs
                  sizes=({"n": 1 << 24},), emulate={"n": 1000})]  # GPU rows; reduced size for --emulate

``bytes`` is the traffic of an ideal kernel (each input read once, each output written once), so achieved
bandwidth against the device's peak says how close the kernel comes to the memory-bound floor
(docs/kernels.md). ``outputs(result, args)`` picks the arrays to compare under ``--emulate`` (default: the
result; in-place kernels return the arguments they update).
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

import numpy


@dataclass(frozen=True)
class Case:
    family: str
    kernel: str
    args: Callable
    bytes: Callable
    flops: Callable
    sizes: tuple
    emulate: dict
    outputs: Callable | None = None
    label: str = ""
    tolerance: dict = field(default_factory=lambda: {"rtol": 1e-5, "atol": 1e-5})

    @property
    def name(self) -> str:
        return f"{self.kernel}[{self.label}]" if self.label else self.kernel


def normal(backend, rng, shape, scale=1.0, dtype=numpy.float32):
    """A backend array of N(0, scale^2) values (drawn on the host, so every backend gets the same numbers)."""
    return backend.asarray((rng.standard_normal(shape) * scale).astype(dtype))


def all_cases() -> list:
    """Every family module's CASES, families in alphabetical order."""
    cases = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        cases += importlib.import_module(f"{__name__}.{info.name}").CASES
    return cases
