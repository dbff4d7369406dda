"""kernels/dropout.cu on the CUDA emulator: the Philox-4x32-10 mask equals the NumPy reference
(gpunet/backend/references/dropout.py) exactly, for any seed, offset (also not a multiple of 4) and size."""

import numpy as np
import pytest

from gpunet.backend.references import dropout as ref
from gpunet.backend import emulated as ce
from gpunet.backend.launchers.dropout import philox_threads, scalar_args
from gpunet.testing.nvrtc import KERNELS_DIR

DROPOUT = KERNELS_DIR / "dropout.cu"


@pytest.fixture(scope="module")
def mod():
    return ce.load(DROPOUT)


def launch(mod, n, p, seed, offset, dtype=np.float32, grid=None, block=64):
    mask = ce.nan_array(n, dtype) if n else np.empty(0, dtype)
    kernel = "dropout_mask_f32" if dtype == np.float32 else "dropout_mask_f64"
    mod.launch(kernel, grid or max(1, -(-philox_threads(n, offset) // block)), block,
               (mask, *scalar_args(n, p, seed, offset, dtype)))
    return mask


CASES = [  # n, p, seed, offset
    (1, 0.5, 0, 0),
    (3, 0.5, 1, 0),
    (1, 0.3, 7, 3),         # one element in the last lane of a block
    (5, 0.3, 7, 2),         # starts mid-block, ends mid-block
    (1000, 0.1, 12345, 0),
    (1001, 0.5, 2**63 + 11, 7),
    (4097, 0.9, 2**32 - 1, 2**33 + 1),  # the counter's high word is used
    (64, 0.0, 3, 0),        # p = 0 keeps everything
    (257, 0.999, 3, 5),
]


@pytest.mark.parametrize("n, p, seed, offset", CASES)
def test_mask_equals_the_reference_exactly(mod, n, p, seed, offset):
    got = launch(mod, n, p, seed, offset)
    np.testing.assert_array_equal(got, ref.dropout_mask(np, (n,), p, seed, offset, np.float32))


def test_float64_mask_and_a_grid_smaller_than_the_work(mod):
    got = launch(mod, 999, 0.25, 99, 1, dtype=np.float64, grid=2, block=32)
    np.testing.assert_array_equal(got, ref.dropout_mask(np, (999,), 0.25, 99, 1, np.float64))
    assert got.dtype == np.float64 and set(np.unique(got)) == {0.0, 1 / 0.75}


def test_consecutive_offsets_continue_one_stream(mod):
    """The mask of (seed, offset) for n elements is the tail of the mask of (seed, 0) for offset + n."""
    whole = launch(mod, 103, 0.5, 42, 0)
    np.testing.assert_array_equal(launch(mod, 90, 0.5, 42, 13), whole[13:])


def test_drop_rate_and_scale(mod):
    p, n = 0.3, 40000
    mask = launch(mod, n, p, 2024, 0)
    assert set(np.unique(mask)) == {0.0, np.float32(1 / 0.7)}
    dropped = (mask == 0).mean()
    assert abs(dropped - p) < 4 * np.sqrt(p * (1 - p) / n)  # 4 standard deviations


def test_empty_mask_launch_writes_nothing(mod):
    sentinel = np.full(4, np.nan, np.float32)
    mod.launch("dropout_mask_f32", 1, 32, (sentinel[:0], np.int64(0), np.uint64(1), np.int64(0), np.uint32(5),
                                           np.float32(2.0)))
    assert np.isnan(sentinel).all()


def apply(mod, x, p, seed, offset, grid=None, block=64):
    y = ce.nan_array(x.shape, x.dtype)
    kernel = "dropout_apply_f32" if x.dtype == np.float32 else "dropout_apply_f64"
    mod.launch(kernel, grid or max(1, -(-philox_threads(x.size, offset) // block)), block,
               (x, y, *scalar_args(x.size, p, seed, offset, x.dtype)))
    return y


@pytest.mark.parametrize("n, p, seed, offset", CASES[::2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_apply_equals_input_times_mask_exactly(mod, n, p, seed, offset, dtype):
    x = np.random.default_rng(n).standard_normal(n).astype(dtype)
    x[:3] = [np.nan, -0.0, -1.0][:n] if n >= 3 else x[:3]
    y = apply(mod, x, p, seed, offset)
    expected = x * ref.dropout_mask(np, (n,), p, seed, offset, dtype)
    np.testing.assert_array_equal(y, expected)  # NaN where expected is NaN
    np.testing.assert_array_equal(np.signbit(y), np.signbit(expected))
    np.testing.assert_array_equal(y, ref.dropout_apply(np, x, p, seed, offset))


def test_dropout_kernel_under_address_sanitizer():
    asan = ce.load(DROPOUT, sanitize="address")
    for n, p, seed, offset in [(1, 0.5, 1, 3), (1027, 0.4, 5, 6)]:
        got = launch(asan, n, p, seed, offset, grid=2, block=32)
        np.testing.assert_array_equal(got, ref.dropout_mask(np, (n,), p, seed, offset, np.float32))
        x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
        np.testing.assert_array_equal(apply(asan, x, p, seed, offset, grid=2, block=32), x * got)


def test_the_emulated_device_launches_the_kernel_and_matches_the_cpu():
    from gpunet.backend import get_backend

    emu, cpu = get_backend("cuda-emu"), get_backend("cpu")
    assert emu.kernel_implementation("dropout_mask") == "kernels/dropout.cu"
    for dtype in (np.float32, np.float64):
        got = emu.to_numpy(emu.dropout_mask((2, 3, 5), 0.4, 77, 9, dtype))
        np.testing.assert_array_equal(got, cpu.dropout_mask((2, 3, 5), 0.4, 77, 9, dtype))
        assert got.dtype == dtype
    assert emu.dropout_mask((0, 3), 0.4, 1, 0, np.float32).shape == (0, 3)
    with pytest.raises(ValueError, match="p must be in"):
        emu.dropout_mask((3,), 1.0, 1, 0, np.float32)
