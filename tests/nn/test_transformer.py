"""TransformerEncoderLayer / TransformerEncoder against PyTorch on the same weights (outputs and every gradient,
float64, dropout off, on "cpu" and "cuda-emu"), gradcheck, and the positional encodings against the PyTorch
tutorial's sinusoids and an Embedding lookup."""
import math

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet import nn
from gpunet.nn.transformer import generate_square_subsequent_mask
from gpunet.testing import gradcheck

pytestmark = [pytest.mark.filterwarnings("ignore:Support for mismatched src_key_padding_mask"),
              pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")]

TOL = 1e-10
D_MODEL, NHEAD, FF, SEQ, BATCH = 8, 2, 16, 5, 3


def close(ours, theirs, tol=TOL):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=tol, atol=tol)


def copy_weights(theirs, ours):
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in state.items()]
    ours.load_state_dict(state)
    return ours


def randomise_norms(module):
    """LayerNorm weights start at 1 and biases at 0; give them random values so that they are tested too."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name:
                p.normal_()


def compare(theirs, ours, x, seed=0, **masks):
    """Outputs and the gradients of input and every parameter, for the same random weighting of the output."""
    tx, gx = torch.tensor(x, requires_grad=True), gn.tensor(x, requires_grad=True)
    t_out = theirs(tx, **{k: torch.tensor(v) for k, v in masks.items()})
    g_out = ours(gx, **{k: gn.tensor(v) for k, v in masks.items()})
    assert tuple(g_out.shape) == tuple(t_out.shape)
    close(g_out, t_out)
    w = np.random.default_rng(seed).standard_normal(tuple(t_out.shape))
    (t_out * torch.tensor(w)).sum().backward()
    (g_out * gn.tensor(w)).sum().backward()
    close(gx.grad, tx.grad)
    for (name, gp), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert gp.grad is not None, name
        close(gp.grad, tp.grad)
    return g_out


LAYER_CONFIGS = {
    "post_norm_relu": {},
    "pre_norm_gelu": {"norm_first": True, "activation": "gelu"},
    "batch_first_no_bias": {"batch_first": True, "bias": False},
    "pre_norm_batch_first_eps": {"norm_first": True, "batch_first": True, "layer_norm_eps": 1e-3},
}


def _masks(kind):
    padding = np.zeros((BATCH, SEQ), dtype=bool)
    padding[1, -2:] = True
    causal = np.triu(np.full((SEQ, SEQ), -np.inf), 1)
    return {"none": {},
            "causal_and_padding": {"src_mask": causal, "src_key_padding_mask": padding},
            "bool_padding": {"src_key_padding_mask": padding}}[kind]


def _layers(config, dropout=0.1):
    torch.manual_seed(0)
    theirs = torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dropout=dropout, dtype=torch.float64, **config)
    randomise_norms(theirs)
    ours = nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dropout=dropout, dtype=np.float64, **config)
    return theirs.eval(), copy_weights(theirs, ours).eval()


def _input(config, rng):
    return rng.standard_normal((BATCH, SEQ, D_MODEL) if config.get("batch_first") else (SEQ, BATCH, D_MODEL))


@pytest.mark.parametrize("masks", ["none", "causal_and_padding"])
@pytest.mark.parametrize("config", LAYER_CONFIGS)
def test_encoder_layer_matches_torch(device, config, masks):
    theirs, ours = _layers(LAYER_CONFIGS[config])
    compare(theirs, ours, _input(LAYER_CONFIGS[config], np.random.default_rng(1)), **_masks(masks))


def test_encoder_layer_activation_module_and_unbatched_input(device):
    torch.manual_seed(1)
    theirs = torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, activation=torch.nn.GELU(approximate="tanh"),
                                              dtype=torch.float64).eval()
    ours = copy_weights(theirs, nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, activation=nn.GELU(approximate="tanh"),
                                                           dtype=np.float64).eval())
    compare(theirs, ours, np.random.default_rng(2).standard_normal((SEQ, D_MODEL)))


def test_encoder_stack_with_final_norm_matches_torch(device):
    torch.manual_seed(2)
    layer = torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dtype=torch.float64, batch_first=True)
    theirs = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(D_MODEL, dtype=torch.float64),
                                         enable_nested_tensor=False)
    randomise_norms(theirs)
    with torch.no_grad():  # the copies of one layer start equal; make them differ
        for p in theirs.layers[1].parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dtype=np.float64, batch_first=True), 2,
                                 norm=nn.LayerNorm(D_MODEL, dtype=np.float64))
    copy_weights(theirs, ours)
    assert list(ours.state_dict())[:2] == ["layers.0.self_attn.in_proj_weight", "layers.0.self_attn.in_proj_bias"]
    assert list(ours.state_dict())[-2:] == ["norm.weight", "norm.bias"]
    theirs.eval(), ours.eval()
    rng = np.random.default_rng(3)
    masks = _masks("causal_and_padding")
    compare(theirs, ours, rng.standard_normal((BATCH, SEQ, D_MODEL)), mask=masks["src_mask"],
            src_key_padding_mask=masks["src_key_padding_mask"])


def test_fully_padded_sequence_matches_torch(device):
    """A sequence whose keys are all padding: its attention output is 0, so out_proj's bias, as in PyTorch (whose
    encoder layer calls attention without weights); the layer's output stays finite."""
    theirs, ours = _layers({})
    padding = np.zeros((BATCH, SEQ), dtype=bool)
    padding[2] = True
    out = compare(theirs, ours, _input({}, np.random.default_rng(4)), src_key_padding_mask=padding)
    assert np.all(np.isfinite(out.numpy()))


def test_eval_without_gradients_agrees_with_torch_fast_path_on_real_positions(device):
    """PyTorch's eval-mode fast path (nested tensors) returns 0 at padded positions; gpunet computes them. The real
    positions agree."""
    torch.manual_seed(3)
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dtype=torch.float64,
                                                                          batch_first=True), 2).eval()
    ours = copy_weights(theirs, nn.TransformerEncoder(nn.TransformerEncoderLayer(D_MODEL, NHEAD, FF, dtype=np.float64,
                                                                                 batch_first=True), 2)).eval()
    x = np.random.default_rng(5).standard_normal((BATCH, SEQ, D_MODEL))
    padding = _masks("bool_padding")["src_key_padding_mask"]
    with torch.no_grad():
        t_out = theirs(torch.tensor(x), src_key_padding_mask=torch.tensor(padding)).numpy()
    with gn.no_grad():
        g_out = ours(gn.tensor(x), src_key_padding_mask=gn.tensor(padding)).numpy()
    assert np.all(t_out[padding] == 0) and not np.any(g_out[padding] == 0)
    np.testing.assert_allclose(g_out[~padding], t_out[~padding], rtol=TOL, atol=TOL)


def test_dropout_acts_only_in_training(device):
    theirs, ours = _layers({}, dropout=0.3)
    _, plain = _layers({}, dropout=0.0)
    x = gn.tensor(_input({}, np.random.default_rng(6)))
    np.testing.assert_allclose(ours(x).numpy(), plain(x).numpy(), rtol=1e-12)
    ours.train()
    gn.manual_seed(0)
    first = ours(x).numpy()
    gn.manual_seed(0)
    np.testing.assert_array_equal(ours(x).numpy(), first)
    assert np.abs(first - plain(x).numpy()).max() > 1e-3


def test_encoder_layer_gradcheck(device):
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, activation="gelu", dtype=np.float64)
    rng = np.random.default_rng(7)
    for p in layer.parameters():  # away from the initial ones and zeros
        p.data[...] = p.backend.asarray(rng.standard_normal(tuple(p.shape)))
    x = gn.tensor(rng.standard_normal((3, 1, 4)), requires_grad=True)
    padding = gn.tensor(np.array([[False, False, True]]))
    assert gradcheck(lambda x, *params: layer(x, src_key_padding_mask=padding), [x, *layer.parameters()])


def test_state_dict_keys_and_repr_follow_torch():
    theirs = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 2, enable_nested_tensor=False)
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 2)
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
           [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    assert ours.layers[0].self_attn is not ours.layers[1].self_attn
    assert ours.layers[0].linear1.weight.device == ours.layers[1].linear1.weight.device


@pytest.mark.parametrize("call, message", [
    (lambda: nn.TransformerEncoderLayer(10, 3),
     r"TransformerEncoderLayer: nhead must divide d_model \(10\): .*, got 3"),
    (lambda: nn.TransformerEncoderLayer(8, 2, activation="tanh"), "TransformerEncoderLayer: activation must be one of 'relu', 'gelu' or a callable, got 'tanh'"),
    (lambda: nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2), 0), "num_layers must be a positive integer"),
    (lambda: nn.TransformerEncoderLayer(8, 2)(gn.randn(5, 3, 6)),
     r"MultiheadAttention: query of shape \(5, 3, 6\) has 6 features .* embed_dim is 8"),
    (lambda: nn.TransformerEncoderLayer(8, 2)(gn.randn(5, 3, 8),
                                              src_key_padding_mask=gn.tensor(np.zeros((5, 3), bool))),
     r"key_padding_mask of shape \(5, 3\) does not fit: it must be \(batch, source length\) = \(3, 5\)"),
])
def test_errors_name_the_layer_and_rule(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_generate_square_subsequent_mask_equals_torch():
    np.testing.assert_array_equal(generate_square_subsequent_mask(4).numpy(),
                                  torch.nn.Transformer.generate_square_subsequent_mask(4).numpy())


# ----- positional encodings ---------------------------------------------------------------------------------------

class TutorialPositionalEncoding(torch.nn.Module):
    """PyTorch's transformer tutorial's PositionalEncoding, verbatim (in float64)."""

    def __init__(self, d_model, dropout=0.1, max_len=5000):
        super().__init__()
        self.dropout = torch.nn.Dropout(p=dropout)
        position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model, dtype=torch.float64)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        x = x + self.pe[:x.size(0)]
        return self.dropout(x)


def test_sinusoidal_encoding_matches_the_pytorch_tutorial(device):
    theirs = TutorialPositionalEncoding(6, max_len=50).eval()
    ours = nn.PositionalEncoding(6, max_len=50, dtype=np.float64).eval()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [("pe", (50, 1, 6))]
    np.testing.assert_allclose(ours.pe.numpy(), theirs.pe.numpy(), rtol=1e-14, atol=1e-15)
    x = np.random.default_rng(8).standard_normal((7, 2, 6))
    tx, gx = torch.tensor(x), gn.tensor(x, requires_grad=True)
    close(ours(gx), theirs(tx))
    ours(gx).sum().backward()
    np.testing.assert_array_equal(gx.grad.numpy(), np.ones(x.shape))
    batch_first = nn.PositionalEncoding(6, max_len=50, batch_first=True, dtype=np.float64).eval()
    np.testing.assert_allclose(batch_first(gn.tensor(x.transpose(1, 0, 2))).numpy(),
                               theirs(tx).numpy().transpose(1, 0, 2), rtol=1e-14)
    np.testing.assert_allclose(ours(gn.tensor(x[:, 0])).numpy(), theirs(tx).numpy()[:, 0], rtol=1e-14)
    # worked values: position 0 is (0, 1, 0, 1, ...), position 1 starts sin(1), cos(1); odd d_model works
    odd = nn.PositionalEncoding(5, max_len=4, dtype=np.float64).pe.numpy()[:, 0]
    np.testing.assert_allclose(odd[0], [0, 1, 0, 1, 0], atol=1e-15)
    np.testing.assert_allclose(odd[1, :2], [math.sin(1), math.cos(1)], rtol=1e-14)
    np.testing.assert_allclose(odd[3, 4], math.sin(3 / 10000 ** (4 / 5)), rtol=1e-14)


def test_learned_encoding_is_an_embedding_of_positions(device):
    rng = np.random.default_rng(9)
    ours = nn.LearnedPositionalEncoding(4, dropout=0.0, max_len=10, batch_first=True, dtype=np.float64)
    table = torch.nn.Embedding(10, 4, dtype=torch.float64)
    ours.load_state_dict({"embedding.weight": table.weight.detach().numpy()})
    x = rng.standard_normal((2, 6, 4))
    tx, gx = torch.tensor(x, requires_grad=True), gn.tensor(x, requires_grad=True)
    t_out, g_out = tx + table(torch.arange(6)), ours(gx)
    close(g_out, t_out)
    w = rng.standard_normal(x.shape)
    (t_out * torch.tensor(w)).sum().backward()
    (g_out * gn.tensor(w)).sum().backward()
    close(ours.embedding.weight.grad, table.weight.grad)
    assert np.all(ours.embedding.weight.grad.numpy()[6:] == 0)
    small = nn.LearnedPositionalEncoding(2, dropout=0.0, max_len=3, dtype=np.float64)
    xs = gn.tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    assert gradcheck(lambda x, w: small(x), [xs, small.embedding.weight])


def test_positional_encoding_errors():
    with pytest.raises(ValueError, match=r"PositionalEncoding: the sequence has 9 positions but max_len is 8"):
        nn.PositionalEncoding(4, max_len=8)(gn.randn(9, 1, 4))
    with pytest.raises(ValueError, match=r"LearnedPositionalEncoding: expected an input \(N, S, d_model\) .* d_model "
                                         r"= 4, got shape \(2, 3, 5\)"):
        nn.LearnedPositionalEncoding(4, batch_first=True)(gn.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r"PositionalEncoding: dropout must be a number in \[0, 1\)"):
        nn.PositionalEncoding(4, dropout=1.0)
