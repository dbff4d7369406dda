"""What the launchers share: block sizes, grid arithmetic, argument checks, and ``RUN_REFERENCE``.

A launcher is ``launcher(backend, *args)`` with the fused kernel's arguments (``gpunet.backend.registry`` declares
which launcher serves which kernel); it packs the arguments into the C types of the kernel's signature and calls
``backend.launch``. It returns ``RUN_REFERENCE`` for inputs its CUDA kernels do not cover beyond the declared dtypes
(a layout, a shape); the backend then runs the xp reference.
"""
from __future__ import annotations

import contextlib

import numpy

BLOCK_SIZE = 256  # threads per block for element-wise kernels: a multiple of the warp size, good occupancy
RUN_REFERENCE = object()  # returned by a launcher: these inputs run the xp reference


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def prod(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def row_threads(length: int) -> int:
    """Threads for one row: whole warps covering the row, at most a full block (1024)."""
    return min(1024, 32 * ceil_div(max(int(length), 1), 32))


INT32_MAX = 2**31 - 1
_int32_bound = [INT32_MAX]  # lowered by index32_bound(); the largest index value a 32-bit variant may reach


def fits_int32(backend, span: int, blocks: int, threads: int) -> bool:
    """Whether a grid-stride launch of ``blocks`` x ``threads`` over indices < ``span`` keeps every index it forms
    (the loop's last step included) within int32: then the kernel's 32-bit variant may run."""
    grid = max(1, min(int(blocks), backend.max_grid_blocks))
    return int(span) - 1 + grid * int(threads) <= _int32_bound[0]


@contextlib.contextmanager
def index32_bound(bound: int):
    """Within the block, ``fits_int32`` uses ``bound`` instead of INT32_MAX: tests and the kernel cases reach the
    64-bit variants (and the boundary between the two) without tensors of 2**31 elements."""
    saved = _int32_bound[0]
    _int32_bound[0] = int(bound)
    try:
        yield
    finally:
        _int32_bound[0] = saved


ROW_GROUP_MAX = 256  # threads of a wide row (and the most per block) in the row-group kernels
NARROW_ROW = 1024  # rows up to this length get a warp (or less) each


def row_groups(rows: int, cols: int) -> tuple[int, int, int]:
    """(blocks, threads, group) of a row-group kernel (softmax rows, LayerNorm): ``group`` consecutive threads per
    row, a divisor of ``threads``. A row of up to NARROW_ROW elements gets a warp, or the power of two covering it
    when shorter (16 threads for C = 10), so one 256-thread block holds several rows; a longer row gets 256."""
    cols, rows = int(cols), max(int(rows), 1)
    group = ROW_GROUP_MAX if cols > NARROW_ROW else min(32, 1 << max(cols - 1, 0).bit_length())
    per_block = min(ROW_GROUP_MAX // group, rows)
    return ceil_div(rows, per_block), group * per_block, group


def require_float(op: str, what: str, array) -> None:
    if array.dtype not in (numpy.float32, numpy.float64):
        raise TypeError(f"{op}: {what} must be float32 or float64, got {array.dtype}; convert with .float()")


def launch_per_element(backend, family: str, kernel: str, n: int, args: tuple) -> None:
    """Launch ``kernel`` with one thread per element of ``n`` (grid-stride beyond the grid limit); nothing for 0."""
    if n:
        backend.launch(family, kernel, ceil_div(n, BLOCK_SIZE), min(BLOCK_SIZE, n), args)
