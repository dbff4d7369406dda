"""kernels/pool.cu on the CUDA emulator against PyTorch in float64 (values, argmax indices, gradients); outputs are
NaN-filled before every launch. Grids are given smaller than the work so the grid-stride loops are exercised. Every
kernel has a 64-bit (`_f32`) and a 32-bit (`_i32_f32`) index variant; both run every case, and the launcher's
choice between them is tested at its boundary on cuda-emu and cuda-emu:1."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gpunet.backend.geometry import pool_output_size
from gpunet.backend.launchers.common import INT32_MAX, fits_int32, index32_bound
from gpunet.backend.launchers.pool import avg_pool_args, max_pool_args
from gpunet.backend import emulated as ce
from gpunet.testing.nvrtc import KERNELS_DIR

POOL = KERNELS_DIR / "pool.cu"


VARIANTS = [("_f32", np.int64), ("_i32_f32", np.int32)]  # entry-point suffix, C type of the sizes


@pytest.fixture(scope="module")
def mod():
    return ce.load(POOL)


def distinct(shape, seed=0):
    """float32 values without ties (a permutation scaled), so the argmax is unique."""
    n = int(np.prod(shape))
    return (np.random.default_rng(seed).permutation(n).reshape(shape) * 0.37 - n * 0.1).astype(np.float32)


def out_size(x_shape, kernel, stride, padding, dilation=(1, 1), ceil_mode=False):
    return tuple(pool_output_size(x_shape[2 + a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode)
                 for a in (0, 1))


def launch_grid(n, block):
    return max(1, -(-n // block) // 2)  # half the blocks the work needs: grid-stride loop


MAX_CASES = [  # x shape, kernel, stride, padding, dilation, ceil_mode, block
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1), False, 32),
    ((1, 1, 5, 5), (2, 2), (2, 2), (0, 0), (1, 1), True, 32),          # ceil_mode: a last partial window
    ((2, 3, 7, 9), (3, 2), (2, 1), (1, 1), (1, 2), False, 64),
    ((1, 2, 6, 7), (3, 3), (2, 3), (1, 1), (2, 1), True, 96),          # dilation and ceil_mode, block not 2^k
    ((3, 1, 1, 11), (1, 3), (1, 2), (0, 1), (1, 1), False, 256),       # 1-D (H = 1) with padding
    ((1, 1, 33, 35), (4, 4), (3, 3), (2, 2), (1, 1), True, 128),       # plane larger than a block
]


@pytest.mark.parametrize("suffix, ctype", VARIANTS)
@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode, block", MAX_CASES)
def test_max_pool_forward_and_backward_match_torch(mod, shape, kernel, stride, padding, dilation, ceil_mode, block,
                                                   suffix, ctype):
    x = distinct(shape, seed=sum(shape))
    out = out_size(shape, kernel, stride, padding, dilation, ceil_mode)
    y, argmax = ce.nan_array(shape[:2] + out), np.full(shape[:2] + out, -7, np.int64)
    geo = max_pool_args(shape, out, kernel, stride, padding, dilation, ctype)
    mod.launch(f"max_pool2d_forward{suffix}", launch_grid(y.size, block), block, (x, y, argmax, *geo))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt, it = F.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(argmax, it.numpy())

    gy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    gx = ce.nan_array(shape)
    mod.launch(f"max_pool2d_backward{suffix}", launch_grid(gx.size, block), block, (gy, argmax, gx, *geo))
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("suffix, ctype", VARIANTS)
def test_max_pool_nan_and_infinity_follow_torch(mod, suffix, ctype):
    x = np.array([[[[1.0, np.nan, 3.0, np.nan],          # two NaNs in a window: PyTorch reports the last
                    [-np.inf, -np.inf, 2.0, 2.0],         # ties: the first maximum
                    [-np.inf, -np.inf, 5.0, -1.0],
                    [-np.inf, -np.inf, 5.0, 4.0]]]], np.float32)
    kernel, stride, padding = (2, 2), (2, 2), (1, 1)
    out = out_size(x.shape, kernel, stride, padding)
    y, argmax = ce.nan_array((1, 1) + out), np.full((1, 1) + out, -7, np.int64)
    geo = max_pool_args(x.shape, out, kernel, stride, padding, (1, 1), ctype)
    mod.launch(f"max_pool2d_forward{suffix}", 1, 32, (x, y, argmax, *geo))
    yt, it = F.max_pool2d(torch.tensor(x), kernel, stride, padding, return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())  # NaN positions equal too
    np.testing.assert_array_equal(argmax, it.numpy())
    assert y[0, 0, 2, 0] == -np.inf and argmax[0, 0, 2, 0] == 12  # all -inf with padding: first inside position


AVG_CASES = [  # x shape, kernel, stride, padding, ceil_mode, block
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), False, 32),
    ((2, 3, 7, 9), (3, 2), (2, 1), (1, 1), False, 64),
    ((1, 2, 5, 6), (3, 3), (2, 2), (1, 1), True, 96),   # last windows run past the padding: clipped divisor
    ((3, 1, 1, 11), (1, 4), (1, 3), (0, 2), True, 256),
    ((1, 1, 33, 35), (4, 4), (3, 3), (2, 2), True, 128),
]


@pytest.mark.parametrize("suffix, ctype", VARIANTS)
@pytest.mark.parametrize("count_include_pad, divisor", [(True, 0), (False, 0), (True, 5)])
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode, block", AVG_CASES)
def test_avg_pool_forward_and_backward_match_torch(mod, shape, kernel, stride, padding, ceil_mode, block,
                                                   count_include_pad, divisor, suffix, ctype):
    x = distinct(shape, seed=len(shape) + shape[-1])
    out = out_size(shape, kernel, stride, padding, ceil_mode=ceil_mode)
    y = ce.nan_array(shape[:2] + out)
    geo = avg_pool_args(shape, out, kernel, stride, padding, count_include_pad, divisor, ctype)
    mod.launch(f"avg_pool2d_forward{suffix}", launch_grid(y.size, block), block, (x, y, *geo))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = F.avg_pool2d(xt, kernel, stride, padding, ceil_mode, count_include_pad, divisor or None)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)

    gy = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    gx = ce.nan_array(shape)
    mod.launch(f"avg_pool2d_backward{suffix}", launch_grid(gx.size, block), block, (gy, gx, *geo))
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("suffix, ctype", VARIANTS)
def test_pool_kernels_under_address_sanitizer(suffix, ctype):
    asan = ce.load(POOL, sanitize="address")
    shape, kernel, stride, padding, dilation = (2, 1, 5, 7), (3, 3), (2, 2), (1, 1), (1, 2)
    x = distinct(shape)
    out = out_size(shape, kernel, stride, padding, dilation, True)
    geo = max_pool_args(shape, out, kernel, stride, padding, dilation, ctype)
    y, argmax = ce.nan_array(shape[:2] + out), np.zeros(shape[:2] + out, np.int64)
    asan.launch(f"max_pool2d_forward{suffix}", 1, 64, (x, y, argmax, *geo))
    gx = ce.nan_array(shape)
    asan.launch(f"max_pool2d_backward{suffix}", 2, 32, (np.ones_like(y), argmax, gx, *geo))
    xt = torch.tensor(x, requires_grad=True)
    yt = F.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode=True)
    yt.sum().backward()
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(gx, xt.grad.numpy())

    out = out_size(shape, kernel, stride, padding, ceil_mode=True)
    geo = avg_pool_args(shape, out, kernel, stride, padding, False, None, ctype)
    ya, gxa = ce.nan_array(shape[:2] + out), ce.nan_array(shape)
    asan.launch(f"avg_pool2d_forward{suffix}", 1, 64, (x, ya, *geo))
    asan.launch(f"avg_pool2d_backward{suffix}", 2, 32, (np.ones_like(ya), gxa, *geo))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = F.avg_pool2d(xt, kernel, stride, padding, ceil_mode=True, count_include_pad=False)
    yt.sum().backward()
    np.testing.assert_allclose(ya, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gxa, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


class _Grid:
    max_grid_blocks = 65535


def test_32_bit_choice_at_its_boundary():
    """32 bits while the grid-stride loop's last index (span - 1 + grid * block) is at most INT32_MAX."""
    grid = _Grid.max_grid_blocks * 256  # a huge launch is capped at 65535 blocks of 256
    assert fits_int32(_Grid, INT32_MAX + 1 - grid, 10**7, 256)
    assert not fits_int32(_Grid, INT32_MAX + 2 - grid, 10**7, 256)
    assert fits_int32(_Grid, 1000, 4, 256) and not fits_int32(_Grid, 2**31, 1, 1)
    with index32_bound(1000 - 1 + 4 * 256):
        assert fits_int32(_Grid, 1000, 4, 256) and not fits_int32(_Grid, 1001, 4, 256)


@pytest.mark.parametrize("device", ["cuda-emu", "cuda-emu:1"])
def test_backend_picks_the_index_variant_per_launch(device, launched_kernels):
    """Through CupyBackend on the emulated device: the 32-bit kernels for ordinary sizes, the 64-bit ones once the
    indices would pass the bound (lowered here to just below and exactly at this launch's last index), the same
    values from both, equal to PyTorch's in float64."""
    from gpunet.backend import get_backend

    backend = get_backend(device)
    shape, kernel, stride, padding, dilation = (2, 3, 9, 11), (3, 3), (2, 2), (1, 1), (1, 1)
    x = distinct(shape, seed=3)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt, it = F.max_pool2d(xt, kernel, stride, padding, dilation, return_indices=True)
    gy = np.random.default_rng(4).standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    at = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ya = F.avg_pool2d(at, kernel, stride, padding)
    ya.backward(torch.tensor(gy, dtype=torch.float64))
    # the last index each launch forms: span - 1 + grid * block; the span is x's for all four (the forwards read x)
    backward_last = x.size - 1 + -(-x.size // 256) * 256  # 3 blocks of 256 over x's 594 elements
    forward_last = x.size - 1 + yt.numel()  # 1 block of 180 threads over y
    narrow, wide = "_i32_f32", "_f32"
    for bound, forward, backward in ((INT32_MAX, narrow, narrow), (backward_last, narrow, narrow),
                                     (backward_last - 1, narrow, wide), (forward_last, narrow, wide),
                                     (forward_last - 1, wide, wide)):
        launched_kernels.clear()
        with index32_bound(bound):
            xd, gyd = backend.asarray(x), backend.asarray(gy)
            y, argmax = backend.max_pool2d(xd, kernel, stride, padding, dilation)
            gx = backend.max_pool2d_backward(gyd, argmax, shape, kernel, stride, padding, dilation)
            y_avg = backend.avg_pool2d(xd, kernel, stride, padding)
            gx_avg = backend.avg_pool2d_backward(gyd, shape, kernel, stride, padding)
        assert launched_kernels == [f"max_pool2d_forward{forward}", f"max_pool2d_backward{backward}",
                                    f"avg_pool2d_forward{forward}", f"avg_pool2d_backward{backward}"], bound
        np.testing.assert_array_equal(backend.to_numpy(y), yt.detach().numpy())
        np.testing.assert_array_equal(backend.to_numpy(argmax), it.numpy())
        np.testing.assert_allclose(backend.to_numpy(gx), xt.grad.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(backend.to_numpy(y_avg), ya.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(backend.to_numpy(gx_avg), at.grad.numpy(), rtol=1e-5, atol=1e-6)
