"""The autograd engine: accumulation, shared subgraphs, higher-order derivatives, the seed-001 ODE loss, errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.testing import gradcheck, gradgradcheck


def f64(data, requires_grad=True):
    return gn.tensor(data, dtype=gn.float64, requires_grad=requires_grad)


def test_backward_accumulates_into_grad_over_two_calls(device):
    x = f64([1.0, -2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, -4.0, 6.0])
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [5.0, -1.0, 9.0])
    assert x.grad.device == gn.device(device)


def test_each_leaf_owns_a_writable_grad(device):
    # Add passes one gradient to both operands and Sum's backward is a read-only broadcast view: the leaves must
    # still get separate arrays that in-place updates (zero_grad, clipping) can write
    a, b = f64([1.0, 2.0]), f64([3.0, 4.0])
    (a + b).sum().backward()
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.zero_()
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(b.grad.numpy(), [1.0, 1.0])


def test_backward_with_create_graph_gives_a_differentiable_grad(device):
    x = f64([1.0, -2.0])
    (x ** 3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])
    (second,) = gn.grad(x.grad.sum(), x)
    np.testing.assert_allclose(second.numpy(), [6.0, -12.0])


def test_tensor_used_twice_and_backward_with_explicit_gradient(device):
    x = f64([0.5, -1.5])
    y = x * x + x * 2.0  # x feeds two products and both operands of the first
    y.backward(gn.tensor([1.0, 10.0], dtype=gn.float64))
    np.testing.assert_allclose(x.grad.numpy(), [1.0 * (2 * 0.5 + 2), 10.0 * (2 * -1.5 + 2)])


def test_diamond_graph_matches_torch(device):
    data = np.array([[0.3, -1.2], [2.0, 0.7]])

    def run(M, x):
        a = M.tanh(x)
        b, c = a * 3.0, M.exp(a)
        return (b * c + a).sum()

    x = f64(data)
    run(gn, x).backward()
    tx = torch.tensor(data, requires_grad=True)
    run(torch, tx).backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)


def _nth_derivative(f, x, n):
    y = f(x)
    for _ in range(n):
        (y,) = gn.grad(y.sum(), [x], create_graph=True)
    return y


def test_third_derivative_of_x_to_the_fourth(device):
    x = f64([-1.5, 0.5, 2.0])
    np.testing.assert_allclose(_nth_derivative(lambda t: t ** 4, x, 3).numpy(), 24 * x.numpy())
    np.testing.assert_allclose(_nth_derivative(lambda t: t ** 4, x, 4).numpy(), [24.0, 24.0, 24.0])


def test_third_derivative_of_tanh_and_sigmoid_compositions(device):
    data = np.array([-1.3, 0.2, 0.9])
    x = f64(data)
    t = np.tanh(data)
    np.testing.assert_allclose(_nth_derivative(gn.tanh, x, 3).numpy(), -2 * (1 - t ** 2) * (1 - 3 * t ** 2),
                               rtol=1e-12)

    def composed(M, v):
        return M.tanh(M.sigmoid(v) * v) * v

    tx = torch.tensor(data, requires_grad=True)
    ty = composed(torch, tx)
    for _ in range(3):
        (ty,) = torch.autograd.grad(ty.sum(), tx, create_graph=True)
    np.testing.assert_allclose(_nth_derivative(lambda v: composed(gn, v), x, 3).numpy(), ty.detach().numpy(),
                               rtol=1e-10)


def _mlp(x, w1, b1, w2, b2):
    return gn.ops.linear(gn.sigmoid(gn.ops.linear(x, w1, b1)), w2, b2)


def _ode_loss(x, w1, b1, w2, b2, g0=1.0, gamma=2.0):
    """seed-001's trial solution g(x) = g0 + x N(x) for dg/dx = -gamma g; loss mean((dg/dx + gamma g)^2)."""
    g = g0 + x * _mlp(x, w1, b1, w2, b2)
    (dg,) = gn.grad(g.sum(), [x], create_graph=True)
    residual = dg + gamma * g
    return (residual * residual).mean()


def test_seed001_ode_loss_gradients_match_finite_differences(device):
    rng = np.random.default_rng(1)
    x = f64(np.linspace(0.0, 1.0, 7).reshape(7, 1))
    params = [f64(rng.standard_normal(s) * 0.8) for s in [(5, 1), (5,), (1, 5), (1,)]]
    loss = _ode_loss(x, *params)
    grads = gn.grad(loss, params, retain_graph=True)  # backward below reuses the graph, as in PyTorch
    eps = 1e-6
    for p, g in zip(params, grads):
        numerical = np.zeros(p.shape)
        for idx in np.ndindex(*p.shape):
            original = p.data[idx]
            p.data[idx] = original + eps
            plus = _ode_loss(x, *params).item()
            p.data[idx] = original - eps
            minus = _ode_loss(x, *params).item()
            p.data[idx] = original
            numerical[idx] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(g.numpy(), numerical, rtol=1e-6, atol=1e-9)
    loss.backward()  # the same gradients through .backward into .grad
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g.numpy(), rtol=1e-12)


def test_seed001_ode_loss_gradcheck_and_gradgradcheck(device):
    rng = np.random.default_rng(2)
    x = f64(np.linspace(0.0, 1.0, 3).reshape(3, 1))
    params = tuple(f64(rng.standard_normal(s)) for s in [(3, 1), (3,), (1, 3), (1,)])
    fn = lambda *p: _ode_loss(x, *p)  # noqa: E731
    assert gradcheck(fn, params)
    assert gradgradcheck(fn, params)


def test_grad_allow_unused(device):
    x, z = f64([1.0, 2.0]), f64([3.0])
    y = (x * x).sum()
    with pytest.raises(RuntimeError, match=r"inputs\[1\] was not used.*allow_unused=True"):
        gn.grad(y, [x, z], retain_graph=True)  # the graph is used again below (PyTorch frees it otherwise)
    gx, gz = gn.grad(y, [x, z], allow_unused=True)
    np.testing.assert_allclose(gx.numpy(), [2.0, 4.0])
    assert gz is None
    assert x.grad is None and z.grad is None  # grad leaves .grad alone


def test_grad_without_create_graph_is_detached_and_with_it_is_differentiable(device):
    x = f64([1.0, 2.0])
    (g,) = gn.grad((x ** 3).sum(), x)
    assert g.creator is None and not g.requires_grad
    (g,) = gn.grad((x ** 3).sum(), x, create_graph=True)
    assert g.requires_grad
    (gg,) = gn.grad(g.sum(), x)
    np.testing.assert_allclose(gg.numpy(), [6.0, 12.0])


def test_grad_with_respect_to_an_intermediate_tensor(device):
    x = f64([1.0, 2.0])
    h = x * 3.0
    y = (h * h).sum()
    (gh,) = gn.grad(y, [h])
    np.testing.assert_allclose(gh.numpy(), [6.0, 12.0])


def test_backward_errors(device):
    x = f64([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"single-element output.*shape \(2,\)"):
        (x * 2).backward()
    with pytest.raises(ValueError, match=r"grad_output has shape \(3,\) but the output has shape \(2,\)"):
        (x * 2).backward(gn.tensor([1.0, 1.0, 1.0], dtype=gn.float64))
    with pytest.raises(RuntimeError, match="does not require grad"):
        gn.tensor([1.0, 2.0]).sum().backward()
    c = gn.tensor([1.0, 2.0], dtype=gn.float64)
    with pytest.raises(RuntimeError, match=r"inputs\[0\] does not require grad.*requires_grad=True"):
        gn.grad((x * c).sum(), [c])


def test_no_grad_records_nothing_and_restores_the_mode(device):
    x = f64([1.0, 2.0])
    with gn.no_grad():
        assert not gn.is_grad_enabled()
        y = gn.tanh(x * 2) + x
        with gn.enable_grad():
            z = x * 2
    assert gn.is_grad_enabled()
    assert y.creator is None and not y.requires_grad
    assert z.requires_grad and z.creator is not None
    with pytest.raises(ZeroDivisionError):
        with gn.no_grad():
            1 / 0
    assert gn.is_grad_enabled()


def test_detach_shares_data_and_stops_gradients(device):
    x = f64([1.0, 2.0])
    d = (x * 2).detach()
    assert not d.requires_grad and d.creator is None
    y = (x * d).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])  # d counted as a constant


def test_cast_forward_and_backward_dtypes_match_torch(device):
    data = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    x = gn.tensor(data, requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y.numpy(), data.astype(np.float64))
    (y * y).sum().backward()
    tx = torch.tensor(data, requires_grad=True)
    (tx.double() ** 2).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-7)
    assert gradcheck(lambda t: gn.ops.cast(t * 2, gn.float64), (f64([1.0, 3.0]),))
    assert gradgradcheck(lambda t: gn.ops.cast(t * t, gn.float64), (f64([1.0, 3.0]),))


def test_nodes_of_one_generation_run_in_reverse_creation_order_every_time():
    """Ready nodes used to be ordered by id() (a memory address), so the order in which a shared input's gradient
    was summed -- and its last bits, e.g. in a WGAN-GP step's double backprop -- changed from run to run."""
    from gpunet.autograd import Function

    class Logged(Function):
        def __init__(self, name, log):
            self.name, self.log = name, log

        def forward(self, backend, x):
            return x * 1.0

        def backward(self, gy):
            self.log.append(self.name)
            return gy

    for trial in range(20):
        padding = [object() for _ in range(trial * 7)]  # other allocations between the nodes move their addresses
        log = []
        x = gn.tensor([1.0, 2.0], requires_grad=True)
        outputs = []
        for k in range(6):
            outputs.append(Logged(k, log).apply(x))
            padding.append([object() for _ in range((k * trial) % 5)])
        gn.stack(outputs).sum().backward()
        assert log == [5, 4, 3, 2, 1, 0]
