"""The graph is released after backward/grad as in PyTorch: a second pass raises unless retain_graph=True."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.autograd.engine import RELEASED_MESSAGE

SECOND_TIME = r"Trying to backward through the graph a second time"


def _both(data):
    return (gn.tensor(data, dtype=gn.float64, requires_grad=True),
            torch.tensor(data, dtype=torch.float64, requires_grad=True))


def test_message_is_pytorchs():
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError) as caught:
        y.backward()
    assert str(caught.value) == RELEASED_MESSAGE


def test_second_backward_raises_and_leaves_grad_unchanged(device):
    x, tx = _both([1.0, -2.0, 3.0])
    y, ty = (x * x).sum(), (tx * tx).sum()
    y.backward()
    ty.backward()
    with pytest.raises(RuntimeError, match=SECOND_TIME):
        y.backward()
    with pytest.raises(RuntimeError, match=SECOND_TIME):
        ty.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())  # not accumulated twice


def test_retain_graph_allows_a_second_backward_that_accumulates(device):
    x, tx = _both([1.0, -2.0, 3.0])
    y, ty = (x * x).sum(), (tx * tx).sum()
    y.backward(retain_graph=True)
    ty.backward(retain_graph=True)
    y.backward()
    ty.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(x.grad.numpy(), [4.0, -8.0, 12.0])


def test_grad_releases_the_graph_unless_retained(device):
    x, tx = _both([0.5, 1.5])
    y, ty = (x.exp() * x).sum(), (tx.exp() * tx).sum()
    (g,) = gn.grad(y, [x])
    (tg,) = torch.autograd.grad(ty, [tx])
    np.testing.assert_allclose(g.numpy(), tg.numpy())
    with pytest.raises(RuntimeError, match=SECOND_TIME):
        y.backward()
    y2 = (x.exp() * x).sum()
    gn.grad(y2, [x], retain_graph=True)
    y2.backward()  # retained: still usable
    np.testing.assert_allclose(x.grad.numpy(), tg.numpy())


def test_create_graph_retains_by_default_for_higher_derivatives(device):
    x, tx = _both([0.3, -0.7])
    (g,) = gn.grad((x ** 3).sum(), [x], create_graph=True)
    (tg,) = torch.autograd.grad((tx ** 3).sum(), [tx], create_graph=True)
    g.sum().backward()
    tg.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())  # 6x


def test_a_shared_trunk_is_released_by_the_first_backward(device):
    x, tx = _both([1.0, 2.0])
    h, th = x * x, tx * tx
    h.sum().backward()
    th.sum().backward()
    with pytest.raises(RuntimeError, match=SECOND_TIME):
        (h * 2.0).sum().backward()
    with pytest.raises(RuntimeError, match=SECOND_TIME):
        (th * 2.0).sum().backward()
