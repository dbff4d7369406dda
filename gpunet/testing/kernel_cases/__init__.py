"""The one table of kernel cases: the parity tests (``tests/kernels/test_kernel_cases.py``: every case on the
emulated device against the CPU) and the profiler (``scripts/profile_kernels.py``: GPU timings, or ``--emulate``)
both read it. One module per kernel family (``<family>.py``) holds ``CASES``; a family adds its cases in its own
module, nothing else to edit::

    # gpunet/testing/kernel_cases/mykernels.py
    from . import Case, normal

    CASES = [Case("my_kernel",                                     # a fused kernel of gpunet.backend.registry
                  args=lambda b, rng, n: (normal(b, rng, (n,)),),  # the call's arguments, built on backend b
                  bytes=lambda n: 8 * n, flops=lambda n: n,       # per call: minimum HBM traffic, FLOPs
                  sizes=({"n": 1 << 24},),                        # GPU profiling rows
                  checks=({"n": 1000}, {"n": 1}))]                # emulator parity sizes (profiler --emulate: first)

``bytes`` is the traffic of an ideal kernel (each input read once, each output written once), so achieved
bandwidth against the device's peak says how close the kernel comes to the memory-bound floor
(docs/kernels.md). ``within()``, a context manager entered around the call, picks a launch variant the sizes would
not (e.g. ``index32_bound(0)``: the 64-bit index kernels). ``outputs(result, args)`` picks the arrays to compare (default: the result; in-place kernels
return the arguments they update). ``tolerance`` overrides ``gpunet.testing.assert_close``'s dtype defaults.
"""
from __future__ import annotations

import contextlib
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable

import numpy

from ...backend.registry import KERNELS


@dataclass(frozen=True)
class Case:
    kernel: str
    args: Callable
    checks: tuple  # sizes (keyword arguments of args) of the emulator parity checks
    bytes: Callable | None = None  # with flops and sizes: for GPU profiling rows only
    flops: Callable | None = None
    sizes: tuple = ()
    outputs: Callable | None = None
    label: str = ""
    tolerance: dict = field(default_factory=dict)
    within: Callable | None = None  # a context manager (factory) around the call

    def __post_init__(self):
        if isinstance(self.checks, dict):
            object.__setattr__(self, "checks", (self.checks,))
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel case {self.kernel!r}: no fused kernel of that name in gpunet.backend.registry")

    @property
    def family(self) -> str | None:
        """The kernel's ``kernels/<family>.cu`` (None for a kernel that runs its reference everywhere)."""
        return KERNELS[self.kernel].family

    @property
    def name(self) -> str:
        return f"{self.kernel}[{self.label}]" if self.label else self.kernel

    def arguments(self, backend, sizes: dict, seed: int = 0) -> tuple:
        """The call's arguments on ``backend``, drawn for ``sizes`` (the same numbers on every backend)."""
        return self.args(backend, numpy.random.default_rng(seed), **sizes)

    def call(self, backend, args: tuple) -> list:
        """The compared outputs of one call of the kernel on ``backend``, as host arrays."""
        with self.within() if self.within is not None else contextlib.nullcontext():
            result = getattr(backend, self.kernel)(*args)
        if self.outputs is not None:
            picked = self.outputs(result, args)
        else:
            picked = () if result is None else tuple(result) if isinstance(result, tuple) else (result,)
        return [backend.to_numpy(a) for a in picked]

    def run(self, backend, sizes: dict, seed: int = 0) -> list:
        return self.call(backend, self.arguments(backend, sizes, seed))


ODD = (1, 7, 33, 1025)  # sizes along a kernel's axis: one element, less than a warp, a warp and one, a block and one


def normal(backend, rng, shape, scale=1.0, dtype=numpy.float32):
    """A backend array of N(0, scale^2) values (drawn on the host, so every backend gets the same numbers)."""
    return backend.asarray((rng.standard_normal(shape) * scale).astype(dtype))


def all_cases() -> list:
    """Every family module's CASES, families in alphabetical order."""
    cases = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        cases += importlib.import_module(f"{__name__}.{info.name}").CASES
    return cases
