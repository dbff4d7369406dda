"""The NumPy pooling fast paths give exactly the results of the general window scan, and PyTorch's: max pooling
over tiling windows forward and disjoint windows backward (values, argmax indices: first maximum on ties, last
NaN; gradients), average pooling over tiling windows forward and backward (PyTorch's summation order)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gpunet.backend.references import pool as P


def tie_heavy(shape, seed, dtype=np.float32, nan=True, negative_zero=True):
    """Small integers (many ties), some NaN, some -inf, some signed zeros, and one window of only -inf."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    x[rng.random(shape) < 0.05 * nan] = np.nan
    x[rng.random(shape) < 0.05] = -np.inf
    x[(x == 0) & (rng.random(shape) < 0.5 * negative_zero)] = -0.0
    x[0, 0, :2, :2] = -np.inf
    return x


KINDS = {  # the tiled forward's paths: the scan (NaN), the reduction with values from the choices (-0.0), without
    "nan": dict(nan=True), "negative zero": dict(nan=False), "numbers": dict(nan=False, negative_zero=False)}


TILED = [  # x shape, kernel: stride == kernel, no padding, dilation 1
    ((3, 4, 8, 8), (2, 2)),
    ((2, 3, 9, 7), (2, 2)),       # odd sizes: the last row / column is not pooled
    ((2, 2, 9, 12), (3, 4)),
    ((1, 3, 6, 5), (1, 1)),
    ((4, 1, 4, 10), (4, 5)),      # one window per column of windows
]


def windowed(x, kernel, stride=None, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    stride = stride or kernel
    out = P._out_shape(x.shape, kernel, stride, padding, dilation, ceil_mode)
    return P._windowed_max_pool2d(np, x, out, kernel, stride, padding, dilation)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape, kernel", TILED)
def test_tiled_forward_equals_the_window_scan_and_torch(shape, kernel, seed, dtype, kind):
    x = tie_heavy(shape, seed, dtype, **KINDS[kind])
    assert np.isnan(x).any() == (kind == "nan") and (np.signbit(x) & (x == 0)).any() == (kind != "numbers")
    assert P._tiles(x.shape, P._out_shape(x.shape, kernel, kernel, (0, 0), (1, 1), False), kernel, kernel, (0, 0),
                    (1, 1))
    y, index = P.max_pool2d(np, x, kernel, kernel, (0, 0), (1, 1))
    y_ref, index_ref = windowed(x, kernel)
    np.testing.assert_array_equal(index, index_ref)
    np.testing.assert_array_equal(y, y_ref)                               # NaN where NaN
    assert (np.signbit(y) == np.signbit(y_ref)).all()                     # -0.0 where -0.0
    assert y.dtype == x.dtype and index.dtype == np.int64
    yt, it = F.max_pool2d(torch.tensor(x), kernel, return_indices=True)
    np.testing.assert_array_equal(index, it.numpy())
    np.testing.assert_array_equal(y, yt.numpy())


def test_nan_and_ties_pick_torchs_positions():
    x = np.array([[[[1.0, np.nan, 5.0, 5.0, -np.inf, -np.inf],
                    [np.nan, 0.0, 5.0, 5.0, -np.inf, -np.inf]]]], np.float32)
    y, index = P.max_pool2d(np, x, (2, 2), (2, 2), (0, 0), (1, 1))
    assert np.isnan(y[0, 0, 0, 0]) and y[0, 0, 0, 1:].tolist() == [5.0, -np.inf]
    assert index[0, 0, 0].tolist() == [6, 2, 4]  # the last NaN, the first 5, the first -inf


GEOMETRIES = [  # x shape, kernel, stride, padding, dilation, ceil_mode: disjoint windows
    ((3, 4, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((2, 3, 9, 7), (2, 2), (2, 2), (1, 1), (1, 1), True),     # padding and a last partial window
    ((2, 2, 11, 10), (2, 3), (3, 4), (1, 0), (1, 1), False),  # stride > kernel: gaps between windows
    ((2, 2, 12, 12), (2, 2), (3, 3), (0, 1), (2, 2), True),   # dilation 2 with stride 3
]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode", GEOMETRIES)
def test_disjoint_backward_equals_the_window_sum_and_torch(shape, kernel, stride, padding, dilation, ceil_mode, seed):
    x = tie_heavy(shape, seed)
    y, index = P.max_pool2d(np, x, kernel, stride, padding, dilation, ceil_mode)
    gy = np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32)
    gy[..., 0] = -0.0
    gx = P.max_pool2d_backward(np, gy, index, x.shape, kernel, stride, padding, dilation)
    gx_ref = P._windowed_max_pool2d_backward(np, gy, index, x.shape, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(gx, gx_ref)
    assert (np.signbit(gx) == np.signbit(gx_ref)).all() and gx.dtype == np.float32 and gx.flags.c_contiguous
    xt = torch.tensor(x, requires_grad=True)
    yt, it = F.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode=ceil_mode, return_indices=True)
    np.testing.assert_array_equal(index, it.numpy())
    yt.backward(torch.tensor(gy))
    np.testing.assert_array_equal(gx, xt.grad.numpy())


def test_the_fast_paths_are_the_ones_taken(monkeypatch):
    def general(*args):
        raise AssertionError("general path taken")

    monkeypatch.setattr(P, "_windowed_max_pool2d", general)
    monkeypatch.setattr(P, "_windowed_max_pool2d_backward", general)
    x = tie_heavy((2, 3, 8, 8), 0)
    y, index = P.max_pool2d(np, x, (2, 2), (2, 2), (0, 0), (1, 1))
    P.max_pool2d_backward(np, np.ones_like(y), index, x.shape, (2, 2), (2, 2), (0, 0), (1, 1))
    with pytest.raises(AssertionError, match="general path"):  # overlapping windows still take the scan
        P.max_pool2d(np, x, (3, 3), (2, 2), (0, 0), (1, 1))


@pytest.mark.parametrize("divisor_override", [None, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, kernel", TILED)
def test_tiled_avg_pool_equals_the_window_sum_and_torch(shape, kernel, dtype, divisor_override):
    rng = np.random.default_rng(sum(shape))
    x = rng.standard_normal(shape).astype(dtype)
    out = P._out_shape(x.shape, kernel, kernel, (0, 0), (1, 1), False)
    y = P.avg_pool2d(np, x, kernel, kernel, (0, 0), divisor_override=divisor_override)
    y_ref = P._windowed_avg_pool2d(np, x, out, kernel, kernel, (0, 0), True, divisor_override)
    tol = 1e-6 if dtype == np.float32 else 1e-14  # the scan sums in another order
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    assert y.dtype == dtype and y.flags.c_contiguous
    gy = rng.standard_normal(y.shape).astype(dtype)
    gy[..., 0] = -0.0
    gx = P.avg_pool2d_backward(np, gy, x.shape, kernel, kernel, (0, 0), divisor_override=divisor_override)
    gx_ref = P._windowed_avg_pool2d_backward(np, gy, x.shape, kernel, kernel, (0, 0), True, divisor_override)
    np.testing.assert_array_equal(gx, gx_ref)
    assert (np.signbit(gx) == np.signbit(gx_ref)).all() and gx.dtype == dtype and gx.flags.c_contiguous
    xt = torch.tensor(x, requires_grad=True)
    yt = F.avg_pool2d(xt, kernel, divisor_override=divisor_override)
    np.testing.assert_array_equal(y, yt.detach().numpy())                 # PyTorch's (i, j) summation order
    yt.backward(torch.tensor(gy))
    np.testing.assert_array_equal(gx, xt.grad.numpy())
    assert (np.signbit(gx) == np.signbit(xt.grad.numpy())).all()


def test_the_avg_fast_paths_are_the_ones_taken(monkeypatch):
    def general(*args):
        raise AssertionError("general path taken")

    monkeypatch.setattr(P, "_windowed_avg_pool2d", general)
    monkeypatch.setattr(P, "_windowed_avg_pool2d_backward", general)
    x = np.ones((2, 3, 8, 8), np.float32)
    y = P.avg_pool2d(np, x, (2, 2), (2, 2), (0, 0))
    P.avg_pool2d_backward(np, np.ones_like(y), x.shape, (2, 2), (2, 2), (0, 0))
    for stride, padding, ceil_mode in (((1, 1), (0, 0), False), ((2, 2), (1, 1), False), ((3, 3), (0, 0), True)):
        with pytest.raises(AssertionError, match="general path"):  # overlap, padding, a partial last window
            P.avg_pool2d(np, np.ones((2, 3, 8, 8), np.float32), (2, 2) if stride != (3, 3) else (3, 3), stride,
                         padding, ceil_mode=ceil_mode)


@pytest.mark.parametrize("op", ["max", "avg"])
def test_tiled_paths_on_the_emulated_device_equal_torch(op):
    """float64 on cuda-emu runs these references through the emulated array module (CuPy's API)."""
    import gpunet as gn

    shape = (3, 4, 9, 8)
    x = tie_heavy(shape, 1, np.float64) if op == "max" else np.random.default_rng(1).standard_normal(shape)
    ours = gn.nn.functional.max_pool2d if op == "max" else gn.nn.functional.avg_pool2d
    theirs = F.max_pool2d if op == "max" else F.avg_pool2d
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt, 2)
    gy = np.random.default_rng(2).standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(gy))
    t = gn.tensor(x, device="cuda-emu", requires_grad=True)
    y = ours(t, 2)
    y.backward(gn.tensor(gy, device="cuda-emu"))
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    np.testing.assert_array_equal(t.grad.numpy(), xt.grad.numpy())
