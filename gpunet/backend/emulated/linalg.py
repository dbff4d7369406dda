"""The stand-in's ``cupy._core._routines_linalg``: CuPy's cuBLAS compute type per dtype, and TF32 products.

As in CuPy 14 (``cupy/_core/_routines_linalg.pyx``): one compute type per dtype group (float16; float32 and complex64;
float64) for the whole process, ``COMPUTE_TYPE_TBD`` until first read, when ``get_compute_type`` decides it once from
``$CUPY_TF32`` (float32 only); ``set_compute_type`` with TF32 or BF16 on a device of compute capability < 8.0 warns
and changes nothing. Every set is appended to ``calls`` (tests read what gpunet asked for).

Unlike NumPy, a float32 ``matmul`` (``cupy.matmul`` and ``@``) under ``COMPUTE_TYPE_TF32`` computes what a tensor
core does: the inputs rounded to TF32 (10 explicit mantissa bits, round to nearest even; cuBLAS does not document
its rounding, this is the usual model), products and sums in float32.
"""
from __future__ import annotations

import os
import warnings

import numpy

COMPUTE_TYPE_TBD, COMPUTE_TYPE_DEFAULT, COMPUTE_TYPE_PEDANTIC = 0, 1, 2
COMPUTE_TYPE_FP16, COMPUTE_TYPE_FP32, COMPUTE_TYPE_FP64, COMPUTE_TYPE_BF16, COMPUTE_TYPE_TF32 = 3, 4, 5, 6, 7
_NAMES = {value: name for name, value in globals().items() if name.startswith("COMPUTE_TYPE_")}

compute_types = [COMPUTE_TYPE_TBD] * 4  # by CuPy's index: 1 float16, 2 float32/complex64, 3 float64
calls: list = []  # (dtype name, compute type) per set_compute_type


def to_compute_type_index(dtype) -> int:
    char = numpy.dtype(dtype).char
    for index, chars in enumerate(("e", "fF", "dD"), start=1):
        if char in chars:
            return index
    raise TypeError(f"dtype is not supported: {dtype}")


def compute_type_to_str(compute_type) -> str:
    return _NAMES.get(compute_type, compute_type)


def set_compute_type(dtype, compute_type) -> None:
    if compute_type not in _NAMES:
        raise ValueError(f"Unknown compute type: {compute_type}")
    if compute_type in (COMPUTE_TYPE_BF16, COMPUTE_TYPE_TF32):
        from .cupy_standin import _get_device_properties
        from .device_array import current_device

        props = _get_device_properties(current_device())
        if props["major"] < 8:
            warnings.warn(f"{compute_type_to_str(compute_type)} is only available on GPUs with compute capability "
                          ">= 8.0", stacklevel=2)
            return
    compute_types[to_compute_type_index(dtype)] = compute_type
    calls.append((numpy.dtype(dtype).name, compute_type))


def get_compute_type(dtype) -> int:
    index = to_compute_type_index(dtype)
    if compute_types[index] == COMPUTE_TYPE_TBD:
        tf32 = numpy.dtype(dtype).char in "fF" and int(os.getenv("CUPY_TF32", "0")) > 0
        set_compute_type(dtype, COMPUTE_TYPE_TF32 if tf32 else COMPUTE_TYPE_DEFAULT)
    return compute_types[index]


def round_to_tf32(x: numpy.ndarray) -> numpy.ndarray:
    """float32 ``x`` rounded to TF32 (10 mantissa bits, nearest even), kept in float32; inf and NaN unchanged."""
    bits = numpy.ascontiguousarray(x, dtype=numpy.float32).view(numpy.uint32)
    rounded = ((bits + numpy.uint32(0x0FFF) + ((bits >> 13) & 1)) & numpy.uint32(0xFFFFE000)).view(numpy.float32)
    return numpy.where(numpy.isfinite(x), rounded, x)


def tf32_operands(ufunc, inputs):
    """The operands a float32 ``matmul`` multiplies under the current compute type: rounded to TF32 when it is
    ``COMPUTE_TYPE_TF32``, else ``inputs`` themselves."""
    if (ufunc is not numpy.matmul or not all(getattr(a, "dtype", None) == numpy.float32 for a in inputs)
            or get_compute_type(numpy.float32) != COMPUTE_TYPE_TF32):
        return inputs
    return tuple(round_to_tf32(a) for a in inputs)
