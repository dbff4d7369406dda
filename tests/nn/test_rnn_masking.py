"""Padded batches and sequential-model outputs of RNN, LSTM and GRU: ``lengths`` against PyTorch's
``pack_padded_sequence`` on the same weights (float64, values and every gradient), each sequence of a padded batch
against itself alone, ``mask_value`` after an Embedding with ``padding_idx`` (pre- and post-padding), and the
``return_mode`` outputs, on "cpu" and "cuda-emu"."""
import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import gpunet as gn
from gpunet import nn
from gpunet.ops.rnn import recurrent_layer, recurrent_steps
from gpunet.testing import gradcheck, gradgradcheck

KINDS = ("LSTM", "GRU", "RNN")
CONFIGS = [{}, {"num_layers": 2, "bidirectional": True}, {"batch_first": True, "bidirectional": True},
           {"num_layers": 2, "batch_first": True, "bias": False}]
LENGTHS = [5, 2, 4, 1]


def twin(theirs, **extra):
    """The float64 gpunet copy of a torch recurrent module."""
    kwargs = {k: getattr(theirs, k) for k in ("num_layers", "bias", "batch_first", "bidirectional")}
    ours = getattr(nn, type(theirs).__name__)(theirs.input_size, theirs.hidden_size, dtype=gn.float64,
                                              **kwargs, **extra)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours


def states_of(kind, state):
    return list(state) if kind == "LSTM" else [state]


def close(ours, theirs):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("hidden", [4, 40], ids=["gate-major", "batch-major"])  # both layouts of the CPU's lstm_layer
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()) or "default")
@pytest.mark.parametrize("kind", KINDS)
def test_lengths_match_torch_packed_sequences(device, kind, config, hidden):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(3, hidden, **config).double()
    ours = twin(theirs)
    rng = np.random.default_rng(1)
    steps, batch = max(LENGTHS), len(LENGTHS)
    batch_first = config.get("batch_first", False)
    x = rng.standard_normal((batch, steps, 3) if batch_first else (steps, batch, 3))
    directions = 2 if config.get("bidirectional") else 1
    h0 = [rng.standard_normal((directions * config.get("num_layers", 1), batch, hidden))
          for _ in range(2 if kind == "LSTM" else 1)]
    tx, *th0 = [torch.tensor(a, requires_grad=True) for a in [x, *h0]]
    gx, *gh0 = [gn.tensor(a, requires_grad=True) for a in [x, *h0]]

    packed = pack_padded_sequence(tx, torch.tensor(LENGTHS), batch_first=batch_first, enforce_sorted=False)
    t_packed, t_state = theirs(packed, tuple(th0) if kind == "LSTM" else th0[0])
    t_out, _ = pad_packed_sequence(t_packed, batch_first=batch_first, total_length=steps)
    g_out, g_state = ours(gx, tuple(gh0) if kind == "LSTM" else gh0[0], lengths=LENGTHS)

    t_all, g_all = [t_out, *states_of(kind, t_state)], [g_out, *states_of(kind, g_state)]
    weights = np.random.default_rng(2)
    t_loss = g_loss = 0
    for t, g in zip(t_all, g_all):
        close(g, t)
        w = weights.standard_normal(tuple(t.shape))
        t_loss = t_loss + (t * torch.tensor(w)).sum()
        g_loss = g_loss + (g * gn.tensor(w)).sum()
    t_loss.backward()
    g_loss.backward()
    for g, t in zip([gx, *gh0], [tx, *th0]):
        close(g.grad, t.grad)
    for (name, g), (_, t) in zip(ours.named_parameters(), theirs.named_parameters()):
        close(g.grad, t.grad)


@pytest.mark.parametrize("kind", KINDS)
def test_each_sequence_of_a_padded_batch_gives_what_it_gives_alone(device, kind):
    gn.manual_seed(3)
    layer = getattr(nn, kind)(3, 5, num_layers=2, bidirectional=True, batch_first=True, dtype=gn.float64,
                              return_mode="last")
    x = gn.randn(len(LENGTHS), max(LENGTHS), 3, dtype=gn.float64, requires_grad=True)
    last = layer(x, lengths=LENGTHS)
    assert tuple(last.shape) == (len(LENGTHS), 10)
    weights = gn.randn(*last.shape, dtype=gn.float64)
    (last * weights).sum().backward()
    for n, length in enumerate(LENGTHS):
        alone = gn.tensor(x.numpy()[n:n + 1, :length], requires_grad=True)
        expected = layer(alone)
        np.testing.assert_allclose(last.numpy()[n:n + 1], expected.numpy(), rtol=1e-12, atol=1e-12)
        (expected * weights[n:n + 1]).sum().backward()
        np.testing.assert_allclose(x.grad.numpy()[n, :length], alone.grad.numpy()[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(x.grad.numpy()[n, length:], 0)  # padding gets no gradient


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("kind", KINDS)
def test_mask_value_after_an_embedding_skips_padding_tokens(device, kind, padding):
    """Embedding(padding_idx=0) -> LSTM(mask_value=0.0, return_mode="last") in a Sequential, as in a config: the
    readout of every padded sequence is that of its real tokens alone, wherever the padding is."""
    gn.manual_seed(4)
    model = nn.Sequential(nn.Embedding(20, 6, padding_idx=0, dtype=gn.float64),
                          getattr(nn, kind)(6, 4, batch_first=True, bidirectional=True, dtype=gn.float64,
                                            return_mode="last", mask_value=0.0),
                          nn.Linear(8, 1, dtype=gn.float64))
    sequences = [[3, 7, 1, 9, 4], [5, 2], [8, 8, 11], []]
    width = 6
    rows = [[0] * (width - len(s)) + s if padding == "pre" else s + [0] * (width - len(s)) for s in sequences]
    batch = model(gn.tensor(np.array(rows, dtype=np.int64)))
    for n, tokens in enumerate(sequences):
        if tokens:
            alone = model(gn.tensor(np.array([tokens], dtype=np.int64)))
        else:  # nothing but padding: the initial (zero) state is the readout
            alone = model[2](gn.zeros(1, 8, dtype=gn.float64))
        np.testing.assert_allclose(batch.numpy()[n], alone.numpy()[0], rtol=1e-12, atol=1e-12)
    batch.sum().backward()
    assert not np.any(model[0].weight.grad.numpy()[0])  # the padding row learns nothing
    assert np.all(model[0].weight.grad.numpy()[[3, 7, 5, 8]] != 0)


@pytest.mark.parametrize("kind", KINDS)
def test_return_modes_pick_pytorch_outputs(device, kind):
    gn.manual_seed(5)
    kwargs = {"num_layers": 2, "bidirectional": True, "batch_first": True}
    full = getattr(nn, kind)(3, 4, **kwargs)
    x = gn.randn(2, 5, 3)
    output, state = full(x)
    h_n = state[0] if kind == "LSTM" else state
    picked = {}
    for mode in ("sequence", "last", "state"):
        layer = getattr(nn, kind)(3, 4, **kwargs, return_mode=mode)
        layer.load_state_dict(full.state_dict())
        picked[mode] = layer(x)
    np.testing.assert_array_equal(picked["sequence"].numpy(), output.numpy())
    expected_last = np.concatenate([h_n.numpy()[-2], h_n.numpy()[-1]], axis=-1)
    np.testing.assert_array_equal(picked["last"].numpy(), expected_last)
    # "last" is the output at the last step (forward half) and at the first step (reverse half), as Keras' Bidirectional
    np.testing.assert_allclose(expected_last[:, :4], output.numpy()[:, -1, :4], rtol=0, atol=0)
    np.testing.assert_allclose(expected_last[:, 4:], output.numpy()[:, 0, 4:], rtol=0, atol=0)
    for a, b in zip(states_of(kind, picked["state"]), states_of(kind, state)):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    unbatched = getattr(nn, kind)(3, 4, return_mode="last")(gn.randn(5, 3))
    assert tuple(unbatched.shape) == (4,)
    assert "return_mode='last', mask_value=0.0" in repr(nn.GRU(3, 4, return_mode="last", mask_value=0.0))


@pytest.mark.parametrize("mode", ("LSTM", "GRU", "RNN_TANH", "RNN_RELU"))
def test_masked_layer_node_gradcheck_and_recorded_form(device, mode):
    gates = {"LSTM": 4, "GRU": 3}.get(mode, 1)
    rng = np.random.default_rng(9)
    shapes = [(4, 3, 2), (3, 2), (3, 2), (gates * 2, 2), (gates * 2, 2), (gates * 2,), (gates * 2,)]
    inputs = [gn.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    if mode != "LSTM":
        inputs[2] = None
    mask = np.array([[1, 1, 0], [0, 1, 0], [1, 1, 0], [1, 0, 0]], dtype=bool)  # holes, and an empty sequence
    for reverse in (False, True):
        fused = recurrent_layer(mode, *inputs, reverse=reverse, mask=mask)
        keep = gn.tensor(mask[..., None].astype(np.float64))
        steps = recurrent_steps(mode, *inputs, reverse=reverse, keep=keep)
        for a, b in zip(fused, steps):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(fused[1].numpy()[2], inputs[1].numpy()[2])  # all padding: h_n = h0
        np.testing.assert_array_equal(fused[0].numpy()[~mask], 0)

        def check(x, h0, *rest):
            c0, weights = (rest[0], rest[1:]) if mode == "LSTM" else (None, rest)
            return recurrent_layer(mode, x, h0, c0, *weights, reverse=reverse, mask=mask)
        checked = [t for t in inputs if t is not None]
        gradcheck(check, checked)
        if not reverse:
            gradgradcheck(check, checked)


def test_bad_masking_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="LSTM: return_mode must be None or one of 'sequence', 'last', 'state'"):
        nn.LSTM(3, 2, return_mode="sequences")
    with pytest.raises(ValueError, match="GRU: mask_value must be None or a number"):
        nn.GRU(3, 2, mask_value=True)
    layer = nn.LSTM(3, 2)
    with pytest.raises(ValueError, match=r"lengths must be 2 integers \(one per sequence"):
        layer(gn.randn(4, 2, 3), lengths=[1, 2, 3])
    with pytest.raises(ValueError, match=r"lengths must be 2 integers"):
        layer(gn.randn(4, 2, 3), lengths=[1.5, 2])
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, 4\]"):
        layer(gn.randn(4, 2, 3), lengths=[5, 2])
    with pytest.raises(ValueError, match="lengths need a batched input"):
        layer(gn.randn(4, 3), lengths=[4])
    w = gn.randn(8, 2)
    with pytest.raises(ValueError, match=r"mask must be a boolean array of shape \(L, N\) = \(3, 1\)"):
        recurrent_layer("LSTM", gn.randn(3, 1, 2), gn.zeros(1, 2), gn.zeros(1, 2), w, w, mask=np.ones((3, 2), bool))
