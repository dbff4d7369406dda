"""The emulated CUDA device against the CPU.

- Every op of ``test_core_ops.CASES`` on the same float32 inputs gives the same values and gradients on "cpu" and
  "cuda-emu" (float32 tolerance). (``test_core_ops.test_op`` checks each device alone in float64 against NumPy,
  PyTorch, gradcheck and gradgradcheck.)
- The ops with a CUDA kernel (softmax and log-softmax: ``kernels/softmax.cu`` row and lane kernels; cross-entropy:
  the fused forward and backward) run in float32 at odd sizes along the kernel axis (1, 7, 33, 1025; batch 1) on
  both devices: values, first and second derivatives against float64 PyTorch, and the two devices against each
  other. In float64 (the xp reference on cuda-emu) cross-entropy passes gradcheck and gradgradcheck on each device.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpunet as gn
import gpunet.nn.functional as F
from core_helpers import LAYOUTS, as_list, leaf, on_device
from gpunet.testing import assert_close, gradcheck, gradgradcheck
from test_core_ops import CASES

DEVICES = ("cpu", "cuda-emu")
SIZES = (1, 7, 33, 1025)  # along the kernel axis: one element, less than a warp, a warp and one, a block and one


def _assert_same(results, what):
    """The host arrays computed on each device agree: integers exactly, floats within float32 tolerance."""
    cpu, emu = results["cpu"], results["cuda-emu"]
    assert len(cpu) == len(emu), what
    for i, (a, b) in enumerate(zip(cpu, emu)):
        assert a.shape == b.shape and a.dtype == b.dtype, f"{what} [{i}]: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
        if a.dtype.kind in "iub":
            np.testing.assert_array_equal(b, a, err_msg=f"{what} [{i}]")
        else:
            assert_close(b, a, dtype="float32", what=f"{what} [{i}]")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_op_agrees_across_devices_in_float32(case, data):
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    arrays, params = case.gen(data.draw, np.random.default_rng(seed))
    layouts = [data.draw(st.sampled_from(LAYOUTS), label=f"layout{i}") for i in range(len(arrays))]
    results, weights = {}, None
    for device in DEVICES:
        with on_device(device):
            xs = [leaf(a, layout, dtype=np.float32) for a, layout in zip(arrays, layouts)]
            outs = as_list(case.fn(gn, *xs, **params))
            assert all(o.device == gn.device(device) for o in outs), case.name
            floats = [o for o in outs if o.dtype.kind == "f"]
            if weights is None:  # the same loss weights on both devices
                rng = np.random.default_rng(seed + 1)
                weights = [rng.standard_normal(o.shape).astype(np.float32) for o in floats]
            terms = [(o * gn.tensor(w)).sum() for o, w in zip(floats, weights) if o.requires_grad]
            if terms:
                sum(terms[1:], terms[0]).backward()
            grads = [np.zeros(x.shape, np.float32) if x.grad is None else x.grad.numpy() for x in xs]
            results[device] = [o.numpy() for o in outs] + grads
    _assert_same(results, case.name)


def _softmax_inputs(n, strided):
    """(data, dim, loss weights, second-derivative direction): a (1, n) row, or n along a strided axis of (n, 3)."""
    rng = np.random.default_rng(n + strided)
    shape, dim = ((n, 3), 0) if strided else ((1, n), 1)
    return [(rng.standard_normal(shape) * 3).astype(np.float32) for _ in range(3)], dim


def _two_derivatives(M, grad, y, x, w, v):
    """y, d<y, w>/dx and d<d<y, w>/dx, v>/dx for module M (gpunet or torch)."""
    (g,) = grad((y * w).sum(), [x], create_graph=True)
    (gg,) = grad((g * v).sum(), [x])
    return y, g, gg


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("strided", [False, True], ids=["row", "lanes"])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_kernels_in_float32_on_both_devices_with_two_derivatives(op, strided, n, launched_kernels):
    (data, w, v), dim = _softmax_inputs(n, strided)
    tx = torch.tensor(data, dtype=torch.float64, requires_grad=True)
    expected = _two_derivatives(torch, torch.autograd.grad, getattr(torch, op)(tx, dim), tx,
                                torch.tensor(w, dtype=torch.float64), torch.tensor(v, dtype=torch.float64))
    expected = [t.detach().numpy() for t in expected]
    results = {}
    for device in DEVICES:
        with on_device(device):
            x = gn.tensor(data, requires_grad=True)
            got = _two_derivatives(gn, gn.grad, getattr(gn, op)(x, dim), x, gn.tensor(w), gn.tensor(v))
            assert all(t.dtype == np.float32 and t.device == gn.device(device) for t in got)
            results[device] = [t.numpy() for t in got]
            for what, a, b in zip(("value", "gradient", "second derivative"), results[device], expected):
                assert_close(a, b, dtype="float32", what=f"{op} {what} on {device}")
    assert f"{op}_{'cols' if strided else 'rows'}_f32" in launched_kernels
    _assert_same(results, op)


def _cross_entropy_inputs(rows, n, dtype):
    rng = np.random.default_rng(rows * 10_000 + n)
    logits = (rng.standard_normal((rows, n)) * 3).astype(dtype)
    target = rng.integers(0, n, rows)
    if rows > 2:
        target[1] = -100  # an ignored row
    return logits, target, rng.standard_normal((rows, n)).astype(dtype)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("rows", [1, 5])
def test_cross_entropy_kernels_in_float32_on_both_devices_with_two_derivatives(rows, n, launched_kernels):
    logits, target, v = _cross_entropy_inputs(rows, n, np.float32)
    tx = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    tloss = torch.nn.functional.cross_entropy(tx, torch.tensor(target))
    expected = [t.detach().numpy() for t in _two_derivatives(torch, torch.autograd.grad, tloss, tx, 1.0,
                                                               torch.tensor(v, dtype=torch.float64))]
    results = {}
    for device in DEVICES:
        with on_device(device):
            x = gn.tensor(logits, requires_grad=True)
            got = _two_derivatives(gn, gn.grad, F.cross_entropy(x, gn.tensor(target)), x, 1.0, gn.tensor(v))
            F.cross_entropy(x, gn.tensor(target)).backward()  # first order without create_graph: the fused backward
            got += (x.grad,)
            assert all(t.dtype == np.float32 and t.device == gn.device(device) for t in got)
            results[device] = [t.numpy() for t in got]
            for what, a, b in zip(("loss", "gradient", "second derivative", ".grad"), results[device],
                                  expected + expected[1:2]):
                assert_close(a, b, dtype="float32", what=f"cross_entropy {what} on {device}")
    assert {"softmax_xent_forward_f32", "softmax_xent_backward_f32"} <= set(launched_kernels)
    _assert_same(results, "cross_entropy")


@pytest.mark.parametrize("n", [1, 7])
def test_cross_entropy_float64_gradcheck_and_gradgradcheck(device, n):
    logits, target, _ = _cross_entropy_inputs(3, n, np.float64)
    weight = gn.tensor(np.linspace(0.5, 2.0, n), dtype=gn.float64)
    x = gn.tensor(logits, dtype=gn.float64, requires_grad=True)
    fn = lambda t: F.cross_entropy(t, gn.tensor(target), weight=weight)  # noqa: E731
    assert fn(x).device == gn.device(device)
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))
