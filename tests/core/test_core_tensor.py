"""Tensor basics: dtype rules, devices, integer indexing, host copies."""
from __future__ import annotations

import re

import numpy as np
import pytest

import gpunet as gn
import gpunet.backend as gb
from gpunet.backend.numpy_backend import NumpyBackend


class OtherDevice(NumpyBackend):
    """A second NumPy backend posing as cuda:7, so device mixing can be tested on a CPU-only machine."""

    def __init__(self):
        self.device = gn.Device("cuda", 7)


@pytest.fixture
def other_device(monkeypatch):
    monkeypatch.setitem(gb._backends, gn.Device("cuda", 7), OtherDevice())
    return "cuda:7"


def test_mixing_devices_names_both(device, other_device):
    a = gn.tensor([1.0, 2.0])
    b = gn.tensor([3.0, 4.0], device=other_device)
    assert str(b.device) == "cuda:7"
    here = re.escape(str(gn.device(device)))
    message = rf"two devices, ({here} and cuda:7|cuda:7 and {here}).*\.to\("
    for op in (lambda: a + b, lambda: b * a, lambda: gn.cat([a, b]), lambda: a @ b, lambda: gn.where(a > 1, a, b)):
        with pytest.raises(gn.DeviceMismatchError, match=message):
            op()


def test_to_device_moves_data_and_gradients_flow_back(device, other_device):
    a = gn.tensor([1.0, 2.0], requires_grad=True)
    moved = a.to(other_device)
    assert str(moved.device) == "cuda:7" and a.to(device) is a
    (moved * moved).sum().backward()
    assert a.grad.device == gn.device(device)
    np.testing.assert_allclose(a.grad.numpy(), [2.0, 4.0])


def test_default_dtypes_follow_pytorch(device):
    assert gn.tensor([1.0, 2.0]).dtype == np.float32 and gn.tensor([1.0]).device == gn.device(device)
    assert gn.tensor(1.5).dtype == np.float32
    assert gn.tensor([1, 2]).dtype == np.int64
    assert gn.tensor([True]).dtype == np.bool_
    assert gn.tensor(np.zeros(2)).dtype == np.float64  # NumPy data keeps its dtype, as torch.tensor does
    assert gn.tensor([1.0], dtype=gn.float64).dtype == np.float64
    for make in (gn.zeros, gn.ones, gn.randn, gn.rand, gn.empty):
        assert make(2, 3).dtype == np.float32
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        gn.tensor([1, 2], requires_grad=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_python_and_numpy_scalars_keep_the_tensor_dtype(device, dtype):
    x = gn.tensor([1.0, 2.0], dtype=dtype)
    for scalar in (2, 2.5, np.float64(2.5), np.float32(2.5), np.int64(3)):
        for y in (x + scalar, scalar - x, x * scalar, scalar / x, x ** scalar, scalar ** x):
            assert y.dtype == dtype, (scalar, y.dtype)
    assert gn.where(x > 1, x, 0.0).dtype == dtype
    assert gn.clamp(x, 0.5, 1.5).dtype == dtype


def test_float64_end_to_end(device):
    rng = np.random.default_rng(0)
    x = gn.tensor(rng.standard_normal((4, 3)), dtype=gn.float64)
    w = gn.tensor(rng.standard_normal((2, 3)), dtype=gn.float64, requires_grad=True)
    b = gn.tensor(np.zeros(2), requires_grad=True)
    out = gn.log_softmax(gn.tanh(gn.ops.linear(x, w, b)), 1).mean()
    assert out.dtype == np.float64
    out.backward()
    assert w.grad.dtype == np.float64 and b.grad.dtype == np.float64
    (gw,) = gn.grad(gn.sigmoid(x @ w.T).sum(), w, create_graph=True)
    assert gw.dtype == np.float64


def test_matmul_and_linear_dtype_mismatch_errors(device):
    a = gn.tensor(np.ones((2, 3)), dtype=gn.float32)
    b = gn.tensor(np.ones((3, 2)), dtype=gn.float64)
    with pytest.raises(TypeError, match=r"matmul: operands have dtypes float32 and float64.*\.double\(\)"):
        a @ b
    with pytest.raises(TypeError, match=r"linear: input has dtype float32 but the weight has float64"):
        gn.ops.linear(a, b.T)


def test_matmul_shape_error_names_both_shapes(device):
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 2\) do not fit"):
        gn.ones(2, 3) @ gn.ones(4, 2)


def test_integer_indexing_and_item(device):
    data = np.arange(12.0).reshape(3, 4)
    x = gn.tensor(data)
    assert x[1, 2].item() == 6.0 and isinstance(x[1, 2].item(), float)
    assert x[-1, -1].item() == 11.0
    np.testing.assert_array_equal(x[1].numpy(), data[1])
    np.testing.assert_array_equal(x[gn.tensor([2, 0, 2])].numpy(), data[[2, 0, 2]])
    np.testing.assert_array_equal(x[x > 5].numpy(), data[data > 5])
    assert gn.tensor([7]).item() == 7 and isinstance(gn.tensor([7]).item(), int)
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element.*\(3, 4\)"):
        x.item()
    with pytest.raises(IndexError, match=r"indexing a tensor of shape \(3, 4\)"):
        x[3]


def test_numpy_and_tensor_make_copies(device):
    source = np.array([1.0, 2.0])
    x = gn.tensor(source)
    source[0] = 100.0
    assert x[0].item() == 1.0  # gn.tensor copied its input
    host = x.numpy()
    host[1] = -5.0
    assert x[1].item() == 2.0  # .numpy() is a copy
    view = x[::2]
    view_host = view.numpy()
    view_host[0] = 9.0
    assert x[0].item() == 1.0


def test_grad_of_integer_indexing_with_repeats_accumulates(device):
    x = gn.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[gn.tensor([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 0.0, 1.0])
