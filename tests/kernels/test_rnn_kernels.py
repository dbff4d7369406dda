"""kernels/rnn.cu on the CUDA emulator against the float64 NumPy reference, and the reference against PyTorch's
autograd of the LSTM/GRU cell equations; outputs are NaN-filled before every launch."""

import numpy as np
import pytest
import torch

from gpunet.backend.references import rnn as ref
from gpunet.backend import emulated as ce
from gpunet.testing import assert_close
from gpunet.testing.nvrtc import KERNELS_DIR

RNN = KERNELS_DIR / "rnn.cu"

CASES = [  # batch, hidden, grid, block
    (1, 1, 1, 32),
    (3, 5, 1, 7),      # fewer threads than units: the grid-stride loop covers the rest
    (7, 33, 2, 64),    # units not a multiple of the block
    (2, 300, 3, 256),
]


@pytest.fixture(scope="module")
def mod():
    return ce.load(RNN)


def randn(shape, scale=1.0, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


TOLERANCE = {"rtol": 1e-5, "atol": 2e-6}  # float32 kernels against the float64 reference


def lstm_inputs(batch, hidden, seed=0):
    return randn((batch, 4 * hidden), 2.0, seed), randn((batch, hidden), 1.0, seed + 1)


def gru_inputs(batch, hidden, seed=0):
    return (randn((batch, 3 * hidden), 2.0, seed), randn((batch, 3 * hidden), 2.0, seed + 1),
            randn((batch, hidden), 1.0, seed + 2))


def run_lstm_forward(mod, gates, c_prev, grid, block):
    batch, hidden = c_prev.shape
    h, c = ce.nan_array(c_prev.shape), ce.nan_array(c_prev.shape)
    mod.launch("lstm_cell_forward_f32", grid, block, (gates, c_prev, h, c, batch, hidden))
    return h, c


def run_lstm_backward(mod, gates, c_prev, grad_h, grad_c, grid, block):
    batch, hidden = c_prev.shape
    grad_gates, grad_c_prev = ce.nan_array(gates.shape), ce.nan_array(c_prev.shape)
    mod.launch("lstm_cell_backward_f32", grid, block,
               (gates, c_prev, grad_h, grad_c, grad_gates, grad_c_prev, batch, hidden))
    return grad_gates, grad_c_prev


def run_gru_forward(mod, gi, gh, h_prev, grid, block):
    batch, hidden = h_prev.shape
    h = ce.nan_array(h_prev.shape)
    mod.launch("gru_cell_forward_f32", grid, block, (gi, gh, h_prev, h, batch, hidden))
    return h


def run_gru_backward(mod, gi, gh, h_prev, grad_h, grid, block):
    batch, hidden = h_prev.shape
    out = ce.nan_array(gi.shape), ce.nan_array(gh.shape), ce.nan_array(h_prev.shape)
    mod.launch("gru_cell_backward_f32", grid, block, (gi, gh, h_prev, grad_h, *out, batch, hidden))
    return out


@pytest.mark.parametrize("batch, hidden, grid, block", CASES)
def test_lstm_cell_forward(mod, batch, hidden, grid, block):
    gates, c_prev = lstm_inputs(batch, hidden, seed=hidden)
    h, c = run_lstm_forward(mod, gates, c_prev, grid, block)
    exp_h, exp_c = ref.lstm_cell(np, *f64(gates, c_prev))
    assert_close(h, exp_h, **TOLERANCE)
    assert_close(c, exp_c, **TOLERANCE)


@pytest.mark.parametrize("batch, hidden, grid, block", CASES)
def test_lstm_cell_backward(mod, batch, hidden, grid, block):
    gates, c_prev = lstm_inputs(batch, hidden, seed=hidden)
    grad_h, grad_c = randn((batch, hidden), seed=7), randn((batch, hidden), seed=8)
    grad_gates, grad_c_prev = run_lstm_backward(mod, gates, c_prev, grad_h, grad_c, grid, block)
    exp_gates, exp_c_prev = ref.lstm_cell_backward(np, *f64(gates, c_prev, grad_h, grad_c))
    assert_close(grad_gates, exp_gates, **TOLERANCE)
    assert_close(grad_c_prev, exp_c_prev, **TOLERANCE)


@pytest.mark.parametrize("batch, hidden, grid, block", CASES)
def test_gru_cell_forward(mod, batch, hidden, grid, block):
    gi, gh, h_prev = gru_inputs(batch, hidden, seed=hidden)
    h = run_gru_forward(mod, gi, gh, h_prev, grid, block)
    assert_close(h, ref.gru_cell(np, *f64(gi, gh, h_prev)), **TOLERANCE)


@pytest.mark.parametrize("batch, hidden, grid, block", CASES)
def test_gru_cell_backward(mod, batch, hidden, grid, block):
    gi, gh, h_prev = gru_inputs(batch, hidden, seed=hidden)
    grad_h = randn((batch, hidden), seed=9)
    got = run_gru_backward(mod, gi, gh, h_prev, grad_h, grid, block)
    for actual, expected in zip(got, ref.gru_cell_backward(np, *f64(gi, gh, h_prev, grad_h))):
        assert_close(actual, expected, **TOLERANCE)


def test_saturated_gates_stay_finite(mod):
    gates = np.array([[80.0, -80.0, 80.0, -80.0], [-80.0, 80.0, -80.0, 80.0]], np.float32)
    c_prev = np.array([[0.5], [0.5]], np.float32)
    h, c = run_lstm_forward(mod, gates, c_prev, 1, 32)
    np.testing.assert_allclose(c, [[1.0], [0.5]], rtol=1e-6)  # i = g = 1, f = 0 | i = 0, f = 1
    np.testing.assert_allclose(h, [[0.0], [np.tanh(0.5)]], rtol=1e-6, atol=1e-30)
    grads = run_lstm_backward(mod, gates, c_prev, np.ones_like(c_prev), np.ones_like(c_prev), 1, 32)
    assert all(np.isfinite(g).all() for g in grads)
    gi = np.array([[80.0, -80.0, 80.0]], np.float32)
    h = run_gru_forward(mod, gi, -gi, np.array([[0.25]], np.float32), 1, 32)
    np.testing.assert_allclose(h, [[ref.gru_cell(np, *f64(gi, -gi, np.array([[0.25]])))[0, 0]]], rtol=1e-6)


def torch_lstm_cell(gates, c_prev):
    i, f, g, o = gates.chunk(4, -1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def torch_gru_cell(gi, gh, h_prev):
    (ir, iz, in_), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
    r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
    n = torch.tanh(in_ + r * hn)
    return (1 - z) * n + z * h_prev


def test_lstm_reference_matches_torch_autograd():
    gates, c_prev = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in lstm_inputs(4, 6, seed=3))
    h, c = torch_lstm_cell(gates, c_prev)
    grad_h, grad_c = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    torch.autograd.backward((h, c), (grad_h, grad_c))
    args = [t.detach().numpy() for t in (gates, c_prev)]
    exp_h, exp_c = ref.lstm_cell(np, *args)
    np.testing.assert_allclose(exp_h, h.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(exp_c, c.detach().numpy(), rtol=1e-12)
    grad_gates, grad_c_prev = ref.lstm_cell_backward(np, *args, grad_h.numpy(), grad_c.numpy())
    np.testing.assert_allclose(grad_gates, gates.grad.numpy(), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(grad_c_prev, c_prev.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_gru_reference_matches_torch_autograd():
    inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in gru_inputs(4, 6, seed=5)]
    h = torch_gru_cell(*inputs)
    grad_h = torch.randn(4, 6, dtype=torch.float64)
    h.backward(grad_h)
    args = [t.detach().numpy() for t in inputs]
    np.testing.assert_allclose(ref.gru_cell(np, *args), h.detach().numpy(), rtol=1e-12)
    for got, t in zip(ref.gru_cell_backward(np, *args, grad_h.numpy()), inputs):
        np.testing.assert_allclose(got, t.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_rnn_kernels_under_address_sanitizer():
    asan = ce.load(RNN, sanitize="address")
    gates, c_prev = lstm_inputs(3, 37, seed=1)
    grad_h, grad_c = randn((3, 37), seed=2), randn((3, 37), seed=3)
    h, c = run_lstm_forward(asan, gates, c_prev, 2, 64)
    grad_gates, grad_c_prev = run_lstm_backward(asan, gates, c_prev, grad_h, grad_c, 2, 64)
    for actual, expected in zip((h, c, grad_gates, grad_c_prev),
                                (*ref.lstm_cell(np, *f64(gates, c_prev)),
                                 *ref.lstm_cell_backward(np, *f64(gates, c_prev, grad_h, grad_c)))):
        assert_close(actual, expected, **TOLERANCE)
    gi, gh, h_prev = gru_inputs(3, 37, seed=4)
    h = run_gru_forward(asan, gi, gh, h_prev, 2, 64)
    assert_close(h, ref.gru_cell(np, *f64(gi, gh, h_prev)), **TOLERANCE)
    got = run_gru_backward(asan, gi, gh, h_prev, grad_h, 2, 64)
    for actual, expected in zip(got, ref.gru_cell_backward(np, *f64(gi, gh, h_prev, grad_h))):
        assert_close(actual, expected, **TOLERANCE)
