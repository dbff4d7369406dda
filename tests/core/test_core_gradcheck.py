"""gradcheck and gradgradcheck themselves: they pass correct derivatives and catch wrong ones, with useful messages."""
from __future__ import annotations

import re

import numpy as np
import pytest

import gpunet as gn
from core_helpers import leaf
from gpunet.autograd import Function
from gpunet.testing import GradcheckError, gradcheck, gradgradcheck


class WrongSquare(Function):
    """x**2 whose backward claims 3x instead of 2x."""

    def forward(self, backend, x):
        return x * x

    def backward(self, gy):
        return gy * self.inputs[0] * 3.0


class SquareFlatSecond(Function):
    """x**2 with a correct first derivative whose own derivative is lost (a detached saved input)."""

    def forward(self, backend, x):
        return x * x

    def backward(self, gy):
        return gy * self.inputs[0].detach() * 2.0


class IgnoresGradOutput(Function):
    """x**2 whose backward forgets to multiply by the incoming gradient."""

    def forward(self, backend, x):
        return x * x

    def backward(self, gy):
        return self.inputs[0] * 2.0


def test_passes_several_inputs_and_outputs_and_passes_through_other_arguments(device):
    rng = np.random.default_rng(0)
    a, b = leaf(rng.standard_normal((2, 3))), leaf(rng.standard_normal((3,)), "strided")
    c = gn.tensor(rng.standard_normal((2, 3)), dtype=gn.float64)  # not differentiated

    def fn(x, y, z, scale):
        return gn.tanh(x * y) * scale + z, (x @ y).exp()

    assert gradcheck(fn, (a, b, c, 0.5))
    assert gradgradcheck(fn, (a, b, c, 0.5))


def test_reports_op_input_worst_element_and_both_values():
    x = gn.tensor([[0.5, -2.0], [1.0, 0.25]], dtype=gn.float64, requires_grad=True)
    y = gn.tensor([1.0, 2.0], dtype=gn.float64, requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda a, b: a * b + WrongSquare().apply(b), (x, y))
    message = str(info.value)
    # d(a*b + b^2)[i, j]/db[j] is a[i, j] + 2 b[j]; the wrong backward says a[i, j] + 3 b[j]: worst where b = 2
    assert "inputs[1]" in message and "inputs[0]" not in message
    found = re.search(r"worst at output\[0, 1\] / input\[1\]: numerical (\S+), analytical (\S+) ", message)
    assert found, message
    assert float(found[1]) == pytest.approx(-2.0 + 4.0, abs=1e-6) and float(found[2]) == -2.0 + 6.0


def test_names_the_last_op_and_the_function():
    x = gn.tensor([1.0, -3.0], dtype=gn.float64, requires_grad=True)

    def square(t):
        return WrongSquare().apply(t)

    expected = (r"gradcheck failed for .*square \(last op WrongSquare\).*"
                r"worst at output\[1\] / input\[1\]: numerical -6(\.0*1?)?, analytical -9 ")
    with pytest.raises(GradcheckError, match=expected):
        gradcheck(square, (x,))


def test_reachable_as_gn_testing():
    assert gn.testing.gradcheck is gradcheck and gn.testing.gradgradcheck is gradgradcheck


def test_raise_exception_false_returns_false():
    x = gn.tensor([1.0, 2.0], dtype=gn.float64, requires_grad=True)
    assert gradcheck(lambda t: WrongSquare().apply(t), (x,), raise_exception=False) is False
    assert gradcheck(lambda t: t * t, (x,), raise_exception=False) is True


def test_catches_a_backward_that_ignores_the_grad_output():
    x = gn.tensor([1.0, 2.0, 3.0], dtype=gn.float64, requires_grad=True)
    with pytest.raises(GradcheckError):
        gradcheck(lambda t: IgnoresGradOutput().apply(t), (x,))


def test_catches_a_wrong_gradient_in_the_second_output_only():
    x = gn.tensor([1.0, 2.0], dtype=gn.float64, requires_grad=True)
    with pytest.raises(GradcheckError, match="output 1"):
        gradcheck(lambda t: (t * t, WrongSquare().apply(t)), (x,))


def test_gradgradcheck_catches_a_wrong_second_derivative_that_gradcheck_misses():
    x = gn.tensor([0.5, -1.5], dtype=gn.float64, requires_grad=True)
    fn = lambda t: SquareFlatSecond().apply(t)  # noqa: E731
    assert gradcheck(fn, (x,))
    with pytest.raises(GradcheckError, match="gradgradcheck failed"):
        gradgradcheck(fn, (x,))


def test_gradgradcheck_with_given_grad_outputs():
    x = gn.tensor([[0.3, -0.7], [1.1, 0.2]], dtype=gn.float64, requires_grad=True)
    go = gn.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=gn.float64, requires_grad=True)
    assert gradgradcheck(lambda t: gn.sigmoid(t) * t, (x,), grad_outputs=(go,))
    with pytest.raises(ValueError, match="2 grad_outputs for 1"):
        gradgradcheck(lambda t: t * t, (x,), grad_outputs=(go, go))


def test_refuses_float32_inputs_with_the_fix():
    x = gn.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"inputs\[0\] has dtype float32.*\.double\(\)"):
        gradcheck(lambda t: t * 2, (x,))
    with pytest.raises(TypeError, match=r"\.double\(\)"):
        gradgradcheck(lambda t: t * 2, x)


def test_needs_an_input_that_requires_grad():
    x = gn.tensor([1.0], dtype=gn.float64)
    with pytest.raises(ValueError, match="requires_grad=True"):
        gradcheck(lambda t: t * 2, (x,))


def test_inputs_are_restored_and_read_only_broadcast_data_is_handled(device):
    base = gn.tensor([1.0, 2.0, 3.0], dtype=gn.float64)
    wide = gn.ops.broadcast_to(base, (2, 3)).detach().requires_grad_()
    assert not wide.data.flags.writeable
    before = wide.numpy()
    assert gradcheck(lambda t: (t * t).sum(0), (wide,))
    np.testing.assert_array_equal(wide.numpy(), before)
    np.testing.assert_array_equal(base.numpy(), [1.0, 2.0, 3.0])


def test_output_without_a_path_to_the_inputs_has_zero_jacobian():
    x = gn.tensor([1.0, 2.0], dtype=gn.float64, requires_grad=True)
    const = gn.tensor([3.0], dtype=gn.float64)
    assert gradcheck(lambda t: (t * 2, const * 1), (x,))
    assert gradgradcheck(lambda t: t * 2, (x,))  # first derivative constant: second derivative zero everywhere
