"""Convolution ops and layers against PyTorch (values and gradients, float32 on every device against float64
torch), finite differences to second order, PyTorch's initialisation and state_dict layout, and the errors."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import gpunet as gn
import gpunet.nn.functional as F
from gpunet import nn
from gpunet.testing import gradcheck, gradgradcheck

TF = torch.nn.functional
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's notice

CONV2D_CASES = [  # x shape, weight shape, keyword arguments
    ((2, 3, 7, 6), (4, 3, 3, 3), dict(padding=1)),
    ((2, 4, 9, 8), (6, 2, 3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
    ((1, 2, 8, 7), (3, 2, 2, 4), dict(padding="same", dilation=(2, 1))),  # odd total padding: PyTorch pads right
    ((3, 5, 6), (2, 3, 3, 3), dict(padding="valid", stride=2)),  # unbatched input
    ((2, 2, 5, 5), (3, 2, 5, 5), dict()),  # kernel = input size
    ((2, 4, 5, 4), (4, 1, 1, 1), dict(groups=4, stride=3)),  # depthwise 1x1
]
CONV1D_CASES = [
    ((2, 3, 11), (4, 3, 3), dict(padding=1)),
    ((1, 4, 12), (6, 2, 4), dict(stride=2, padding=3, dilation=2, groups=2)),
    ((3, 9), (2, 3, 2), dict(padding="same")),  # unbatched, even kernel
]


def _data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


def _compare_with_torch(ours, theirs, x_shape, w_shape, kwargs, bias=True, seed=0):
    """Forward and every gradient of ours(x, w, b) (float32 on the current device) against torch in float64."""
    x, w, b = _data(x_shape, seed), _data(w_shape, seed + 1), _data(w_shape[0] if ours is not F.conv_transpose2d
                                                                         else w_shape[1] * kwargs.get("groups", 1),
                                                                         seed + 2)
    gx, gw, gb = (gn.tensor(v, dtype=gn.float32, requires_grad=True) for v in (x, w, b))
    tx, tw, tb = (torch.tensor(v, requires_grad=True) for v in (x, w, b))
    y = ours(gx, gw, gb if bias else None, **kwargs)
    ty = theirs(tx, tw, tb if bias else None, **kwargs)
    assert y.shape == tuple(ty.shape) and y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-4)
    gy = _data(y.shape, seed + 3)
    y.backward(gn.tensor(gy, dtype=gn.float32))
    ty.backward(torch.tensor(gy))
    for mine, ref in ((gx, tx), (gw, tw)) + (((gb, tb),) if bias else ()):
        np.testing.assert_allclose(mine.grad.numpy(), ref.grad.numpy(), rtol=1e-4, atol=1e-4)
    if not bias:
        assert gb.grad is None


@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV2D_CASES)
def test_conv2d_values_and_gradients_match_torch(device, x_shape, w_shape, kwargs):
    _compare_with_torch(F.conv2d, TF.conv2d, x_shape, w_shape, kwargs)


@pytest.mark.parametrize("x_shape, w_shape, kwargs", CONV1D_CASES)
def test_conv1d_values_and_gradients_match_torch(device, x_shape, w_shape, kwargs):
    _compare_with_torch(F.conv1d, TF.conv1d, x_shape, w_shape, kwargs)


def test_conv_without_bias_matches_torch(device):
    _compare_with_torch(F.conv2d, TF.conv2d, (2, 4, 6, 5), (2, 2, 3, 3), dict(groups=2, padding=1), bias=False)


@pytest.mark.parametrize("x_shape, w_shape, kwargs", [
    ((2, 4, 5, 6), (4, 3, 3, 2), dict(stride=2, padding=1, output_padding=1, groups=2, dilation=(1, 2))),
    ((1, 3, 4, 4), (3, 2, 2, 2), dict(stride=2)),
    ((3, 3, 5), (3, 2, 3, 3), dict(padding=1)),  # unbatched
])
def test_conv_transpose2d_matches_torch(device, x_shape, w_shape, kwargs):
    _compare_with_torch(F.conv_transpose2d, TF.conv_transpose2d, x_shape, w_shape, kwargs)


def test_unfold_and_fold_match_torch(device):
    x = _data((2, 3, 7, 8), 0)
    args = dict(kernel_size=(2, 3), dilation=(1, 2), padding=1, stride=(2, 1))
    cols = F.unfold(gn.tensor(x, dtype=gn.float32), **args)
    expected = TF.unfold(torch.tensor(x), **args)
    np.testing.assert_allclose(cols.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)
    back = F.fold(cols, (7, 8), **args)
    np.testing.assert_allclose(back.numpy(), TF.fold(expected, (7, 8), **args).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("fn", [
    lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2),
    lambda x, w, b: F.conv2d(x, w, b, padding="same", dilation=(1, 2), groups=2),
    lambda x, w, b: F.conv1d(x[:, :, 0], w[:, :, 0], b, stride=2, padding=1, groups=2),
    lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1, groups=2),
], ids=["conv2d", "conv2d-same", "conv1d", "conv_transpose2d"])
def test_first_and_second_derivatives_match_finite_differences(device, fn):
    x = gn.tensor(_data((2, 4, 4, 3), 0), dtype=gn.float64, requires_grad=True)
    w = gn.tensor(_data((4, 2, 2, 2), 1), dtype=gn.float64, requires_grad=True)
    b = gn.tensor(_data(4, 2), dtype=gn.float64, requires_grad=True)
    assert gradcheck(fn, (x, w, b))
    assert gradgradcheck(fn, (x, w, b))


def test_empty_batch_gives_empty_outputs_and_zero_parameter_gradients(device):
    x = gn.randn(0, 4, 5, 5, requires_grad=True)
    w, b = gn.randn(6, 2, 3, 3, requires_grad=True), gn.randn(6, requires_grad=True)
    y = F.conv2d(x, w, b, padding=1, groups=2)
    y.sum().backward()
    assert y.shape == (0, 6, 5, 5) and x.grad.shape == (0, 4, 5, 5)
    assert not w.grad.numpy().any() and not b.grad.numpy().any()


def test_backends_agree_in_float32(device):
    gn.manual_seed(3)
    layer = nn.Conv2d(3, 5, (3, 2), stride=(1, 2), padding=(2, 1), dilation=(2, 1), device="cpu")
    x = _data((2, 3, 9, 8), 4).astype(np.float32)
    reference = layer(gn.tensor(x, device="cpu"))
    reference.sum().backward()
    expected_grad = layer.weight.grad.numpy()
    layer.zero_grad()
    layer.to(device)
    y = layer(gn.tensor(x))
    y.sum().backward()
    np.testing.assert_allclose(y.numpy(), reference.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer.weight.grad.numpy(), expected_grad, rtol=1e-5, atol=1e-4)


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 2), groups=st.integers(1, 2), cin=st.integers(1, 2), cout=st.integers(1, 2),
       size=st.tuples(st.integers(1, 7), st.integers(1, 7)), kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), seed=st.integers(0, 2**16))
def test_random_geometries_agree_on_both_devices_and_with_torch(n, groups, cin, cout, size, kernel, stride, padding,
                                                                 dilation, seed):
    if any(s + 2 * p < d * (k - 1) + 1 for s, k, p, d in zip(size, kernel, padding, dilation)):
        return  # the kernel does not fit: the error is tested below
    x = _data((n, cin * groups) + size, seed).astype(np.float32)
    w = _data((cout * groups, cin) + kernel, seed + 1).astype(np.float32)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    tx, tw = torch.tensor(x, dtype=torch.float64, requires_grad=True), torch.tensor(w, dtype=torch.float64,
                                                                                    requires_grad=True)
    ty = TF.conv2d(tx, tw, **args)
    gy = _data(tuple(ty.shape), seed + 2).astype(np.float32)
    ty.backward(torch.tensor(gy, dtype=torch.float64))
    for device in ("cpu", "cuda-emu"):
        gx, gw = gn.tensor(x, device=device, requires_grad=True), gn.tensor(w, device=device, requires_grad=True)
        y = F.conv2d(gx, gw, **args)
        y.backward(gn.tensor(gy, device=device))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-4, atol=1e-5, err_msg=device)
        np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=device)
        np.testing.assert_allclose(gw.grad.numpy(), tw.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=device)


def test_second_derivatives_in_float32_match_torch(device):
    """The double-backward graph (Im2Col and Col2Im nodes, float32 kernels on cuda-emu) against torch's."""
    x, w = _data((2, 4, 6, 5), 0), _data((4, 2, 3, 2), 1)
    args = dict(stride=(2, 1), padding=1, dilation=(1, 2), groups=2)
    gx, gw = (gn.tensor(v, dtype=gn.float32, requires_grad=True) for v in (x, w))
    tx, tw = (torch.tensor(v, requires_grad=True) for v in (x, w))
    results = []
    for lib, fn, a, b in ((gn, F.conv2d, gx, gw), (torch, TF.conv2d, tx, tw)):
        y = fn(a, b, **args)
        ga, gb = (gn.grad if lib is gn else torch.autograd.grad)((y * y).sum(), (a, b), create_graph=True)
        penalty = (ga * ga).sum() + (gb * gb * gb).sum()
        results.append([g.numpy() if lib is gn else g.detach().numpy()
                         for g in (gn.grad if lib is gn else torch.autograd.grad)(penalty, (a, b))])
    for mine, ref in zip(*results):
        np.testing.assert_allclose(mine, ref, rtol=2e-4, atol=2e-3 * np.abs(ref).max())


# ----- layers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ours, theirs, args, kwargs", [
    (nn.Conv2d, torch.nn.Conv2d, (3, 8, 3), dict(padding="same")),
    (nn.Conv2d, torch.nn.Conv2d, (4, 6, (3, 2)), dict(stride=2, padding=(1, 0), dilation=(2, 1), groups=2,
                                                      bias=False)),
    (nn.Conv1d, torch.nn.Conv1d, (4, 6, 5), dict(stride=2, groups=2)),
    (nn.ConvTranspose2d, torch.nn.ConvTranspose2d, (4, 6, 3), dict(stride=2, output_padding=1, groups=2)),
])
def test_layers_repr_state_dict_and_outputs_match_torch(ours, theirs, args, kwargs):
    torch.manual_seed(0)
    mine, ref = ours(*args, **kwargs), theirs(*args, **kwargs)
    assert repr(mine) == repr(ref)
    assert list(mine.state_dict()) == list(ref.state_dict())
    assert {k: v.shape for k, v in mine.state_dict().items()} == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    mine.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = _data((2, args[0], 9, 8)[: 3 if ours is nn.Conv1d else 4], 5).astype(np.float32)
    np.testing.assert_allclose(mine(gn.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)
    # and back: our weights into torch
    mine.reset_parameters()
    ref.load_state_dict({k: torch.tensor(v) for k, v in mine.state_dict().items()})
    np.testing.assert_allclose(mine(gn.tensor(x)).numpy(), ref(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-5)


def test_conv_transpose2d_output_size_picks_the_output_padding():
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(3, 2, 3, stride=(2, 3), padding=1)
    mine = nn.ConvTranspose2d(3, 2, 3, stride=(2, 3), padding=1)
    mine.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = _data((1, 3, 4, 5), 0).astype(np.float32)
    for size in ((7, 13), (8, 15), (1, 2, 8, 14)):
        expected = ref(torch.tensor(x), output_size=size).detach().numpy()
        y = mine(gn.tensor(x), output_size=size)
        assert y.shape == expected.shape
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"ConvTranspose2d\(3, 2.*output_size \(9, 13\) is not reachable from "
                                         r"input \(1, 3, 4, 5\)"):
        mine(gn.tensor(x), output_size=(9, 13))


def test_default_initialisation_is_pytorchs():
    gn.manual_seed(0)
    layer = nn.Conv2d(6, 64, (5, 4), groups=2)
    fan_in = 3 * 5 * 4
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) and the bias rule both give 1/sqrt(fan_in)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert w.shape == (64, 3, 5, 4) and b.shape == (64,) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound  # the std of U(-a, a) is a / sqrt(3)
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.8 * bound
    transposed = nn.ConvTranspose2d(4, 6, 3, groups=2)  # fan_in from weight.shape[1:] = 3 * 3 * 3, as PyTorch
    assert np.abs(transposed.bias.numpy()).max() <= 1 / math.sqrt(27)


def test_small_cnn_learns(device):
    """The digits CNN of seed 001 in miniature: loss falls on a fixed batch."""
    gn.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding="same"), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    x = gn.tensor(_data((6, 1, 6, 6), 0), dtype=gn.float32)
    target = gn.tensor(np.array([0, 1, 2, 0, 1, 2]))
    optimizer = gn.optim.SGD(net.parameters(), lr=0.1)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = F.cross_entropy(net(x), target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ----- errors -----------------------------------------------------------------------------------------------
def test_layer_errors_name_the_layer_and_both_shapes():
    layer = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 4, kernel_size=\(3, 3\).*\(2, 5, 8, 8\) has 5 channels.*"
                                         r"\(4, 3, 3, 3\).*in_channels = 3"):
        layer(gn.randn(2, 5, 8, 8))
    with pytest.raises(ValueError, match=r"Conv2d.*padded input \(2x8\) of input \(1, 3, 2, 8\) is smaller than "
                                         r"the dilated kernel \(3x3\) of weight \(4, 3, 3, 3\)"):
        layer(gn.randn(1, 3, 2, 8))
    with pytest.raises(ValueError, match=r"Conv1d.*input must be 3-D \(N, C, L\).*got shape \(2, 3, 4, 5\)"):
        nn.Conv1d(3, 4, 3)(gn.randn(2, 3, 4, 5))
    with pytest.raises(ValueError, match=r"conv2d: out_channels = 5 \(weight \(5, 2, 3, 3\)\) is not divisible by "
                                         r"groups = 2"):
        F.conv2d(gn.randn(1, 4, 5, 5), gn.randn(5, 2, 3, 3), groups=2)
    with pytest.raises(TypeError, match=r"conv2d: input has dtype float64 but the weight has float32"):
        F.conv2d(gn.randn(1, 3, 5, 5, dtype=gn.float64), gn.randn(2, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(2,\)"):
        F.conv2d(gn.randn(1, 3, 5, 5), gn.randn(2, 3, 3, 3), gn.randn(3))


def test_argument_errors():
    with pytest.raises(ValueError, match=r"Conv2d: in_channels must be divisible by groups = 2, got 3"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(NotImplementedError, match=r"padding_mode='reflect' is not supported.*only 'zeros'"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"padding_mode must be one of"):
        nn.Conv1d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match=r"padding='same' is not supported for strided convolutions"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match=r"padding must be an int, a tuple of 2 int\(s\), 'same' or 'valid'"):
        F.conv2d(gn.randn(1, 3, 5, 5), gn.randn(2, 3, 3, 3), padding="full")
    with pytest.raises(ValueError, match=r"Conv2d: kernel_size must be an integer >= 1 or a list of 2 \(an integer >= 1\), "
                                         r"got \(3, 3, 3\)"):
        nn.Conv2d(3, 4, (3, 3, 3))
    with pytest.raises(ValueError, match=r"conv1d: stride must be >= 1, got 0"):
        F.conv1d(gn.randn(1, 3, 5), gn.randn(2, 3, 3), stride=0)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: output_padding must be smaller than stride \(2\)"):
        nn.ConvTranspose2d(3, 4, 3, stride=2, output_padding=2)
