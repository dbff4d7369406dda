"""Pooling ops and layers on cpu and cuda-emu against PyTorch (values, indices, gradients, second derivatives) and
finite differences (gradcheck, gradgradcheck in float64)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import gpunet as gn
import gpunet.nn.functional as F
from gpunet.testing import gradcheck, gradgradcheck

F32 = dict(rtol=1e-5, atol=1e-5)


def distinct(shape, seed=0, dtype=np.float32):
    """Values without ties (max pooling's gradient is then well defined) spread over about [-2, 2]."""
    n = int(np.prod(shape))
    return ((np.random.default_rng(seed).permutation(n) - n / 2) * (4.0 / n)).reshape(shape).astype(dtype)


# name -> (gpunet layer, torch layer, input shape)
LAYERS = {
    "max2d": (gn.nn.MaxPool2d(2), torch.nn.MaxPool2d(2), (2, 3, 7, 6)),
    "max2d_pad_dil_ceil": (gn.nn.MaxPool2d((3, 2), (2, 1), (1, 1), (2, 1), ceil_mode=True),
                           torch.nn.MaxPool2d((3, 2), (2, 1), (1, 1), (2, 1), ceil_mode=True), (1, 2, 9, 5)),
    "max2d_unbatched": (gn.nn.MaxPool2d(3, 2, 1), torch.nn.MaxPool2d(3, 2, 1), (2, 5, 5)),
    "max1d": (gn.nn.MaxPool1d(3, 2, 1, ceil_mode=True), torch.nn.MaxPool1d(3, 2, 1, ceil_mode=True), (2, 3, 10)),
    "max1d_unbatched_dil": (gn.nn.MaxPool1d(2, dilation=3), torch.nn.MaxPool1d(2, dilation=3), (3, 9)),
    "avg2d": (gn.nn.AvgPool2d(2), torch.nn.AvgPool2d(2), (2, 3, 7, 6)),
    "avg2d_pad_ceil": (gn.nn.AvgPool2d(3, 2, 1, ceil_mode=True), torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True),
                       (1, 2, 6, 8)),
    "avg2d_exclude_pad": (gn.nn.AvgPool2d((3, 2), 1, (1, 1), count_include_pad=False),
                          torch.nn.AvgPool2d((3, 2), 1, (1, 1), count_include_pad=False), (2, 1, 4, 5)),
    "avg2d_divisor": (gn.nn.AvgPool2d(2, divisor_override=3), torch.nn.AvgPool2d(2, divisor_override=3),
                      (1, 2, 4, 4)),
    "avg1d": (gn.nn.AvgPool1d(4, 3, 2, ceil_mode=True, count_include_pad=False),
              torch.nn.AvgPool1d(4, 3, 2, ceil_mode=True, count_include_pad=False), (2, 2, 11)),
    "adaptive2d_global": (gn.nn.AdaptiveAvgPool2d(1), torch.nn.AdaptiveAvgPool2d(1), (2, 3, 5, 7)),
    "adaptive2d_uneven": (gn.nn.AdaptiveAvgPool2d((3, None)), torch.nn.AdaptiveAvgPool2d((3, None)), (1, 2, 7, 4)),
    "adaptive1d": (gn.nn.AdaptiveAvgPool1d(4), torch.nn.AdaptiveAvgPool1d(4), (2, 3, 10)),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_layer_values_and_gradients_match_torch(device, name):
    layer, reference, shape = LAYERS[name]
    data = distinct(shape, seed=len(name))
    x = gn.tensor(data, requires_grad=True)
    y = layer(x)
    xt = torch.tensor(data, requires_grad=True)
    yt = reference(xt)
    assert y.shape == tuple(yt.shape) and y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), **F32)
    gy = np.random.default_rng(3).standard_normal(y.shape).astype(np.float32)
    y.backward(gn.tensor(gy))
    yt.backward(torch.tensor(gy))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), **F32)


@pytest.mark.parametrize("fn, args", [
    (F.max_pool2d, dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 1), ceil_mode=True)),
    (F.max_pool1d, dict(kernel_size=3, stride=2, padding=1, dilation=2)),
])
def test_return_indices_equal_torch(device, fn, args):
    data = distinct((2, 3, 6, 7) if fn is F.max_pool2d else (2, 3, 12), seed=5)
    y, indices = fn(gn.tensor(data), return_indices=True, **args)
    yt, it = getattr(TF, fn.__name__)(torch.tensor(data), return_indices=True, **args)
    assert indices.dtype == np.int64 and indices.shape == tuple(it.shape)
    np.testing.assert_array_equal(indices.numpy(), it.numpy())
    np.testing.assert_array_equal(y.numpy(), yt.numpy())


def test_layer_with_return_indices_returns_both():
    y, indices = gn.nn.MaxPool2d(2, return_indices=True)(gn.tensor(distinct((1, 1, 4, 4))))
    assert y.shape == indices.shape == (1, 1, 2, 2)


CHECKS = {  # name -> function of one float64 tensor
    "max2d": lambda x: F.max_pool2d(x, 2, 1, 1, ceil_mode=True),
    "max2d_dilated": lambda x: F.max_pool2d(x, (2, 2), (2, 1), (1, 0), (2, 1)),
    "max1d": lambda x: F.max_pool1d(x.reshape(2, 2, 10), 3, 2, 1),
    "avg2d": lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True),
    "avg2d_exclude_pad": lambda x: F.avg_pool2d(x, 2, 1, 1, count_include_pad=False),
    "adaptive2d": lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
}


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_gradcheck_and_gradgradcheck(device, name):
    x = gn.tensor(distinct((1, 2, 5, 4), seed=len(name), dtype=np.float64), dtype=gn.float64, requires_grad=True)
    assert gradcheck(CHECKS[name], (x,))
    assert gradgradcheck(CHECKS[name], (x,))


def test_second_derivative_through_max_pool_backward_matches_torch(device):
    """d/d(gy) of <grad_x(<y, gy>), v>: gy gathered by argmax (the backward's backward), as torch's double backward."""
    data = distinct((1, 2, 5, 5), seed=9, dtype=np.float64)
    v = np.random.default_rng(4).standard_normal(data.shape)
    x = gn.tensor(data, dtype=gn.float64, requires_grad=True)
    y = F.max_pool2d(x, 3, 2, 1)
    gy = gn.tensor(np.ones(y.shape), dtype=gn.float64, requires_grad=True)
    (gx,) = gn.grad(y, x, gy, create_graph=True)
    (ggy,) = gn.grad((gx * gn.tensor(v, dtype=gn.float64)).sum(), gy)
    xt = torch.tensor(data, requires_grad=True)
    yt = TF.max_pool2d(xt, 3, 2, 1)
    gyt = torch.ones_like(yt, requires_grad=True)
    (gxt,) = torch.autograd.grad(yt, xt, gyt, create_graph=True)
    (ggyt,) = torch.autograd.grad((gxt * torch.tensor(v)).sum(), gyt)
    np.testing.assert_allclose(gx.numpy(), gxt.detach().numpy())
    np.testing.assert_allclose(ggy.numpy(), ggyt.numpy())


def test_overlapping_windows_sum_their_gradients(device):
    """A maximum shared by four windows (stride 1) gets the sum of their four output gradients."""
    data = np.zeros((1, 1, 3, 3), np.float32)
    data[0, 0, 1, 1] = 5.0
    x = gn.tensor(data, requires_grad=True)
    y = F.max_pool2d(x, 2, 1)
    y.backward(gn.tensor(np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)))
    expected = np.zeros((1, 1, 3, 3), np.float32)
    expected[0, 0, 1, 1] = 10.0
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_cpu_and_cuda_emu_agree_on_a_random_odd_shape():
    rng = np.random.default_rng(11)
    data = rng.standard_normal((3, 5, 13, 11)).astype(np.float32)
    results = {}
    for device in ("cpu", "cuda-emu"):
        x = gn.tensor(data, device=device, requires_grad=True)
        y = F.max_pool2d(x, 3, 2, 1, ceil_mode=True) + F.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
        y.sum().backward()
        results[device] = (y.numpy(), x.grad.numpy())
    for cpu, emu in zip(results["cpu"], results["cuda-emu"]):
        np.testing.assert_allclose(emu, cpu, rtol=1e-6, atol=1e-6)


def test_layers_have_torch_defaults_and_no_parameters():
    pool = gn.nn.MaxPool2d(3)
    assert (pool.stride, pool.padding, pool.dilation, pool.return_indices, pool.ceil_mode) == (3, 0, 1, False, False)
    avg = gn.nn.AvgPool2d(2)
    assert (avg.stride, avg.padding, avg.ceil_mode, avg.count_include_pad, avg.divisor_override) == (2, 0, False, True,
                                                                                                      None)
    assert gn.nn.AvgPool1d(4, 2).stride == 2
    assert pool.state_dict() == {} and list(pool.parameters()) == []
    assert repr(pool) == "MaxPool2d(kernel_size=3, stride=3, padding=0, dilation=1, ceil_mode=False)"


@pytest.mark.parametrize("call, message", [
    (lambda x: F.max_pool2d(x, 3, padding=2), "padding should be at most half of kernel size"),
    (lambda x: F.max_pool2d(x, 2, padding=2, dilation=3), "padding should be at most half of kernel size"),
    (lambda x: F.max_pool2d(x, 2, stride=0), "stride must be >= 1"),
    (lambda x: F.max_pool2d(x, (2, 2, 2)), "kernel_size must be an int or a tuple of 2 ints"),
    (lambda x: F.max_pool2d(x, 7), "too small"),
    (lambda x: F.max_pool1d(x, 2), r"input must be \(N, C, L\) or \(C, L\)"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), "divisor_override must be a positive int"),
    (lambda x: F.adaptive_avg_pool2d(x, 0), "output_size must be a positive int"),
])
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call(gn.zeros(1, 1, 5, 5))


def test_integer_input_is_refused_with_a_hint():
    with pytest.raises(TypeError, match=r"floating point.*\.float\(\)"):
        F.max_pool2d(gn.zeros(1, 1, 4, 4, dtype=gn.int64), 2)


def _random_geometry(rng):
    k = tuple(int(v) for v in rng.integers(1, 4, 2))
    d = tuple(int(v) for v in rng.integers(1, 3, 2))
    p = tuple(int(rng.integers(0, k[a] // 2 + 1)) for a in (0, 1))
    s = tuple(int(v) for v in rng.integers(1, 4, 2))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), *(int(v) for v in rng.integers(d[0] * (k[0] - 1) + 1, 12, 2)))
    return shape, k, s, p, d, bool(rng.integers(0, 2))


@pytest.mark.parametrize("seed", range(12))
def test_random_geometries_agree_with_torch_on_both_devices(seed):
    rng = np.random.default_rng(seed)
    shape, k, s, p, d, ceil_mode = _random_geometry(rng)
    data = distinct(shape, seed)
    xt = torch.tensor(data, requires_grad=True)
    yt, it = TF.max_pool2d(xt, k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
    avg_p = tuple(min(p[a], k[a] // 2) for a in (0, 1))
    at = TF.avg_pool2d(xt, k, s, avg_p, ceil_mode=ceil_mode, count_include_pad=bool(seed % 2))
    gy, ga = rng.standard_normal(yt.shape).astype(np.float32), rng.standard_normal(at.shape).astype(np.float32)
    ((yt * torch.tensor(gy)).sum() + (at * torch.tensor(ga)).sum()).backward()
    for device in ("cpu", "cuda-emu"):
        x = gn.tensor(data, device=device, requires_grad=True)
        y, i = F.max_pool2d(x, k, s, p, d, ceil_mode=ceil_mode, return_indices=True)
        a = F.avg_pool2d(x, k, s, avg_p, ceil_mode=ceil_mode, count_include_pad=bool(seed % 2))
        ((y * gn.tensor(gy, device=device)).sum() + (a * gn.tensor(ga, device=device)).sum()).backward()
        np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
        np.testing.assert_array_equal(i.numpy(), it.numpy())
        np.testing.assert_allclose(a.numpy(), at.detach().numpy(), **F32)
        np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), **F32)
