"""Activations: values and gradients against PyTorch (float64), first and second derivatives by finite differences."""
import math

import numpy as np
import pytest
import torch

import gpunet as gn
import gpunet.nn.functional as F
from gpunet.backend.references.erf import erf as erf_reference
from gpunet.testing import gradcheck, gradgradcheck

EDGES = np.array([0.0, -0.0, 1e-8, -1e-8, 1.0, -1.0, 5.0, -5.0, 19.9, 20.1, 30.0, -30.0, 300.0, -300.0, 1e4, -1e4])


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.standard_normal(40) * 3, EDGES]).reshape(8, 7)


# name -> (gpunet module, gpunet functional, torch module); the seeds' units have hand-written references below
CASES = {
    "identity": (gn.nn.Identity(), lambda x: x, torch.nn.Identity()),
    "sigmoid": (gn.nn.Sigmoid(), F.sigmoid, torch.nn.Sigmoid()),
    "tanh": (gn.nn.Tanh(), F.tanh, torch.nn.Tanh()),
    "relu": (gn.nn.ReLU(), F.relu, torch.nn.ReLU()),
    "leaky_relu": (gn.nn.LeakyReLU(), F.leaky_relu, torch.nn.LeakyReLU()),
    "leaky_relu_0.2": (gn.nn.LeakyReLU(0.2), lambda x: F.leaky_relu(x, 0.2), torch.nn.LeakyReLU(0.2)),
    "elu": (gn.nn.ELU(), F.elu, torch.nn.ELU()),
    "elu_0.5": (gn.nn.ELU(alpha=0.5), lambda x: F.elu(x, 0.5), torch.nn.ELU(alpha=0.5)),
    "gelu": (gn.nn.GELU(), F.gelu, torch.nn.GELU()),
    "gelu_tanh": (gn.nn.GELU("tanh"), lambda x: F.gelu(x, approximate="tanh"), torch.nn.GELU("tanh")),
    "softplus": (gn.nn.Softplus(), F.softplus, torch.nn.Softplus()),
    "softplus_beta2": (gn.nn.Softplus(beta=2, threshold=10), lambda x: F.softplus(x, 2, 10),
                       torch.nn.Softplus(beta=2, threshold=10)),
    "hardtanh": (gn.nn.Hardtanh(), F.hardtanh, torch.nn.Hardtanh()),
    "hardtanh_0_6": (gn.nn.Hardtanh(0.0, 6.0), lambda x: F.hardtanh(x, 0.0, 6.0), torch.nn.Hardtanh(0.0, 6.0)),
    "softmax": (gn.nn.Softmax(dim=1), lambda x: F.softmax(x, 1), torch.nn.Softmax(dim=1)),
    "log_softmax": (gn.nn.LogSoftmax(dim=0), lambda x: F.log_softmax(x, 0), torch.nn.LogSoftmax(dim=0)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_value_and_gradient_match_torch(name):
    module, functional, reference = CASES[name]
    data = _inputs()
    seed = np.random.default_rng(1).standard_normal(data.shape)
    for fn in (module, functional):
        x = gn.tensor(data, dtype=gn.float64, requires_grad=True)
        y = fn(x)
        (y * gn.tensor(seed, dtype=gn.float64)).sum().backward()
        tx = torch.tensor(data, requires_grad=True)
        ty = reference(tx)
        (ty * torch.tensor(seed)).sum().backward()
        assert y.dtype == np.float64
        # atol: in deep saturation (|x| >= 30) formulas that use the output, like y (1 - y), round to 0 where
        # PyTorch keeps a value below 1e-13; everywhere else they agree to 1e-10 relative
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize("name", sorted(set(CASES) - {"identity"}))
def test_float32_forward_stays_float32_and_close_to_torch(name):
    module, _, reference = CASES[name]
    data = _inputs(3).astype(np.float32)
    y = module(gn.tensor(data))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), reference(torch.tensor(data)).numpy(), rtol=2e-6, atol=1e-6)


def _smooth_points(seed, shape=(3, 4)):
    """Random float64 points kept away from kinks (0, and the hardtanh/softplus edges), where FD is valid."""
    x = np.random.default_rng(seed).uniform(-3, 3, size=shape)
    x[np.abs(x) < 0.1] += 0.3
    x[np.abs(np.abs(x) - 1) < 0.05] += 0.12
    return x


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck_and_gradgradcheck(name):
    _, functional, _ = CASES[name]
    x = gn.tensor(_smooth_points(5), dtype=gn.float64, requires_grad=True)
    assert gradcheck(functional, (x,))
    if name != "identity":  # identity returns its input: no graph, nothing second-order to check
        assert gradgradcheck(functional, (x,))


def test_softplus_linear_region_is_differentiable_twice():
    x = gn.tensor([[21.0, 25.0], [-2.0, 0.5]], dtype=gn.float64, requires_grad=True)
    assert gradcheck(F.softplus, (x,))
    assert gradgradcheck(F.softplus, (x,))


@pytest.mark.parametrize("num_parameters, shape", [(1, (5,)), (1, (4, 3)), (3, (4, 3)), (3, (2, 3, 4, 5)), (1, ())])
def test_prelu_matches_torch_and_its_weight_gradient(num_parameters, shape):
    rng = np.random.default_rng(7)
    data = rng.standard_normal(shape)
    weight = rng.uniform(0.05, 0.5, num_parameters)
    seed = rng.standard_normal(shape)
    layer = gn.nn.PReLU(num_parameters, dtype=gn.float64)
    layer.load_state_dict({"weight": weight})
    reference = torch.nn.PReLU(num_parameters).double()
    reference.load_state_dict({"weight": torch.tensor(weight)})
    x = gn.tensor(data, dtype=gn.float64, requires_grad=True)
    tx = torch.tensor(data, requires_grad=True)
    y, ty = layer(x), reference(tx)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-13)
    (y * gn.tensor(seed, dtype=gn.float64)).sum().backward()
    (ty * torch.tensor(seed)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-13)
    np.testing.assert_allclose(layer.weight.grad.numpy(), reference.weight.grad.numpy(), rtol=1e-12)


def test_prelu_gradchecks_in_input_and_weight():
    x = gn.tensor(_smooth_points(9, (2, 3, 4)), dtype=gn.float64, requires_grad=True)
    w = gn.tensor([0.1, 0.25, -0.3], dtype=gn.float64, requires_grad=True)
    assert gradcheck(F.prelu, (x, w))
    assert gradgradcheck(F.prelu, (x, w))


def test_prelu_defaults_and_errors():
    layer = gn.nn.PReLU()
    assert layer.weight.shape == (1,) and layer.weight.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.numpy(), [0.25])
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    with pytest.raises(ValueError, match="3 parameters.*channels"):
        gn.nn.PReLU(3)(gn.randn(2, 4))


def test_binary_and_bipolar_step_follow_seed_002():
    # seed 002: binary step 1 if x >= 0 else 0; bipolar step +1 if x >= 0 else -1
    x = gn.tensor([-2.0, -1e-30, 0.0, 1e-30, 3.0], dtype=gn.float64, requires_grad=True)
    np.testing.assert_array_equal(gn.nn.Step()(x).numpy(), [0, 0, 1, 1, 1])
    np.testing.assert_array_equal(gn.nn.BipolarStep()(x).numpy(), [-1, -1, 1, 1, 1])
    np.testing.assert_array_equal(F.step(x, threshold=1.0).numpy(), [0, 0, 0, 0, 1])
    np.testing.assert_array_equal(F.bipolar_step(x, threshold=-1.0).numpy(), [-1, 1, 1, 1, 1])
    (g,) = gn.grad(F.step(x).sum() + F.bipolar_step(x).sum(), [x])
    np.testing.assert_array_equal(g.numpy(), np.zeros(5))  # flat almost everywhere
    assert gn.nn.Step()(gn.tensor([0.5])).dtype == np.float32


def test_bipolar_sigmoid_is_the_seed_formula_and_its_derivative():
    data = np.array([-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 30.0])
    for s in (1.0, 2.5):
        x = gn.tensor(data, dtype=gn.float64, requires_grad=True)
        y = F.bipolar_sigmoid(x, steepness=s) if s != 1.0 else gn.nn.BipolarSigmoid()(x)
        expected = (1 - np.exp(-s * data)) / (1 + np.exp(-s * data))
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-14, atol=1e-16)
        y.sum().backward()
        # seed 002: f'(x) = s/2 (1 + f(x)) (1 - f(x))
        np.testing.assert_allclose(x.grad.numpy(), s / 2 * (1 + expected) * (1 - expected), rtol=1e-12, atol=1e-15)
    x = gn.tensor(_smooth_points(11), dtype=gn.float64, requires_grad=True)
    assert gradcheck(lambda t: F.bipolar_sigmoid(t, 1.7), (x,))
    assert gradgradcheck(lambda t: F.bipolar_sigmoid(t, 1.7), (x,))


def test_erf_kernel_is_float64_accurate_against_math_erf():
    x = np.concatenate([np.linspace(-7, 7, 20001), [0.84375, 1.25, 1 / 0.35, 6.0, 1e-300, -1e-20]])
    expected = np.array([math.erf(v) for v in x])
    got = erf_reference(np, x)
    np.testing.assert_allclose(got, expected, rtol=4e-16, atol=0)
    special = erf_reference(np, np.array([np.inf, -np.inf, np.nan, 0.0]))
    assert special[0] == 1 and special[1] == -1 and np.isnan(special[2]) and special[3] == 0
    assert erf_reference(np, np.float32([0.5])).dtype == np.float32


def test_erf_op_gradients():
    x = gn.tensor(_smooth_points(13), dtype=gn.float64, requires_grad=True)
    np.testing.assert_allclose(F.erf(x).numpy(), torch.erf(torch.tensor(x.numpy())).numpy(), rtol=1e-15, atol=1e-16)
    assert gradcheck(F.erf, (x,))
    assert gradgradcheck(F.erf, (x,))


def test_activations_are_one_graph_node():
    x = gn.randn(3, 4, requires_grad=True)
    for module in (gn.nn.LeakyReLU(), gn.nn.ELU(), gn.nn.GELU(), gn.nn.GELU("tanh"), gn.nn.Softplus(),
                   gn.nn.Hardtanh(), gn.nn.Step(), gn.nn.BipolarStep(), gn.nn.BipolarSigmoid(), gn.nn.Sigmoid()):
        y = module(x)
        assert y.creator is not None and all(t is x for t in y.creator.inputs), type(module).__name__


def test_softmax_without_dim_uses_pytorchs_legacy_choice_with_a_warning():
    x = gn.randn(3, 4)
    with pytest.warns(UserWarning, match="implicit dimension"):
        y = gn.nn.Softmax()(x)
    np.testing.assert_allclose(y.numpy().sum(axis=1), np.ones(3), rtol=1e-6)


def test_bad_arguments_are_rejected_with_clear_errors():
    with pytest.raises(ValueError, match="approximate"):
        gn.nn.GELU("fast")
    with pytest.raises(ValueError, match="min_val"):
        gn.nn.Hardtanh(2.0, 1.0)
    with pytest.raises(ValueError, match="beta"):
        F.softplus(gn.randn(2), beta=0)


def test_reprs_match_torch():
    pairs = [(gn.nn.ReLU(), torch.nn.ReLU()), (gn.nn.LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
             (gn.nn.ELU(), torch.nn.ELU()), (gn.nn.GELU(), torch.nn.GELU()), (gn.nn.Softplus(), torch.nn.Softplus()),
             (gn.nn.Hardtanh(), torch.nn.Hardtanh()), (gn.nn.Softmax(1), torch.nn.Softmax(1)),
             (gn.nn.PReLU(3), torch.nn.PReLU(3)), (gn.nn.Sigmoid(), torch.nn.Sigmoid())]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("size", [7, 4096])  # NumPy's short and vectorised loops
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_bits_equal_torch_with_signed_zeros_nan_and_infinities(dtype, size):
    special = np.array([-0.0, 0.0, np.nan, -np.nan, -1.0, 2.0, -np.inf, np.inf], dtype)
    data = np.resize(special, size)
    ours, theirs = F.relu(gn.tensor(data)).numpy(), torch.relu(torch.tensor(data)).numpy()
    assert ours.dtype == dtype
    np.testing.assert_array_equal(ours, theirs)  # NaN where NaN
    np.testing.assert_array_equal(np.signbit(ours[ours == 0]), np.signbit(theirs[theirs == 0]))  # -0.0 stays
