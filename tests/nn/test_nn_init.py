"""nn.init and Linear's default initialisation: PyTorch's formulas for gains, bounds and standard deviations."""
import math

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet import nn
from gpunet.nn import init


@pytest.mark.parametrize("nonlinearity, param", [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", math.sqrt(5)), ("selu", None),
])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(torch.nn.init.calculate_gain(nonlinearity, param),
                                                                     rel=1e-15)


def test_calculate_gain_rejects_unknown_nonlinearity():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'swish'"):
        init.calculate_gain("swish")


def _filled(fn, shape, **kwargs):
    t = gn.zeros(*shape)
    array = t.data
    assert fn(t, **kwargs) is t and t.data is array  # in place, same tensor and array
    return t.numpy().astype(np.float64)


SHAPE = (400, 300)  # fan_in 300, fan_out 400
CONV = (64, 16, 3, 3)  # fan_in 16*9 = 144, fan_out 64*9 = 576


@pytest.mark.parametrize("shape, fan_in, fan_out", [(SHAPE, 300, 400), (CONV, 144, 576)])
def test_uniform_initialisers_fill_their_bounds(shape, fan_in, fan_out):
    gn.manual_seed(0)
    cases = [
        (init.xavier_uniform_, {}, math.sqrt(6 / (fan_in + fan_out))),
        (init.xavier_uniform_, {"gain": 2.0}, 2 * math.sqrt(6 / (fan_in + fan_out))),
        (init.kaiming_uniform_, {}, math.sqrt(6 / fan_in)),  # a=0: leaky_relu gain with slope 0 is sqrt(2)
        (init.kaiming_uniform_, {"a": math.sqrt(5)}, 1 / math.sqrt(fan_in)),
        (init.kaiming_uniform_, {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(6 / fan_out)),
        (init.uniform_, {"a": -0.3, "b": 0.5}, None),
    ]
    for fn, kwargs, bound in cases:
        values = _filled(fn, shape, **kwargs)
        low, high = (-bound, bound) if bound is not None else (kwargs["a"], kwargs["b"])
        slack = 1e-6 * (high - low)  # float32 rounding of values drawn in float64
        assert values.min() >= low - slack and values.max() <= high + slack
        # a sample of this size reaches within 1% of both ends, and its std is (high - low) / sqrt(12)
        assert values.min() < low + 0.01 * (high - low) and values.max() > high - 0.01 * (high - low)
        assert values.std() == pytest.approx((high - low) / math.sqrt(12), rel=0.02)
        assert values.mean() == pytest.approx((low + high) / 2, abs=0.02 * (high - low))


@pytest.mark.parametrize("shape, fan_in, fan_out", [(SHAPE, 300, 400), (CONV, 144, 576)])
def test_normal_initialisers_have_pytorchs_std(shape, fan_in, fan_out):
    gn.manual_seed(1)
    cases = [
        (init.xavier_normal_, {}, 0.0, math.sqrt(2 / (fan_in + fan_out))),
        (init.kaiming_normal_, {"nonlinearity": "relu"}, 0.0, math.sqrt(2 / fan_in)),
        (init.kaiming_normal_, {"a": 0.1, "mode": "fan_out"}, 0.0, math.sqrt(2 / 1.01) / math.sqrt(fan_out)),
        (init.normal_, {"mean": 1.5, "std": 0.2}, 1.5, 0.2),
    ]
    for fn, kwargs, mean, std in cases:
        values = _filled(fn, shape, **kwargs)
        assert values.std() == pytest.approx(std, rel=0.02)
        assert values.mean() == pytest.approx(mean, abs=0.02 * std)


def test_constant_initialisers_and_dtype():
    t = gn.zeros(3, 2, dtype=gn.float64)
    init.constant_(t, 0.5)
    assert t.dtype == np.float64 and np.all(t.numpy() == 0.5)
    init.ones_(t)
    assert np.all(t.numpy() == 1)
    init.zeros_(t)
    assert not t.numpy().any()


def test_initialisers_draw_from_gpunets_generator():
    a, b = gn.zeros(5, 5), gn.zeros(5, 5)
    gn.manual_seed(42)
    init.xavier_uniform_(a)
    gn.manual_seed(42)
    init.xavier_uniform_(b)
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fan_needs_two_dimensions_and_mode_is_checked():
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(gn.zeros(5))
    with pytest.raises(ValueError, match="fan_in' or 'fan_out"):
        init.kaiming_normal_(gn.zeros(2, 2), mode="fan")
    with pytest.raises(TypeError, match="gpunet Tensor"):
        init.zeros_(np.zeros(3))


def test_linear_default_init_follows_pytorch():
    gn.manual_seed(0)
    layer = nn.Linear(250, 300)
    bound = 1 / math.sqrt(250)  # kaiming_uniform_(a=sqrt(5)) gives 1/sqrt(fan_in); the bias uses the same bound
    for values in (layer.weight.numpy(), layer.bias.numpy()):
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound * (1 + 1e-6)
        assert values.std() == pytest.approx(2 * bound / math.sqrt(12), rel=0.05)
    w = layer.weight.numpy()
    assert w.min() < -0.99 * bound and w.max() > 0.99 * bound
    torch_layer = torch.nn.Linear(250, 300)  # PyTorch's own bounds are the same
    assert torch_layer.weight.abs().max().item() <= bound and torch_layer.bias.abs().max().item() <= bound


def test_linear_layout_forward_and_options():
    layer = nn.Linear(3, 2, bias=False, dtype=gn.float64)
    assert layer.weight.shape == (2, 3) and layer.bias is None and layer.weight.dtype == np.float64
    assert [n for n, _ in layer.named_parameters()] == ["weight"]
    assert list(layer.state_dict()) == ["weight"]
    x = np.random.default_rng(0).standard_normal((4, 5, 3))
    np.testing.assert_allclose(layer(gn.tensor(x, dtype=gn.float64)).numpy(), x @ layer.weight.numpy().T, rtol=1e-12)
    assert repr(layer) == repr(torch.nn.Linear(3, 2, bias=False))
    with pytest.raises(ValueError, match=r"Linear: in_features must be an integer >= 1, got 2.5"):
        nn.Linear(2.5, 3)
    with pytest.raises(ValueError, match="in_features = 3"):
        layer(gn.randn(2, 4, dtype=gn.float64))


def test_linear_gradients_match_torch():
    gn.manual_seed(0)
    ours = nn.Linear(4, 3).double()
    theirs = torch.nn.Linear(4, 3).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(1).standard_normal((6, 4))
    (ours(gn.tensor(x, dtype=gn.float64)) ** 2).sum().backward()
    (theirs(torch.tensor(x)) ** 2).sum().backward()
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.bias.grad.numpy(), theirs.bias.grad.numpy(), rtol=1e-12)


def test_flatten_and_identity():
    x = gn.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    assert nn.Flatten(start_dim=2)(x).shape == (2, 3, 20)
    assert nn.Identity(54, unused="x")(x) is x
    assert repr(nn.Flatten(0, 2)) == repr(torch.nn.Flatten(0, 2))
