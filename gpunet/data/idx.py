"""Reader for IDX files, the format of MNIST and Fashion-MNIST (plain or gzip-compressed).

Layout: two zero bytes, a type code, the number of dimensions ``d``; then ``d`` big-endian uint32 sizes;
then the values, big-endian, in C order.
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from .errors import DatasetError

__all__ = ["IDX_DTYPES", "read_idx"]

IDX_DTYPES = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


def _read_bytes(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head == b"\x1f\x8b":  # gzip magic, whatever the file is called
                with gzip.GzipFile(fileobj=f) as g:
                    return g.read()
            return f.read()
    except FileNotFoundError:
        raise DatasetError(f"IDX file not found: {path}") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"IDX file {path} is not a readable gzip file: {exc}") from None


def read_idx(path) -> np.ndarray:
    """Read one IDX file into a native-endian NumPy array, checking its header against its size."""
    path = os.fspath(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"IDX file {path} is too short for a header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(f"IDX file {path} has a bad magic number {data[:4].hex()}: "
                           "the first two bytes must be zero (is this an IDX file?)")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        raise DatasetError(f"IDX file {path} has unknown type code 0x{code:02x}; known: "
                           + ", ".join(f"0x{c:02x}" for c in IDX_DTYPES))
    if ndim == 0:
        raise DatasetError(f"IDX file {path} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"IDX file {path} is truncated inside its header ({len(data)} of {header} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "longer than its header says"
        raise DatasetError(f"IDX file {path} is {what}: shape {shape} of {dtype.name} needs {expected} bytes, "
                           f"found {len(data)}")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))

