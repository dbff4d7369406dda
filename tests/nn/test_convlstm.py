"""ConvLSTMCell and ConvLSTM against a float64 NumPy reference written from the equations (direct summation of the
'same' convolutions, the gates in the order i, f, g, o), on "cpu" and "cuda-emu"; gradients by gradcheck."""
import numpy as np
import pytest

import gpunet as gn
from gpunet import nn
from gpunet.testing import assert_close, gradcheck


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def conv_same(x, w):
    """Cross-correlation of x (N, C, H, W) with w (O, C, kh, kw), output the size of x: k - 1 zeros added, the
    larger half after (PyTorch's padding='same'), by summing shifted frames."""
    kh, kw = w.shape[2:]
    padded = np.pad(x, ((0, 0), (0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)))
    height, width = x.shape[2:]
    out = np.zeros((x.shape[0], w.shape[0], height, width))
    for a in range(kh):
        for b in range(kw):
            out += np.einsum("nchw,oc->nohw", padded[:, :, a:a + height, b:b + width], w[:, :, a, b])
    return out


def reference(x, layers, h0=None, c0=None):
    """ConvLSTM over x (N, T, C, H, W) in float64: layers = [(weight_ih, weight_hh, bias), ...]; returns the last
    layer's h at every step (N, T, hidden, H, W) and the final h, c of each layer."""
    h_n, c_n = [], []
    for k, (w_ih, w_hh, bias) in enumerate(layers):
        hidden = w_hh.shape[1]
        shape = (x.shape[0], hidden) + x.shape[3:]
        h = np.zeros(shape) if h0 is None else h0[k]
        c = np.zeros(shape) if c0 is None else c0[k]
        outputs = []
        for t in range(x.shape[1]):
            z = conv_same(x[:, t], w_ih) + conv_same(h, w_hh) + (0 if bias is None else bias[None, :, None, None])
            i, f, g, o = (z[:, j * hidden:(j + 1) * hidden] for j in range(4))
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            outputs.append(h)
        x = np.stack(outputs, 1)
        h_n.append(h)
        c_n.append(c)
    return x, np.stack(h_n), np.stack(c_n)


def weights(layer):
    state = {k: v.astype(np.float64) for k, v in layer.state_dict().items()}
    return [(state[f"weight_ih_l{k}"], state[f"weight_hh_l{k}"], state.get(f"bias_l{k}"))
            for k in range(layer.num_layers)]


@pytest.mark.parametrize("config", [{"kernel_size": 3}, {"kernel_size": (3, 1), "num_layers": 2},
                                    {"kernel_size": 5, "bias": False}, {"kernel_size": (2, 4)}], ids=str)
def test_conv_lstm_equals_the_float64_reference(device, config, launched_kernels):
    gn.manual_seed(0)
    layer = nn.ConvLSTM(2, 3, **config)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 2, 5, 6))
    output, (h_n, c_n) = layer(gn.tensor(x.astype(np.float32)))
    want_output, want_h, want_c = reference(x, weights(layer))
    assert output.device == gn.device(device)
    if device != "cpu":  # the gates through the fused LSTM cell kernel, run by the CUDA emulator
        assert {"im2col_f32", "lstm_cell_forward_f32"} <= set(launched_kernels)
    for got, want in ((output, want_output), (h_n, want_h), (c_n, want_c)):
        assert_close(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_return_modes_and_initial_state(device):
    gn.manual_seed(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 2, 1, 4, 4))
    h0, c0 = rng.standard_normal((2, 2, 3, 2, 4, 4))  # (num_layers, N, hidden, H, W) each
    layers = {mode: nn.ConvLSTM(1, 2, 3, num_layers=2, return_mode=mode) for mode in (None, "sequence", "last",
                                                                                       "state")}
    state = layers[None].state_dict()
    for layer in layers.values():
        layer.load_state_dict(state)
    want_output, want_h, want_c = reference(x, weights(layers[None]), h0, c0)
    hx = (gn.tensor(h0.astype(np.float32)), gn.tensor(c0.astype(np.float32)))
    xt = gn.tensor(x.astype(np.float32))
    output, (h_n, c_n) = layers[None](xt, hx)
    assert_close(output.numpy(), want_output, rtol=1e-5, atol=1e-5)
    assert_close(layers["sequence"](xt, hx).numpy(), want_output, rtol=1e-5, atol=1e-5)
    assert_close(layers["last"](xt, hx).numpy(), want_h[-1], rtol=1e-5, atol=1e-5)
    assert_close(layers["last"](xt, hx).numpy(), want_output[:, -1], rtol=1e-5, atol=1e-5)
    h_s, c_s = layers["state"](xt, hx)
    assert_close(h_s.numpy(), want_h, rtol=1e-5, atol=1e-5)
    assert_close(c_s.numpy(), want_c, rtol=1e-5, atol=1e-5)


def test_cell_is_one_step_of_the_layer(device):
    gn.manual_seed(2)
    cell = nn.ConvLSTMCell(2, 3, 3)
    rng = np.random.default_rng(2)
    x, h, c = rng.standard_normal((2, 2, 5, 5)), rng.standard_normal((2, 3, 5, 5)), rng.standard_normal((2, 3, 5, 5))
    layer_weights = [(cell.weight_ih.numpy().astype(np.float64), cell.weight_hh.numpy().astype(np.float64),
                      cell.bias.numpy().astype(np.float64))]
    _, want_h, want_c = reference(x[:, None], layer_weights, h[None], c[None])
    got_h, got_c = cell(*(gn.tensor(a.astype(np.float32)) for a in (x,)), (gn.tensor(h.astype(np.float32)),
                                                                           gn.tensor(c.astype(np.float32))))
    assert_close(got_h.numpy(), want_h[0], rtol=1e-5, atol=1e-5)
    assert_close(got_c.numpy(), want_c[0], rtol=1e-5, atol=1e-5)
    # unbatched (C, H, W) and the zero state
    h1, c1 = cell(gn.tensor(x[0].astype(np.float32)))
    _, want_h, want_c = reference(x[:1, None], layer_weights)
    assert h1.shape == (3, 5, 5)
    assert_close(h1.numpy(), want_h[0, 0], rtol=1e-5, atol=1e-5)
    assert_close(c1.numpy(), want_c[0, 0], rtol=1e-5, atol=1e-5)


def test_gradcheck(device):
    gn.manual_seed(3)
    layer = nn.ConvLSTM(1, 2, (3, 1)).to(dtype=np.float64)  # small: 122 numbers to perturb
    rng = np.random.default_rng(3)
    x = gn.tensor(rng.standard_normal((1, 3, 1, 3, 2)), requires_grad=True)
    h0, c0 = (gn.tensor(rng.standard_normal((1, 1, 2, 3, 2)), requires_grad=True) for _ in range(2))
    params = list(layer.parameters())

    def run(x, h0, c0, *weights):
        output, (h_n, c_n) = layer(x, (h0, c0))
        return output, c_n

    assert gradcheck(run, (x, h0, c0, *params))


def test_init_bound_and_parameter_shapes():
    gn.manual_seed(4)
    cell = nn.ConvLSTMCell(3, 5, (3, 5))
    assert dict((k, v.shape) for k, v in cell.state_dict().items()) == {
        "weight_ih": (20, 3, 3, 5), "weight_hh": (20, 5, 3, 5), "bias": (20,)}
    bound = 1 / np.sqrt((3 + 5) * 15)
    values = np.concatenate([p.numpy().ravel() for p in cell.parameters()])
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.9 * bound
    assert list(nn.ConvLSTM(3, 5, 3, num_layers=2).state_dict()) == [
        f"{name}_l{k}" for k in (0, 1) for name in ("weight_ih", "weight_hh", "bias")]


@pytest.mark.parametrize("make, call, message", [
    (lambda: nn.ConvLSTM(2, 3, 0), None, "kernel_size must be an integer >= 1"),
    (lambda: nn.ConvLSTM(2, 3, 3, return_mode="all"), None, "return_mode must be None or one of"),
    (lambda: nn.ConvLSTM(2, 3, 3), lambda m: m(gn.zeros(2, 4, 3, 5, 5)), "C = in_channels = 2"),
    (lambda: nn.ConvLSTM(2, 3, 3), lambda m: m(gn.zeros(4, 2, 5, 5)), "must be (N, T, C, H, W)"),
    (lambda: nn.ConvLSTM(2, 3, 3), lambda m: m(gn.zeros(1, 2, 2, 5, 5), (gn.zeros(1, 1, 3, 4, 5),) * 2),
     "h_0 must have shape (1, 1, 3, 5, 5)"),
    (lambda: nn.ConvLSTMCell(2, 3, 3), lambda m: m(gn.zeros(2, 5, 5), (gn.zeros(3, 5, 5),)),
     "hx must be a tuple (h, c)"),
    (lambda: nn.ConvLSTMCell(2, 3, 3), lambda m: m(gn.zeros(1, 2, 5, 5, dtype=np.float64)), "dtype float64"),
], ids=["kernel", "return-mode", "channels", "rank", "state-shape", "cell-state", "dtype"])
def test_bad_input_names_the_layer(make, call, message):
    with pytest.raises((ValueError, TypeError)) as info:
        layer = make()
        call(layer)
    assert message in str(info.value) and "ConvLSTM" in str(info.value)
