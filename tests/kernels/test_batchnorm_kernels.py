"""kernels/batchnorm.cu on the CUDA emulator against float64 NumPy: per-channel mean and biased variance,
outputs NaN-filled before launch, odd sizes, a large common offset (numerical stability), AddressSanitizer."""

import numpy as np
import pytest

from gpunet.backend import emulated as ce
from gpunet.testing.nvrtc import KERNELS_DIR

BATCHNORM = KERNELS_DIR / "batchnorm.cu"


@pytest.fixture(scope="module")
def mod():
    return ce.load(BATCHNORM)


def stats(mod, x, grid=None, block=128):
    outer, channels, inner = x.shape
    mean, var = ce.nan_array(channels), ce.nan_array(channels)
    mod.launch("batch_norm_stats_f32", grid or channels, block,
               (x, mean, var, np.int64(outer), np.int64(channels), np.int64(inner)))
    return mean, var


CASES = [  # outer, channels, inner, grid, block
    (1, 1, 2, 1, 32),
    (2, 3, 1, 3, 32),       # (N, C): the strided column path
    (5, 7, 1, 2, 96),       # fewer blocks than channels, block not a power of two
    (3, 4, 35, 4, 64),      # (N, C, L)
    (2, 3, 33 * 17, 3, 1024),
    (1, 2, 1025, 1, 256),   # batch 1
]


@pytest.mark.parametrize("outer, channels, inner, grid, block", CASES)
def test_mean_and_biased_variance(mod, outer, channels, inner, grid, block):
    x = np.random.default_rng(outer * inner).standard_normal((outer, channels, inner)).astype(np.float32) * 3 + 1
    mean, var = stats(mod, x, grid, block)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, x64.var(axis=(0, 2)), rtol=1e-5, atol=1e-6)


def test_large_offset_keeps_the_variance_accurate(mod):
    """x = 1e4 + N(0, 1): a naive E[x^2] - E[x]^2 in float32 loses every digit; Welford keeps them."""
    x = (1e4 + np.random.default_rng(0).standard_normal((64, 2, 50))).astype(np.float32)
    mean, var = stats(mod, x, block=256)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(axis=(0, 2)), rtol=1e-6)
    np.testing.assert_allclose(var, x64.var(axis=(0, 2)), rtol=1e-3)


def test_constant_channel_has_zero_variance_and_nan_propagates(mod):
    x = np.ones((4, 3, 5), np.float32)
    x[:, 1] = 2.5
    x[2, 2, 3] = np.nan
    mean, var = stats(mod, x, block=32)
    np.testing.assert_array_equal(mean[:2], [1.0, 2.5])
    np.testing.assert_array_equal(var[:2], [0.0, 0.0])
    assert np.isnan(mean[2]) and np.isnan(var[2])


def test_batchnorm_kernel_under_address_sanitizer():
    asan = ce.load(BATCHNORM, sanitize="address")
    for shape, block in (((3, 5, 1), 64), ((2, 3, 37), 32)):
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        mean, var = stats(asan, x, grid=2, block=block)
        np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(0, 2)), rtol=1e-5, atol=1e-6)


def test_batchnorm_reduction_has_no_data_races_under_thread_sanitizer():
    tsan = ce.load(BATCHNORM, sanitize="thread", mode="threads")
    x = np.random.default_rng(2).standard_normal((3, 2, 29)).astype(np.float32)
    mean, var = stats(tsan, x, grid=2, block=48)
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(0, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=(0, 2)), rtol=1e-5, atol=1e-6)
