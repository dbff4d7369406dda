"""Edge cases of the ops against PyTorch: shape errors, large magnitudes, -inf, ties, empty and 0-d reductions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gpunet as gn


@pytest.mark.parametrize("name, op", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a ** b),
])
def test_broadcast_errors_name_the_op_and_both_shapes(device, name, op):
    with pytest.raises(ValueError, match=rf"{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast together"):
        op(gn.ones(2, 3), gn.ones(4))


def test_where_and_batched_matmul_shape_errors(device):
    with pytest.raises(ValueError, match=r"where: condition of shape \(5,\) and values of shapes \(2, 3\) and \(\)"):
        gn.where(gn.ones(5) > 0, gn.ones(2, 3), 0.0)
    with pytest.raises(ValueError, match=r"matmul: the batch dimensions of shapes \(2, 3, 4\) and \(3, 4, 5\)"):
        gn.ones(2, 3, 4) @ gn.ones(3, 4, 5)


def _both(fn, data, dtype=np.float32):
    x = gn.tensor(np.asarray(data, dtype=dtype), requires_grad=True)
    tx = torch.tensor(np.asarray(data, dtype=dtype), requires_grad=True)
    y, ty = fn(gn, x), fn(torch, tx)
    return x, y, tx, ty


@pytest.mark.parametrize("name, fn", [
    ("softmax", lambda M, x: M.softmax(x, 1)), ("log_softmax", lambda M, x: M.log_softmax(x, 1)),
    ("logsumexp", lambda M, x: M.logsumexp(x, 1)), ("sigmoid", lambda M, x: M.sigmoid(x)),
    ("tanh", lambda M, x: M.tanh(x)),
])
def test_large_magnitudes_stay_finite_and_match_torch(device, name, fn):
    data = [[1000.0, -1000.0, 0.0, 999.0], [-1000.0, -1000.0, -999.5, -1000.0]]
    x, y, _, _ = _both(fn, data)  # float32
    _, _, tx, ty = _both(fn, data, np.float64)  # the reference, in float64
    assert np.isfinite(y.numpy()).all(), name
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    weights = np.arange(y.numel(), dtype=np.float32).reshape(y.shape)
    (y * gn.tensor(weights)).sum().backward()
    (ty * torch.tensor(weights, dtype=torch.float64)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_logsumexp_of_minus_infinity_rows(device):
    data = [[-np.inf, -np.inf, -np.inf], [-np.inf, 0.0, 1.0]]
    x, y, tx, ty = _both(lambda M, t: M.logsumexp(t, 1), data, np.float64)
    np.testing.assert_array_equal(y.numpy()[0], -np.inf)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy())
    y[1].backward()
    ty[1].backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())


def test_max_and_min_gradients_with_ties_match_torch(device):
    data = [[1.0, 3.0, 3.0, 2.0], [0.0, 0.0, -1.0, 0.0]]
    for kind in ("max", "min"):
        x, y, tx, ty = _both(lambda M, t: getattr(M, kind)(t), data)
        y.backward()
        ty.backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())  # shared evenly between tied elements
        x, y, tx, ty = _both(lambda M, t: getattr(M, kind)(t, 1)[0].sum(), data)
        y.backward()
        ty.backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
        np.testing.assert_array_equal(getattr(gn, kind)(x, 1).indices.numpy(), getattr(torch, kind)(tx, 1).indices)


def test_reductions_over_no_dims_and_of_0d_tensors_match_torch(device):
    data = np.arange(6.0).reshape(2, 3)
    for dim in ((), []):
        assert gn.tensor(data).sum(dim).item() == torch.tensor(data).sum(dim).item() == 15.0
        assert gn.mean(gn.tensor(data), dim).item() == 2.5
    scalar = gn.tensor(2.0, requires_grad=True)
    for dim in (0, -1):
        assert scalar.sum(dim).item() == 2.0 and scalar.mean(dim, keepdim=True).shape == ()
    with pytest.raises(IndexError, match=r"sum: dim 1 is out of range for a tensor with 0 dimension"):
        scalar.sum(1)


def test_empty_tensors(device):
    e = gn.zeros(2, 0, requires_grad=True)
    y = e @ gn.ones(0, 3)
    np.testing.assert_array_equal(y.numpy(), np.zeros((2, 3)))
    y.sum().backward()
    assert e.grad.shape == (2, 0)
    np.testing.assert_array_equal(gn.cat([gn.zeros(0, 2), gn.ones(1, 2)]).numpy(), np.ones((1, 2)))
    assert gn.ones(0, 3).sum(0).shape == (3,)
