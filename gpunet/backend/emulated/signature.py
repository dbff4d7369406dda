"""Kernel signatures parsed from CUDA source, and CuPy's rules for passing arguments.

CuPy passes RawKernel arguments as follows (CuPy documentation, "User-Defined Kernels",
section "Raw kernels"): a ``cupy.ndarray`` becomes a pointer to its data, a NumPy scalar keeps
its dtype, and a Python ``int``, ``float`` or ``bool`` becomes a C ``long long``, ``double``
or ``bool``. Nothing is converted to the kernel's declared type, so a Python ``int`` given to
an ``int`` parameter puts 8 bytes where the kernel reads 4. :func:`convert_args` applies these
rules and refuses every mismatch with the parsed C signature.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import CudaEmuError

# C type spellings (after removing cv-qualifiers and __restrict__) -> NumPy dtype.
_C_TYPES = {
    "float": np.float32,
    "double": np.float64,
    "bool": np.bool_,
    "char": np.int8,
    "signed char": np.int8,
    "unsigned char": np.uint8,
    "short": np.int16,
    "unsigned short": np.uint16,
    "int": np.int32,
    "signed int": np.int32,
    "unsigned": np.uint32,
    "unsigned int": np.uint32,
    "long": np.int64,
    "unsigned long": np.uint64,
    "long long": np.int64,
    "long long int": np.int64,
    "unsigned long long": np.uint64,
    "unsigned long long int": np.uint64,
    "int8_t": np.int8,
    "uint8_t": np.uint8,
    "int16_t": np.int16,
    "uint16_t": np.uint16,
    "int32_t": np.int32,
    "uint32_t": np.uint32,
    "int64_t": np.int64,
    "uint64_t": np.uint64,
    "size_t": np.uint64,
    "ptrdiff_t": np.int64,
}
_QUALIFIERS = {"const", "volatile", "__restrict__", "__restrict", "restrict"}
_KERNEL_RE = re.compile(
    r'extern\s+"C"\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?__global__\s+'
    r"(?:__launch_bounds__\s*\([^)]*\)\s*)?void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?"
    r"([A-Za-z_]\w*)\s*\(([^)]*)\)"
)


@dataclass(frozen=True)
class Param:
    """One kernel parameter: ``name``, C ``ctype`` as written (normalised), NumPy ``dtype``
    (``None`` for ``void*``), whether it is a pointer and whether the pointee is const."""

    name: str
    ctype: str
    dtype: np.dtype | None
    pointer: bool
    const: bool


@dataclass(frozen=True)
class KernelSignature:
    name: str
    params: tuple[Param, ...]

    def __str__(self) -> str:
        return f"{self.name}({', '.join(f'{p.ctype} {p.name}' for p in self.params)})"


def strip_comments(source: str) -> str:
    source = re.sub(r"/\*.*?\*/", " ", source, flags=re.S)
    return re.sub(r"//[^\n]*", "", source)


def _parse_param(kernel: str, text: str, path: str) -> Param:
    tokens = re.findall(r"[A-Za-z_]\w*|\*|&", text)
    if len(tokens) < 2 or not re.fullmatch(r"[A-Za-z_]\w*", tokens[-1]) or tokens[-1] in _QUALIFIERS:
        raise CudaEmuError(f"{path}: kernel '{kernel}': cannot parse parameter '{text.strip()}' (unnamed?)")
    name, type_tokens = tokens[-1], tokens[:-1]
    if "&" in type_tokens:
        raise CudaEmuError(f"{path}: kernel '{kernel}': parameter '{name}' is a reference; kernels take values or pointers")
    depth = type_tokens.count("*")
    star = type_tokens.index("*") if depth else len(type_tokens)
    const = "const" in type_tokens[:star]
    base = " ".join(t for t in type_tokens[:star] if t not in _QUALIFIERS)
    if depth > 1:
        raise CudaEmuError(f"{path}: kernel '{kernel}': parameter '{name}' is a pointer to a pointer; not supported")
    if base == "void" and depth == 1:
        dtype = None
    elif base in _C_TYPES:
        dtype = np.dtype(_C_TYPES[base])
    else:
        raise CudaEmuError(
            f"{path}: kernel '{kernel}': parameter '{name}' has type '{base}', which the emulator does not know; "
            f"use one of: {', '.join(sorted(_C_TYPES))} (or a pointer to one)"
        )
    ctype = ("const " if const else "") + base + ("*" if depth else "")
    return Param(name=name, ctype=ctype, dtype=dtype, pointer=bool(depth), const=const)


def parse_kernels(source: str, path: str = "<source>") -> dict[str, KernelSignature]:
    """All ``extern "C" __global__`` kernels of ``source``, by name."""
    kernels: dict[str, KernelSignature] = {}
    for match in _KERNEL_RE.finditer(strip_comments(source)):
        name, params_text = match.group(1), match.group(2).strip()
        parts = [] if params_text in ("", "void") else params_text.split(",")
        kernels[name] = KernelSignature(name, tuple(_parse_param(name, p, path) for p in parts))
    return kernels


def _describe(value) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array"
    if isinstance(value, np.generic):
        return f"a numpy.{value.dtype} scalar"
    return f"a Python {type(value).__name__}"


def convert_args(sig: KernelSignature, args) -> list[np.ndarray]:
    """Check ``args`` against ``sig`` with CuPy's passing rules and return, per parameter, a small
    buffer holding the bytes the kernel receives (the data pointer for arrays)."""
    args = tuple(args)
    if len(args) != len(sig.params):
        raise CudaEmuError(f"kernel '{sig.name}' takes {len(sig.params)} arguments ({sig}), got {len(args)}")
    out = []
    for p, value in zip(sig.params, args):
        where = f"kernel '{sig.name}', parameter '{p.name}' ({p.ctype})"
        if p.pointer:
            if not isinstance(value, np.ndarray):
                raise CudaEmuError(f"{where}: expects an array, got {_describe(value)}")
            if p.dtype is not None and value.dtype != p.dtype:
                raise CudaEmuError(
                    f"{where}: expects a {p.dtype} array, got {_describe(value)}; "
                    f"convert it with .astype(numpy.{p.dtype})"
                )
            if not value.flags.c_contiguous:
                raise CudaEmuError(f"{where}: the array is not C-contiguous; pass numpy.ascontiguousarray(...)")
            if not p.const and not value.flags.writeable:
                raise CudaEmuError(f"{where}: the kernel may write through this pointer, but the array is read-only")
            out.append(np.array([value.ctypes.data], dtype=np.uintp))
            continue
        if isinstance(value, np.ndarray):
            raise CudaEmuError(f"{where}: expects a scalar, got {_describe(value)}")
        if isinstance(value, np.generic):
            passed, how = value.dtype, f"{_describe(value)}"
        elif isinstance(value, bool):
            passed, how = np.dtype(np.bool_), "a Python bool, which CuPy passes as bool"
        elif isinstance(value, int):
            passed, how = np.dtype(np.int64), "a Python int, which CuPy passes as long long"
            if not -(2**63) <= value < 2**63:
                raise CudaEmuError(f"{where}: Python int {value} does not fit in long long")
        elif isinstance(value, float):
            passed, how = np.dtype(np.float64), "a Python float, which CuPy passes as double"
        else:
            raise CudaEmuError(f"{where}: cannot pass {_describe(value)} to a kernel")
        if passed != p.dtype:
            raise CudaEmuError(
                f"{where}: got {how} ({passed}); on a GPU the kernel would read the wrong bits. "
                f"Pass numpy.{p.dtype}(value)"
            )
        out.append(np.array(value, dtype=p.dtype).reshape(1))
    return out
