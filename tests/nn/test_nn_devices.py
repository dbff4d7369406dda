"""nn on every backend: same dropout masks for the same seed, modules moved in place, activations on random
shapes and non-contiguous inputs (hypothesis)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import gpunet as gn
import gpunet.nn.functional as F
from gpunet import nn
from gpunet.testing import gradcheck


def test_dropout_mask_is_identical_across_backends(device):
    cpu = gn.backend.get_backend("cpu")
    here = gn.backend.current()
    for shape, p, seed, offset in (((33, 17), 0.3, 5, 0), ((1000,), 0.5, 2**62 + 11, 7), ((2, 3, 4), 0.9, 1, 1)):
        ours = here.to_numpy(here.dropout_mask(shape, p, seed, offset, np.float32))
        np.testing.assert_array_equal(ours, cpu.dropout_mask(shape, p, seed, offset, np.float32))
    gn.manual_seed(4)
    a = F.dropout(gn.ones(10, 10), 0.5).numpy()
    gn.manual_seed(4)
    b = F.dropout(gn.ones(10, 10, device="cpu"), 0.5).numpy()
    np.testing.assert_array_equal(a, b)


def test_network_trains_on_the_device_and_to_moves_parameters_in_place(device):
    gn.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, device="cpu"), nn.GELU(), nn.Dropout(0.2), nn.PReLU(4), nn.Linear(4, 2))
    net.to("cpu")
    held = list(net.parameters())
    net.to(device)
    assert all(a is b for a, b in zip(held, net.parameters()))
    assert all(p.device == gn.device(device) for p in held)
    out = net(gn.randn(5, 3))
    out.sum().backward()
    assert out.device == gn.device(device)
    assert all(p.grad is not None and p.grad.device == gn.device(device) for p in held)
    state = net.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    net.to("cpu").load_state_dict(state)
    assert all(p.device == gn.device("cpu") for p in held)


ACTIVATIONS = [F.sigmoid, F.tanh, F.relu, F.leaky_relu, F.elu, F.gelu, lambda x: F.gelu(x, approximate="tanh"),
               F.softplus, F.hardtanh, F.bipolar_sigmoid, lambda x: F.softmax(x, -1), lambda x: F.log_softmax(x, 0)]


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), which=st.integers(0, len(ACTIVATIONS) - 1),
       transposed=st.booleans(), seed=st.integers(0, 2**31))
def test_activations_gradcheck_on_random_shapes_and_layouts(shape, which, transposed, seed):
    values = np.random.default_rng(seed).uniform(-2.5, 2.5, size=shape)
    values[np.abs(values) < 0.05] = 0.3  # keep finite differences away from the kinks at 0
    values[np.abs(np.abs(values) - 1) < 0.05] = 0.7
    if transposed and values.ndim >= 2:  # a non-contiguous view of the data
        x = gn.tensor(np.ascontiguousarray(values.T), dtype=gn.float64).T.detach().requires_grad_()
    else:
        x = gn.tensor(values, dtype=gn.float64, requires_grad=True)
    np.testing.assert_array_equal(x.numpy(), values)
    assert gradcheck(ACTIVATIONS[which], (x,))
