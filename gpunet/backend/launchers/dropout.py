"""CuPy launchers of ``kernels/dropout.cu``: the counter-based (Philox-4x32-10) dropout mask, and dropout applied
to an array without storing the mask.

The kernels reproduce ``gpunet.backend.references.dropout`` bit for bit (the keep decision is an integer
comparison), so the same (seed, offset) gives the same mask on every backend.
"""
from __future__ import annotations

import numpy

from ..references.dropout import drop_threshold
from .common import BLOCK_SIZE, ceil_div

_SUFFIXES = {numpy.dtype(numpy.float32): "f32", numpy.dtype(numpy.float64): "f64"}


def _check(op: str, p, seed, offset, dtype) -> None:
    if numpy.dtype(dtype) not in _SUFFIXES:
        raise TypeError(f"{op}: dtype must be float32 or float64, got {numpy.dtype(dtype)}")
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{op}: the drop probability p must be in [0, 1), got {p}")
    if not 0 <= int(seed) < 2**64 or int(offset) < 0:
        raise ValueError(f"{op}: seed must be in [0, 2**64) and offset >= 0, got seed={seed}, offset={offset}")


def philox_threads(n: int, offset: int) -> int:
    """Threads of a launch over elements offset .. offset + n - 1: one per Philox block of 4 they touch."""
    return (int(offset) + n + 3) // 4 - int(offset) // 4


def scalar_args(n, p, seed, offset, dtype) -> tuple:
    """The dropout kernels' arguments after their arrays: n, seed, offset, the keep threshold and the scale."""
    return (numpy.int64(n), numpy.uint64(seed), numpy.int64(offset), numpy.uint32(drop_threshold(p)),
            numpy.dtype(dtype).type(1.0 / (1.0 - p)))


def _launch(backend, kernel, arrays, n, p, seed, offset, dtype):
    if n:
        threads = philox_threads(n, offset)
        backend.launch("dropout", f"{kernel}_{_SUFFIXES[numpy.dtype(dtype)]}", ceil_div(threads, BLOCK_SIZE),
                       min(BLOCK_SIZE, threads), (*arrays, *scalar_args(n, p, seed, offset, dtype)))


def check_dropout_mask(shape, p, seed, offset, dtype):
    _check("dropout_mask", p, seed, offset, dtype)


def dropout_mask(backend, shape, p, seed, offset, dtype):
    mask = backend.xp.empty(tuple(int(d) for d in shape), dtype=dtype)
    _launch(backend, "dropout_mask", (mask,), mask.size, p, seed, offset, mask.dtype)
    return mask


def check_dropout_apply(x, p, seed, offset):
    _check("dropout_apply", p, seed, offset, x.dtype)


def dropout_apply(backend, x, p, seed, offset):
    x = backend.xp.ascontiguousarray(x)
    y = backend.xp.empty_like(x)
    _launch(backend, "dropout_apply", (x, y), x.size, p, seed, offset, x.dtype)
    return y
