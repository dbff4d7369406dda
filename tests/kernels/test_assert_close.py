"""gpunet.testing.assert_close: tolerances by dtype (worked values at the edges), exact integers, NaN, shapes, and
the value kinds it reads (gpunet tensors, PyTorch tensors, emulated-device arrays)."""
import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.backend import get_backend
from gpunet.testing import assert_close


def test_float32_tolerance_is_relative_plus_a_share_of_the_largest_magnitude():
    expected = np.array([100.0, 1.0], np.float32)  # atol = 2e-6 + 2e-5 * 100 = 2.002e-3, rtol 2e-5
    assert_close(np.array([100.0, 1.0019], np.float32), expected)  # 1.9e-3 <= 2.002e-3 + 2e-5
    with pytest.raises(AssertionError, match="second"):
        assert_close(np.array([100.0, 1.0021], np.float32), expected, what="second")


def test_float64_is_checked_to_float64_rounding_unless_a_dtype_is_named():
    expected = np.array([1.0, 2.0])
    assert_close(expected + 1e-11, expected)
    with pytest.raises(AssertionError):
        assert_close(expected + 1e-6, expected)
    assert_close(expected + 1e-6, expected, dtype="float32")  # float32 tolerances: 2e-5 relative
    assert_close(expected.astype(np.float32) + np.float32(1e-5), expected)  # the less precise dtype decides


def test_integers_are_exact_nan_matches_nan_and_shapes_must_agree():
    with pytest.raises(AssertionError):
        assert_close(np.array([3, 4]), np.array([3, 5]))
    assert_close(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))
    with pytest.raises(AssertionError):
        assert_close(np.array([np.inf, 1.0]), np.array([np.inf, 2.0]))  # an infinity does not widen the tolerance
    with pytest.raises(AssertionError, match=r"shape \(2,\), expected \(1, 2\)"):
        assert_close(np.zeros(2), np.zeros((1, 2)))


def test_reads_gpunet_tensors_torch_tensors_and_device_arrays():
    emu = get_backend("cuda-emu")
    assert_close(gn.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    assert_close(emu.asarray(np.array([1.5], np.float32)), np.array([1.5], np.float32))
    with pytest.raises(AssertionError):
        assert_close(torch.tensor([1.0, 2.5], dtype=torch.float64), gn.tensor([1.0, 2.0], dtype="float64"))
