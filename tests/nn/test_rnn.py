"""Recurrent layers and cells against PyTorch with copied weights (outputs, final states, every gradient), on
"cpu" and "cuda-emu" (the fused cell kernels run by the CUDA emulator); gradcheck and gradgradcheck in float64."""
import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet import nn
from gpunet.backend.registry import observe
from gpunet.ops.rnn import gru_cell, lstm_cell, recurrent_layer, recurrent_steps
from gpunet.testing import assert_close, gradcheck, gradgradcheck

KINDS = ("LSTM", "GRU", "RNN")
CONFIGS = [
    {},
    {"num_layers": 2, "bidirectional": True},
    {"batch_first": True, "bias": False},
    {"num_layers": 2, "batch_first": True, "bidirectional": True},
]


def copy_of(torch_module, dtype=np.float32):
    """The gpunet twin of a torch recurrent module (same class name and arguments), weights copied."""
    kwargs = {k: getattr(torch_module, k) for k in ("num_layers", "bias", "batch_first", "bidirectional")
              if hasattr(torch_module, k)}
    if getattr(torch_module, "nonlinearity", "tanh") != "tanh":
        kwargs["nonlinearity"] = torch_module.nonlinearity
    ours = getattr(nn, type(torch_module).__name__)(torch_module.input_size, torch_module.hidden_size, **kwargs)
    state = {k: v.detach().double().numpy() for k, v in torch_module.state_dict().items()}
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict(state)
    return ours.to(dtype=dtype)


def rand(rng, shape):
    return rng.standard_normal(shape)


TOLERANCE = {"rtol": 2e-5, "atol": 2e-5}


def run_both(kind, config, with_state, seq=4, batch=3, inputs=5, hidden=6, **extra):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    theirs = getattr(torch.nn, kind)(inputs, hidden, **config, **extra).double()
    ours = copy_of(theirs)
    directions = 2 if config.get("bidirectional") else 1
    x = rand(rng, (batch, seq, inputs) if config.get("batch_first") else (seq, batch, inputs))
    states = [rand(rng, (directions * config.get("num_layers", 1), batch, hidden))
              for _ in range(2 if kind == "LSTM" else 1)] if with_state else []
    tx, *tstates = [torch.tensor(a, requires_grad=True) for a in [x, *states]]
    gx, *gstates = [gn.tensor(a.astype(np.float32), requires_grad=True) for a in [x, *states]]
    hx = None if not with_state else (tuple(tstates) if kind == "LSTM" else tstates[0])
    ghx = None if not with_state else (tuple(gstates) if kind == "LSTM" else gstates[0])
    return theirs, ours, (tx, tstates, hx), (gx, gstates, ghx)


def finals(kind, out):
    output, state = out
    return [output, *(state if kind == "LSTM" else (state,))]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("kind", KINDS)
def test_layer_matches_torch_outputs_and_gradients(device, kind, config):
    with_state = bool(config)
    theirs, ours, (tx, tstates, hx), (gx, gstates, ghx) = run_both(kind, config, with_state)
    t_out, g_out = finals(kind, theirs(tx, hx)), finals(kind, ours(gx, ghx))
    weights = np.random.default_rng(2)
    t_loss = g_loss = 0
    for t, g in zip(t_out, g_out):
        assert tuple(g.shape) == tuple(t.shape)
        assert_close(g, t, **TOLERANCE)
        w = weights.standard_normal(tuple(t.shape))
        t_loss = t_loss + (t * torch.tensor(w)).sum()
        g_loss = g_loss + (g * gn.tensor(w.astype(np.float32))).sum()
    t_loss.backward()
    g_loss.backward()
    assert_close(gx.grad, tx.grad, **TOLERANCE)
    for g, t in zip(gstates, tstates):
        assert_close(g.grad, t.grad, **TOLERANCE)
    for (name, g), (_, t) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert g.grad is not None, name
        assert_close(g.grad, t.grad, **TOLERANCE)


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_input_matches_torch(device, kind):
    torch.manual_seed(3)
    theirs = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True).double()
    ours = copy_of(theirs)
    x = np.random.default_rng(0).standard_normal((5, 3))
    t_out, g_out = theirs(torch.tensor(x)), ours(gn.tensor(x.astype(np.float32)))
    for t, g in zip(finals(kind, t_out), finals(kind, g_out)):
        assert tuple(g.shape) == tuple(t.shape)
        assert_close(g, t, **TOLERANCE)


def test_rnn_relu_matches_torch(device):
    theirs, ours, (tx, tstates, hx), (gx, gstates, ghx) = run_both("RNN", {"num_layers": 2}, True,
                                                                   nonlinearity="relu")
    t_out, t_h = theirs(tx, hx)
    g_out, g_h = ours(gx, ghx)
    assert_close(g_out, t_out, **TOLERANCE)
    assert_close(g_h, t_h, **TOLERANCE)
    (t_out.sum() + t_h.sum()).backward()
    (g_out.sum() + g_h.sum()).backward()
    assert_close(gx.grad, tx.grad, **TOLERANCE)
    assert_close(ours.weight_hh_l1.grad, theirs.weight_hh_l1.grad, **TOLERANCE)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_keys_shapes_and_repr_equal_torch(kind):
    for kwargs in ({}, {"num_layers": 3, "bidirectional": True, "bias": False, "batch_first": True, "dropout": 0.25}):
        theirs, ours = getattr(torch.nn, kind)(7, 5, **kwargs), getattr(nn, kind)(7, 5, **kwargs)
        assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
               [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
        assert repr(ours) == repr(theirs)
    for module in ("RNN", "RNNCell"):
        assert repr(getattr(nn, module)(2, 3, nonlinearity="relu")) == \
               repr(getattr(torch.nn, module)(2, 3, nonlinearity="relu"))
    for cell in ("LSTMCell", "GRUCell", "RNNCell"):
        theirs, ours = getattr(torch.nn, cell)(4, 3, bias=False), getattr(nn, cell)(4, 3, bias=False)
        assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight_ih", "weight_hh"]
        assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("kind", KINDS + ("LSTMCell", "GRUCell", "RNNCell"))
def test_default_initialisation_is_uniform_within_one_over_sqrt_hidden(kind):
    gn.manual_seed(0)
    layer = getattr(nn, kind)(30, 16)
    values = np.concatenate([p.numpy().ravel() for p in layer.parameters()])
    assert np.abs(values).max() <= 0.25 and np.abs(values).max() > 0.249
    sigma = 0.25 / np.sqrt(3)  # of U(-0.25, 0.25); sample mean and std within 4 standard errors
    assert abs(values.mean()) < 4 * sigma / np.sqrt(values.size)
    assert abs(values.std() - sigma) < 4 * 0.25 / np.sqrt(5 * values.size)


def test_zero_initial_state_is_the_default(device):
    gn.manual_seed(1)
    layer = nn.LSTM(3, 4, num_layers=2)
    x = gn.randn(5, 2, 3)
    out, (h, c) = layer(x)
    out0, (h0, c0) = layer(x, (gn.zeros(2, 2, 4), gn.zeros(2, 2, 4)))
    np.testing.assert_array_equal(out.numpy(), out0.numpy())
    np.testing.assert_array_equal(c.numpy(), c0.numpy())


def test_dropout_acts_between_layers_only_in_training(device):
    gn.manual_seed(2)
    layer = nn.GRU(3, 8, num_layers=2, dropout=0.5)
    x = gn.randn(4, 2, 3)
    gn.manual_seed(7)
    a, _ = layer(x)
    gn.manual_seed(7)
    b, _ = layer(x)
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # the mask follows the seed
    c, _ = layer(x)
    assert not np.allclose(a.numpy(), c.numpy())
    theirs = torch.nn.GRU(3, 8, num_layers=2, dropout=0.5).double().eval()
    theirs.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in layer.state_dict().items()})
    e, _ = layer.eval()(x)
    assert_close(e, theirs(torch.tensor(x.numpy(), dtype=torch.float64))[0], **TOLERANCE)
    with pytest.warns(UserWarning, match="num_layers=1"):
        nn.LSTM(2, 2, dropout=0.3)


@pytest.mark.parametrize("kind", ("LSTMCell", "GRUCell", "RNNCell"))
@pytest.mark.parametrize("unbatched", [False, True])
def test_cells_match_torch(device, kind, unbatched):
    torch.manual_seed(4)
    theirs = getattr(torch.nn, kind)(5, 4).double()
    ours = getattr(nn, kind)(5, 4)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(5)
    lead = () if unbatched else (3,)
    x = rand(rng, lead + (5,))
    states = [rand(rng, lead + (4,)) for _ in range(2 if kind == "LSTMCell" else 1)]
    tx, *ts = [torch.tensor(a, requires_grad=True) for a in [x, *states]]
    gx, *gs = [gn.tensor(a.astype(np.float32), requires_grad=True) for a in [x, *states]]
    t_out = theirs(tx, tuple(ts) if kind == "LSTMCell" else ts[0])
    g_out = ours(gx, tuple(gs) if kind == "LSTMCell" else gs[0])
    t_out, g_out = (t_out, g_out) if kind == "LSTMCell" else ((t_out,), (g_out,))
    t_loss = sum((t * (k + 1)).sum() for k, t in enumerate(t_out))
    g_loss = sum((g * (k + 1)).sum() for k, g in enumerate(g_out))
    for t, g in zip(t_out, g_out):
        assert_close(g, t, **TOLERANCE)
    t_loss.backward()
    g_loss.backward()
    for g, t in zip([gx, *gs, *ours.parameters()], [tx, *ts, *theirs.parameters()]):
        assert_close(g.grad, t.grad, **TOLERANCE)
    zero_state, expected = ours(gx), theirs(tx)  # hx=None: zeros
    if kind != "LSTMCell":
        zero_state, expected = (zero_state,), (expected,)
    for g, t in zip(zero_state, expected):
        assert_close(g, t, **TOLERANCE)


@pytest.mark.parametrize("kind", KINDS)
def test_layer_gradcheck_and_gradgradcheck(device, kind):
    gn.manual_seed(5)
    layer = getattr(nn, kind)(2, 2, bidirectional=True).double()
    x = gn.randn(2, 2, 2, dtype=gn.float64, requires_grad=True)
    h0 = gn.randn(2, 2, 2, dtype=gn.float64, requires_grad=True)
    c0 = gn.randn(2, 2, 2, dtype=gn.float64, requires_grad=True)

    def fn(x, h0, c0):
        output, state = layer(x, (h0, c0) if kind == "LSTM" else h0)
        return (output, *state) if kind == "LSTM" else (output, state)

    gradcheck(fn, (x, h0, c0) if kind == "LSTM" else (x, h0, c0.detach()))
    gradgradcheck(fn, (x, h0, c0) if kind == "LSTM" else (x, h0, c0.detach()))


@pytest.mark.parametrize("mode", ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"))
@pytest.mark.parametrize("reverse", [False, True])
def test_recurrent_layer_node_gradcheck_with_every_input(device, mode, reverse):
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    rng = np.random.default_rng(9)
    shapes = [(2, 1, 2), (1, 2), (1, 2), (gates * 2, 2), (gates * 2, 2), (gates * 2,), (gates * 2,)]
    inputs = [gn.tensor(rand(rng, s), requires_grad=True) for s in shapes]
    if mode != "LSTM":
        inputs[2] = None

    def fn(x, h0, c0, *weights):
        return recurrent_layer(mode, x, h0, c0, *weights, reverse=reverse)

    ours = fn(*inputs)
    steps = recurrent_steps(mode, *inputs, reverse=reverse)
    for a, b in zip(ours, steps):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)
    check = fn if mode == "LSTM" else (lambda x, h0, *w: fn(x, h0, None, *w))
    checked = inputs if mode == "LSTM" else inputs[:2] + inputs[3:]
    gradcheck(check, checked)
    if not reverse:  # second derivatives: the recorded backward is the same code for both directions
        gradgradcheck(check, checked)


def test_cell_ops_gradcheck_and_gradgradcheck(device):
    rng = np.random.default_rng(6)
    lstm_inputs = [gn.tensor(rand(rng, s) * 2, requires_grad=True) for s in ((3, 8), (3, 2))]
    gradcheck(lstm_cell, lstm_inputs)
    gradgradcheck(lstm_cell, lstm_inputs)
    gru_inputs = [gn.tensor(rand(rng, s) * 2, requires_grad=True) for s in ((3, 6), (3, 6), (3, 2))]
    gradcheck(gru_cell, gru_inputs)
    gradgradcheck(gru_cell, gru_inputs)


@pytest.mark.parametrize("kind", ("LSTM", "GRU"))
def test_second_derivatives_with_respect_to_weights_match_torch(device, kind):
    """d/dW of |d loss/dx|^2: the recorded backward (elementary ops) against torch's double backward."""
    theirs, ours, (tx, _, _), (gx, _, _) = run_both(kind, {"num_layers": 2}, False, seq=3, batch=2, hidden=3)
    t_gx, = torch.autograd.grad((theirs(tx)[0] ** 2).sum(), tx, create_graph=True)
    (t_gx ** 2).sum().backward()
    g_gx, = gn.grad((ours(gx)[0] ** 2).sum(), gx, create_graph=True)
    (g_gx ** 2).sum().backward()
    assert_close(g_gx, t_gx, **TOLERANCE)
    for (name, g), (_, t) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_close(g.grad, t.grad, rtol=1e-4, atol=1e-4)


def test_first_order_backward_runs_the_fused_kernel_and_create_graph_the_recorded_ops(device, monkeypatch):
    backend = gn.backend.current()
    calls = []
    kernel = backend.lstm_cell_backward
    monkeypatch.setattr(backend, "lstm_cell_backward", lambda *args, **kwargs: calls.append(1) or kernel(*args, **kwargs))
    rng = np.random.default_rng(8)
    gates = gn.tensor(rand(rng, (4, 12)).astype(np.float32), requires_grad=True)
    c = gn.tensor(rand(rng, (4, 3)).astype(np.float32), requires_grad=True)

    def loss():
        h, c1 = lstm_cell(gates, c)
        return (h * h).sum() + c1.sum()

    fused = gn.grad(loss(), [gates, c])
    assert len(calls) == 1
    recorded = gn.grad(loss(), [gates, c], create_graph=True)
    assert len(calls) == 1 and all(g.requires_grad for g in recorded)
    for a, b in zip(fused, recorded):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    layer = nn.LSTM(3, 4, bidirectional=True)
    for lengths in (None, [5, 3]):  # padded or not, the same path
        output, _ = layer(gn.randn(5, 2, 3), lengths=lengths)
        with observe() as names:
            output.sum().backward()
        if backend.device.kind == "cpu":  # the whole layer in the reference, activations kept from forward
            assert names.count("lstm_layer_backward") == 2 and "lstm_cell_backward" not in names
        else:  # the CUDA cell kernel: one fused backward per step and direction
            assert names.count("lstm_cell_backward") == 5 * 2 and "lstm_layer_backward" not in names


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="input has 4 features .* input_size is 3"):
        nn.LSTM(3, 2)(gn.randn(5, 2, 4))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 2\)"):
        nn.GRU(3, 2, num_layers=2)(gn.randn(5, 2, 3), gn.zeros(1, 2, 2))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        nn.LSTM(3, 2)(gn.randn(5, 2, 3), gn.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="RNN: nonlinearity must be one of 'tanh', 'relu', got 'sigmoid'"):
        nn.RNN(3, 2, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="proj_size"):
        nn.LSTM(3, 2, proj_size=1)
    with pytest.raises(ValueError, match="dropout must be a number in"):
        nn.GRU(3, 2, num_layers=2, dropout=1.5)
    with pytest.raises(ValueError, match="hidden_size must be an integer >= 1"):
        nn.LSTM(3, 0)
    with pytest.raises(ValueError, match=r"input must be \(L, N, input_size\)"):
        nn.RNN(3, 2)(gn.randn(3))
    with pytest.raises(ValueError, match=r"c must have shape \(2, 4\)"):
        nn.LSTMCell(3, 4)(gn.randn(2, 3), (gn.zeros(2, 4), gn.zeros(2, 5)))
    with pytest.raises(ValueError, match=r"gates must be \(batch, 4\*hidden\)"):
        lstm_cell(gn.randn(2, 7), gn.randn(2, 2))
    with pytest.raises(TypeError, match="input has dtype float64 but the layer's weights have float32"):
        nn.GRU(3, 2)(gn.randn(4, 1, 3, dtype=gn.float64))
    w = gn.randn(8, 2)
    with pytest.raises(ValueError, match=r"c0 is required for mode 'LSTM'"):
        recurrent_layer("LSTM", gn.randn(3, 1, 2), gn.zeros(1, 2), None, w, w)
    with pytest.raises(ValueError, match=r"h0 must have shape \(1, 2\)"):
        recurrent_layer("LSTM", gn.randn(3, 1, 2), gn.zeros(2, 2), gn.zeros(1, 2), w, w)
    with pytest.raises(ValueError, match=r"x must be \(L, N, in\) with L >= 1"):
        recurrent_layer("GRU", gn.randn(0, 1, 2), gn.zeros(1, 2), None, gn.randn(6, 2), gn.randn(6, 2))


@pytest.mark.parametrize("hidden", [6, 40], ids=["gate-major", "batch-major"])  # both layouts of lstm_layer
def test_lstm_layer_in_float64_equals_torch_with_every_output_gradient(device, hidden):
    """The whole-layer LSTM (the CPU's, and float64's on CUDA) in float64 against PyTorch's, both directions and a
    batch-first input, with gradients flowing into the outputs of every step and into h_n and c_n."""
    torch.manual_seed(3)
    theirs = torch.nn.LSTM(5, hidden, num_layers=2, bidirectional=True, batch_first=True).double()
    ours = copy_of(theirs, np.float64)
    rng = np.random.default_rng(4)
    x, h0, c0 = rand(rng, (3, 7, 5)), rand(rng, (4, 3, hidden)), rand(rng, (4, 3, hidden))
    weights = [rand(rng, shape) for shape in ((3, 7, 2 * hidden), (4, 3, hidden), (4, 3, hidden))]
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    gx, gh0, gc0 = (gn.tensor(a, requires_grad=True) for a in (x, h0, c0))
    t_out, (t_h, t_c) = theirs(tx, (th0, tc0))
    g_out, (g_h, g_c) = ours(gx, (gh0, gc0))
    sum((o * torch.tensor(w)).sum() for o, w in zip((t_out, t_h, t_c), weights)).backward()
    sum((o * gn.tensor(w)).sum() for o, w in zip((g_out, g_h, g_c), weights)).backward()
    for g, t in [(g_out, t_out), (g_h, t_h), (g_c, t_c), (gx.grad, tx.grad), (gh0.grad, th0.grad),
                 (gc0.grad, tc0.grad)] + [(p.grad, q.grad) for p, q in zip(ours.parameters(), theirs.parameters())]:
        assert_close(g, t, rtol=1e-11, atol=1e-12)
