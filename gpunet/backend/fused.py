"""Fused kernels declared once: an xp-generic reference that every backend can call with its own array namespace.

A reference in ``gpunet/backend/references/<family>.py`` takes the array namespace ``xp`` as its first
parameter. ``NumpyBackend`` declares ``softmax = fused(reference)`` and calls it with ``xp=numpy``;
``CupyBackend`` calls the same function with ``xp=cupy`` for families that have no ``kernels/<family>.cu`` yet.
"""
from __future__ import annotations

import functools


class fused:  # noqa: N801  (used like a decorator/descriptor, as staticmethod is)
    """Class attribute for a fused kernel: ``backend.name(*args)`` calls ``reference(backend.xp, *args)``."""

    def __init__(self, reference):
        self.reference = reference
        functools.update_wrapper(self, reference)

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, backend, owner=None):
        if backend is None:
            return self
        bound = functools.partial(self.reference, backend.xp)
        backend.__dict__[self.name] = bound  # bind once per backend: later lookups skip this descriptor
        return bound


def fused_kernels(backend_class) -> dict:
    """Every ``fused`` kernel declared on ``backend_class`` (and its bases), by name."""
    found = {}
    for klass in reversed(backend_class.__mro__):
        found.update({name: value for name, value in vars(klass).items() if isinstance(value, fused)})
    return found
