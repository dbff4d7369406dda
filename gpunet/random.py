"""gpunet's global random generator: seeding, and a JSON-serialisable state for exact resume.

Initialisers draw on the host from this generator; dropout asks it for a seed for the backend's counter-based
mask kernel, so the same seed gives the same masks on every backend.
"""
from __future__ import annotations

import numpy

_generator = numpy.random.Generator(numpy.random.PCG64())


def manual_seed(seed: int) -> None:
    """Reset the generator: the same seed gives the same initial weights, shuffles and dropout masks."""
    global _generator
    if not isinstance(seed, (int, numpy.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"manual_seed: the seed must be a non-negative integer, got {seed!r}")
    _generator = numpy.random.Generator(numpy.random.PCG64(int(seed)))


def generator() -> numpy.random.Generator:
    """The generator itself (host-side)."""
    return _generator


def next_seed() -> int:
    """A fresh 63-bit seed drawn from the generator (for counter-based kernels)."""
    return int(_generator.integers(0, 2**63 - 1))


def get_rng_state() -> dict:
    """The generator's state as a JSON-serialisable dict."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state from ``get_rng_state``."""
    bit_generator = numpy.random.PCG64()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError(f"set_rng_state: not a state from gpunet.random.get_rng_state(): {exc}") from None
    _generator.bit_generator.state = bit_generator.state
