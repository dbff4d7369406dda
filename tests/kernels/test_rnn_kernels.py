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


def extra_args(grad_h, extra):
    """The kernels' (grad_h_extra, has_extra) arguments: grad_h stands in (unread) when there is no extra."""
    return (grad_h, np.int32(0)) if extra is None else (extra, np.int32(1))


def run_lstm_backward(mod, gates, c_prev, grad_h, grad_c, grid, block, extra=None):
    batch, hidden = c_prev.shape
    grad_gates, grad_c_prev = ce.nan_array(gates.shape), ce.nan_array(c_prev.shape)
    extra, has_extra = extra_args(grad_h, extra)
    mod.launch("lstm_cell_backward_f32", grid, block,
               (gates, c_prev, grad_h, extra, grad_c, grad_gates, grad_c_prev, batch, hidden, has_extra))
    return grad_gates, grad_c_prev


def run_gru_forward(mod, gi, gh, h_prev, grid, block):
    batch, hidden = h_prev.shape
    h = ce.nan_array(h_prev.shape)
    mod.launch("gru_cell_forward_f32", grid, block, (gi, gh, h_prev, h, batch, hidden))
    return h


def run_gru_backward(mod, gi, gh, h_prev, grad_h, grid, block, extra=None):
    batch, hidden = h_prev.shape
    out = ce.nan_array(gi.shape), ce.nan_array(gh.shape), ce.nan_array(h_prev.shape)
    extra, has_extra = extra_args(grad_h, extra)
    mod.launch("gru_cell_backward_f32", grid, block, (gi, gh, h_prev, grad_h, extra, *out, batch, hidden, has_extra))
    return out


@pytest.mark.parametrize("batch, hidden, grid, block", CASES)
def test_lstm_cell_forward(mod, batch, hidden, grid, block):
    gates, c_prev = lstm_inputs(batch, hidden, seed=hidden)
    h, c = run_lstm_forward(mod, gates, c_prev, grid, block)
    exp_h, exp_c = ref.lstm_cell(np, *f64(gates, c_prev))
    assert_close(h, exp_h, **TOLERANCE)
    assert_close(c, exp_c, **TOLERANCE)


@pytest.mark.parametrize("with_extra", [False, True], ids=["grad_h", "grad_h+extra"])
@pytest.mark.parametrize("batch, hidden, grid, block", CASES)
def test_lstm_cell_backward(mod, batch, hidden, grid, block, with_extra):
    gates, c_prev = lstm_inputs(batch, hidden, seed=hidden)
    grad_h, grad_c = randn((batch, hidden), seed=7), randn((batch, hidden), seed=8)
    extra = randn((batch, hidden), seed=10) if with_extra else None
    grad_gates, grad_c_prev = run_lstm_backward(mod, gates, c_prev, grad_h, grad_c, grid, block, extra)
    exp_gates, exp_c_prev = ref.lstm_cell_backward(np, *f64(gates, c_prev, grad_h, grad_c),
                                                   None if extra is None else extra.astype(np.float64))
    assert_close(grad_gates, exp_gates, **TOLERANCE)
    assert_close(grad_c_prev, exp_c_prev, **TOLERANCE)


@pytest.mark.parametrize("batch, hidden, grid, block", CASES)
def test_gru_cell_forward(mod, batch, hidden, grid, block):
    gi, gh, h_prev = gru_inputs(batch, hidden, seed=hidden)
    h = run_gru_forward(mod, gi, gh, h_prev, grid, block)
    assert_close(h, ref.gru_cell(np, *f64(gi, gh, h_prev)), **TOLERANCE)


@pytest.mark.parametrize("with_extra", [False, True], ids=["grad_h", "grad_h+extra"])
@pytest.mark.parametrize("batch, hidden, grid, block", CASES)
def test_gru_cell_backward(mod, batch, hidden, grid, block, with_extra):
    gi, gh, h_prev = gru_inputs(batch, hidden, seed=hidden)
    grad_h = randn((batch, hidden), seed=9)
    extra = randn((batch, hidden), seed=11) if with_extra else None
    got = run_gru_backward(mod, gi, gh, h_prev, grad_h, grid, block, extra)
    expected_all = ref.gru_cell_backward(np, *f64(gi, gh, h_prev, grad_h), None if extra is None else f64(extra)[0])
    for actual, expected in zip(got, expected_all):
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
    extra = randn((3, 37), seed=5)
    grad_gates, grad_c_prev = run_lstm_backward(asan, gates, c_prev, grad_h, grad_c, 2, 64, extra)
    for actual, expected in zip((h, c, grad_gates, grad_c_prev),
                                (*ref.lstm_cell(np, *f64(gates, c_prev)),
                                 *ref.lstm_cell_backward(np, *f64(gates, c_prev, grad_h, grad_c, extra)))):
        assert_close(actual, expected, **TOLERANCE)
    gi, gh, h_prev = gru_inputs(3, 37, seed=4)
    h = run_gru_forward(asan, gi, gh, h_prev, 2, 64)
    assert_close(h, ref.gru_cell(np, *f64(gi, gh, h_prev)), **TOLERANCE)
    got = run_gru_backward(asan, gi, gh, h_prev, grad_h, 2, 64, extra)
    for actual, expected in zip(got, ref.gru_cell_backward(np, *f64(gi, gh, h_prev, grad_h, extra))):
        assert_close(actual, expected, **TOLERANCE)


NOT_LAUNCHES = {"empty", "empty_like", "reshape", "transpose", "swapaxes", "broadcast_to"}  # allocations and views


@pytest.fixture
def device_launches(monkeypatch):
    """Every device launch on cuda-emu, by name, as CuPy would make them: the raw kernels (the stand-in's launch
    spy), and the array operations that launch one (a ufunc: elementwise or matmul; a copy into a slice; an array
    function such as concatenate or where); allocations and views are no launches."""
    from gpunet.backend.emulated import cupy_standin
    from gpunet.backend.emulated.device_array import DeviceArray

    names = []
    kernel_call, ufunc, function = (cupy_standin._Kernel.__call__, DeviceArray.__array_ufunc__,
                                    DeviceArray.__array_function__)

    def spy_kernel(self, *args, **kwargs):
        names.append(self.name)
        return kernel_call(self, *args, **kwargs)

    def spy_ufunc(self, uf, method, *inputs, **kwargs):
        names.append(uf.__name__)
        return ufunc(self, uf, method, *inputs, **kwargs)

    def spy_function(self, func, types, args, kwargs):
        contiguous_already = func.__name__ == "ascontiguousarray" and args[0].flags.c_contiguous
        if func.__name__ not in NOT_LAUNCHES and not contiguous_already:
            names.append(func.__name__)
        return function(self, func, types, args, kwargs)

    def spy_setitem(self, key, value):
        names.append("copy")
        np.ndarray.__setitem__(self, key, value)

    monkeypatch.setattr(cupy_standin._Kernel, "__call__", spy_kernel)
    monkeypatch.setattr(DeviceArray, "__array_ufunc__", spy_ufunc)
    monkeypatch.setattr(DeviceArray, "__array_function__", spy_function)
    monkeypatch.setattr(DeviceArray, "__setitem__", spy_setitem)
    return names


def layer_launches(mode, steps, launches, device):
    """The launches of one float32 layer over ``steps`` steps on ``device``: (forward, backward from the outputs)."""
    import gpunet as gn
    from gpunet.ops.rnn import MODES, recurrent_layer

    rng = np.random.default_rng(0)
    batch, features, hidden, gates = 3, 5, 4, MODES[mode] * 4

    def tensor(*shape, grad=True):
        return gn.tensor(rng.standard_normal(shape).astype(np.float32), device=device, requires_grad=grad)

    x, h0, c0 = tensor(steps, batch, features), tensor(batch, hidden), tensor(batch, hidden)
    weights = tensor(gates, features), tensor(gates, hidden), tensor(gates), tensor(gates)
    grad_out = tensor(steps, batch, hidden, grad=False)
    launches.clear()
    outputs = recurrent_layer(mode, x, h0, c0 if mode == "LSTM" else None, *weights)
    forward = list(launches)
    launches.clear()
    outputs[0].backward(grad_out)
    return forward, list(launches)


@pytest.mark.parametrize("mode, forward_per_step, backward_per_step", [
    ("LSTM", ["matmul", "add", "lstm_cell_forward_f32"], ["lstm_cell_backward_f32", "matmul"]),
    ("GRU", ["matmul", "add", "gru_cell_forward_f32"], ["gru_cell_backward_f32", "matmul", "add"]),
])
@pytest.mark.parametrize("device", ["cuda-emu", "cuda-emu:1"])
def test_launches_per_time_step(device_launches, mode, forward_per_step, backward_per_step, device):
    """The cells write straight into the sequence buffers (issue 9): forward 3 launches per step (the recurrent
    GEMM, the add of the recurrent product or the GRU's bias, the cell), backward 2 for the LSTM (the cell adds the
    output's gradient) and 3 for the GRU. Measured as the launches of an 8-step layer minus those of a 1-step one."""
    forward_1, backward_1 = layer_launches(mode, 1, device_launches, device)
    forward_8, backward_8 = layer_launches(mode, 8, device_launches, device)
    for one, eight, per_step in ((forward_1, forward_8, forward_per_step), (backward_1, backward_8, backward_per_step)):
        assert len(eight) - len(one) == 7 * len(per_step), (one, eight)
        assert sorted(eight) == sorted(one + per_step * 7)
