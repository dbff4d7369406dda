"""Which fused kernels a piece of work calls, observed by running it, and compiling their kernel files ahead of
training.

``kernels_called(work)`` runs ``work()`` (a training step on a zero batch, say) and returns the fused kernels it
called, in first-call order (``gpunet.backend.registry.observe``). ``warmup(backend, kernels)`` compiles the kernel
files those kernels live in and says how long each took.
"""
from __future__ import annotations

from .registry import KERNELS, observe


def kernels_called(work) -> tuple:
    """The fused kernels ``work()`` calls on any backend, each once, in first-call order."""
    with observe() as names:
        work()
    return tuple(dict.fromkeys(names))


def warmup(backend, kernels) -> list:
    """Compile the kernel files of ``kernels`` on ``backend``: one ``(family, kernels, seconds)`` per family, in
    first-use order (``seconds``: how long the family took to compile on this device, now or earlier), then
    ``(None, kernels, None)`` for the kernels without a CUDA file (they run their xp reference); empty on the CPU
    backend, which has nothing to compile."""
    if backend.name != "cupy":
        return []
    by_family: dict = {}
    for kernel in kernels:
        by_family.setdefault(KERNELS[kernel].family, []).append(kernel)
    results = []
    for family, names in by_family.items():
        if family is not None:
            backend.compile(family)
            results.append((family, tuple(names), backend.compile_seconds[family]))
    if None in by_family:
        results.append((None, tuple(by_family[None]), None))
    return results
