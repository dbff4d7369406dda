"""``assert_close``: the one closeness check of gpunet's tests, with tolerances chosen by dtype."""
from __future__ import annotations

import numpy

# (rtol, atol, atol per unit of the expected values' largest magnitude) by the less precise of the two dtypes:
# float32 results against float64 or another summation order round by a few ulps per term, and sums over an axis
# round in proportion to their terms; float64 against float64 by a few ulps.
TOLERANCES = {numpy.dtype(numpy.float32): (2e-5, 2e-6, 2e-5), numpy.dtype(numpy.float64): (1e-10, 1e-12, 0.0)}


def to_host(value) -> numpy.ndarray:
    """A NumPy array of a gpunet Tensor, a PyTorch tensor, a backend array (NumPy, CuPy or the stand-in's) or any
    array-like."""
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    if hasattr(value, "numpy") and hasattr(value, "backend"):  # a gpunet Tensor
        return value.numpy()
    if hasattr(value, "get") and type(value).__module__.startswith("cupy"):
        return value.get()
    return numpy.asarray(value)


def assert_close(actual, expected, rtol: float | None = None, atol: float | None = None, dtype=None,
                 what: str = "") -> None:
    """``actual`` has ``expected``'s shape and equals it: exactly for integer and boolean values, else within
    ``rtol``/``atol`` (default: ``TOLERANCES`` of ``dtype``, or of the less precise float dtype of the two; the
    absolute part grows with the expected values' largest magnitude). NaN matches NaN. ``what`` names the value in
    the failure."""
    actual, expected = to_host(actual), to_host(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}"
    if expected.dtype.kind in "iub" and actual.dtype.kind in "iub":
        numpy.testing.assert_array_equal(actual, expected, err_msg=what)
        return
    floats = [numpy.dtype(dtype)] if dtype is not None else \
        [d for d in (actual.dtype, expected.dtype) if d in TOLERANCES] or [numpy.dtype(numpy.float64)]
    default_rtol, default_atol, per_magnitude = TOLERANCES[min(floats, key=lambda d: d.itemsize)]
    if atol is None:
        atol = default_atol + per_magnitude * float(numpy.abs(expected).max(initial=0.0, where=numpy.isfinite(expected)))
    numpy.testing.assert_allclose(actual, expected, rtol=default_rtol if rtol is None else rtol, atol=atol,
                                  err_msg=what)
