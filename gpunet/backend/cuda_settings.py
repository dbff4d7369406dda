"""Process-wide CUDA math settings, PyTorch's way: TF32 for float32 matrix products (and so for convolutions).

    import gpunet as gn
    gn.backends.cuda.matmul.allow_tf32 = True          # torch.backends.cuda.matmul.allow_tf32
    gn.set_float32_matmul_precision("high")             # the same switch, torch.set_float32_matmul_precision
    with gn.backends.cuda.matmul.tf32(True): ...        # on inside the block, the previous value restored after

Off by default (PyTorch's default since 1.12). On, cuBLAS may run float32 GEMMs on the tensor cores of GPUs with
compute capability >= 8.0 (A100, H100) with inputs rounded to TF32's 10-bit mantissa and float32 accumulation:
about 8x the fp32 FLOP rate, relative errors around 1e-3 instead of 1e-6 (docs/kernels.md, "TF32"). gpunet's
convolutions are im2col + one cuBLAS GEMM per group, so the one switch covers them (PyTorch's separate
``torch.backends.cudnn.allow_tf32`` has nothing to control here). The CPU ignores the switch: NumPy has no TF32.

The switch is CuPy's compute type for float32 (``cupy._core._routines_linalg.set_compute_type``), which every CUDA
backend sets when it is created and again whenever the switch changes; that replaces CuPy's own ``CUPY_TF32``
environment variable. GPUs before compute capability 8.0 have no TF32: CuPy keeps float32 there.
"""
from __future__ import annotations

import contextlib
import weakref

PRECISIONS = {"highest": False, "high": True}  # torch.set_float32_matmul_precision's names; "medium" (bf16): none

_allow_tf32 = False
_backends: weakref.WeakSet = weakref.WeakSet()  # CUDA backends, each applying the switch to its device


def allow_tf32() -> bool:
    """Whether float32 matrix products on CUDA may use TF32."""
    return _allow_tf32


def set_allow_tf32(enabled: bool) -> None:
    """Allow (True) or forbid (False, the default) TF32 for float32 matrix products and convolutions on CUDA."""
    global _allow_tf32
    if not isinstance(enabled, bool):
        raise TypeError(f"allow_tf32 must be True or False, got {enabled!r}")
    _allow_tf32 = enabled
    for backend in list(_backends):
        backend.apply_math_settings()


def follow(backend) -> None:
    """Have ``backend`` (a CUDA backend with ``apply_math_settings()``) apply the switch now and on every change."""
    _backends.add(backend)
    backend.apply_math_settings()


@contextlib.contextmanager
def tf32(enabled: bool):
    """A block with TF32 allowed (True) or forbidden (False); the previous setting is restored on exit."""
    previous = _allow_tf32
    set_allow_tf32(enabled)
    try:
        yield
    finally:
        set_allow_tf32(previous)


def set_float32_matmul_precision(precision: str) -> None:
    """PyTorch's ``torch.set_float32_matmul_precision``: "highest" (float32, the default) or "high" (TF32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"set_float32_matmul_precision: {precision!r} is not a precision gpunet has; use "
                         "'highest' (float32) or 'high' (TF32); 'medium' (bfloat16 products) is not supported")
    set_allow_tf32(PRECISIONS[precision])


def get_float32_matmul_precision() -> str:
    """"high" when TF32 is allowed, else "highest"."""
    return "high" if _allow_tf32 else "highest"


class _Matmul:
    """``gpunet.backends.cuda.matmul``: ``allow_tf32`` (read and set) and ``tf32(enabled)`` (a scoped setting)."""

    allow_tf32 = property(lambda self: _allow_tf32, lambda self, enabled: set_allow_tf32(enabled),
                          doc="whether float32 matrix products (and convolutions) on CUDA may use TF32")
    tf32 = staticmethod(tf32)

    def __setattr__(self, name, value):
        if name != "allow_tf32":
            raise AttributeError(f"gpunet.backends.cuda.matmul has no setting {name!r}; it has allow_tf32")
        super().__setattr__(name, value)

    def __repr__(self) -> str:
        return f"gpunet.backends.cuda.matmul(allow_tf32={_allow_tf32})"


class _Cuda:
    matmul = _Matmul()


class backends:  # noqa: N801 - a namespace, spelled as PyTorch's torch.backends
    """``gpunet.backends``: PyTorch's ``torch.backends`` settings that gpunet has (``backends.cuda.matmul``)."""

    cuda = _Cuda()
