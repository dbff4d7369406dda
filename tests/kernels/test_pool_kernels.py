"""kernels/pool.cu on the CUDA emulator against PyTorch in float64 (values, argmax indices, gradients); outputs are
NaN-filled before every launch. Grids are given smaller than the work so the grid-stride loops are exercised."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gpunet.backend.geometry import pool_output_size
from gpunet.backend.launchers.pool import avg_pool_args, max_pool_args
from gpunet.backend import emulated as ce
from gpunet.testing.nvrtc import KERNELS_DIR

POOL = KERNELS_DIR / "pool.cu"


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


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode, block", MAX_CASES)
def test_max_pool_forward_and_backward_match_torch(mod, shape, kernel, stride, padding, dilation, ceil_mode, block):
    x = distinct(shape, seed=sum(shape))
    out = out_size(shape, kernel, stride, padding, dilation, ceil_mode)
    y, argmax = ce.nan_array(shape[:2] + out), np.full(shape[:2] + out, -7, np.int64)
    geo = max_pool_args(shape, out, kernel, stride, padding, dilation)
    mod.launch("max_pool2d_forward_f32", launch_grid(y.size, block), block, (x, y, argmax, *geo))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt, it = F.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(argmax, it.numpy())

    gy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    gx = ce.nan_array(shape)
    mod.launch("max_pool2d_backward_f32", launch_grid(gx.size, block), block, (gy, argmax, gx, *geo))
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-6, atol=1e-6)


def test_max_pool_nan_and_infinity_follow_torch(mod):
    x = np.array([[[[1.0, np.nan, 3.0, np.nan],          # two NaNs in a window: PyTorch reports the last
                    [-np.inf, -np.inf, 2.0, 2.0],         # ties: the first maximum
                    [-np.inf, -np.inf, 5.0, -1.0],
                    [-np.inf, -np.inf, 5.0, 4.0]]]], np.float32)
    kernel, stride, padding = (2, 2), (2, 2), (1, 1)
    out = out_size(x.shape, kernel, stride, padding)
    y, argmax = ce.nan_array((1, 1) + out), np.full((1, 1) + out, -7, np.int64)
    mod.launch("max_pool2d_forward_f32", 1, 32, (x, y, argmax, *max_pool_args(x.shape, out, kernel, stride, padding, (1, 1))))
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


@pytest.mark.parametrize("count_include_pad, divisor", [(True, 0), (False, 0), (True, 5)])
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode, block", AVG_CASES)
def test_avg_pool_forward_and_backward_match_torch(mod, shape, kernel, stride, padding, ceil_mode, block,
                                                   count_include_pad, divisor):
    x = distinct(shape, seed=len(shape) + shape[-1])
    out = out_size(shape, kernel, stride, padding, ceil_mode=ceil_mode)
    y = ce.nan_array(shape[:2] + out)
    geo = avg_pool_args(shape, out, kernel, stride, padding, count_include_pad, divisor)
    mod.launch("avg_pool2d_forward_f32", launch_grid(y.size, block), block, (x, y, *geo))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = F.avg_pool2d(xt, kernel, stride, padding, ceil_mode, count_include_pad, divisor or None)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)

    gy = np.random.default_rng(2).standard_normal(y.shape).astype(np.float32)
    gx = ce.nan_array(shape)
    mod.launch("avg_pool2d_backward_f32", launch_grid(gx.size, block), block, (gy, gx, *geo))
    yt.backward(torch.tensor(gy, dtype=torch.float64))
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_pool_kernels_under_address_sanitizer():
    asan = ce.load(POOL, sanitize="address")
    shape, kernel, stride, padding, dilation = (2, 1, 5, 7), (3, 3), (2, 2), (1, 1), (1, 2)
    x = distinct(shape)
    out = out_size(shape, kernel, stride, padding, dilation, True)
    geo = max_pool_args(shape, out, kernel, stride, padding, dilation)
    y, argmax = ce.nan_array(shape[:2] + out), np.zeros(shape[:2] + out, np.int64)
    asan.launch("max_pool2d_forward_f32", 1, 64, (x, y, argmax, *geo))
    gx = ce.nan_array(shape)
    asan.launch("max_pool2d_backward_f32", 2, 32, (np.ones_like(y), argmax, gx, *geo))
    xt = torch.tensor(x, requires_grad=True)
    yt = F.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode=True)
    yt.sum().backward()
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(gx, xt.grad.numpy())

    out = out_size(shape, kernel, stride, padding, ceil_mode=True)
    geo = avg_pool_args(shape, out, kernel, stride, padding, False, None)
    ya, gxa = ce.nan_array(shape[:2] + out), ce.nan_array(shape)
    asan.launch("avg_pool2d_forward_f32", 1, 64, (x, ya, *geo))
    asan.launch("avg_pool2d_backward_f32", 2, 32, (np.ones_like(ya), gxa, *geo))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    yt = F.avg_pool2d(xt, kernel, stride, padding, ceil_mode=True, count_include_pad=False)
    yt.sum().backward()
    np.testing.assert_allclose(ya, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gxa, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
