"""Attention against PyTorch on the same weights, in float64, on "cpu" and "cuda-emu": scaled_dot_product_attention
(masks, is_causal, scale, GQA, dropout), MultiheadAttention (every layout, mask and projection option, outputs,
weights and every gradient) and seed 002's additive attention (against the PyTorch tutorial's BahdanauAttention);
gradcheck on small shapes; fully-masked rows; clear errors."""
import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet import nn
from gpunet.nn import functional as F
from gpunet.testing import gradcheck, gradgradcheck

pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask and attn_mask")

TOL = 1e-10


def close(ours, theirs, tol=TOL):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=tol, atol=tol)


def pair(array, requires_grad=True):
    """The same float64 data as a torch tensor and a gpunet tensor (on the current device)."""
    return torch.tensor(array, requires_grad=requires_grad), gn.tensor(array, requires_grad=requires_grad)


def backward_both(t_out, g_out, seed=5):
    """Back-propagate the same random weighting of both outputs."""
    w = np.random.default_rng(seed).standard_normal(tuple(t_out.shape))
    (t_out * torch.tensor(w)).sum().backward()
    (g_out * gn.tensor(w)).sum().backward()


# ----- scaled_dot_product_attention ---------------------------------------------------------------------------------

def _sdpa_masks(rng):
    bool_2d = rng.random((4, 6)) > 0.3
    bool_2d[:, 0] = True  # no fully-masked row here (those have their own test)
    return {
        "none": {},
        "bool_2d": {"attn_mask": bool_2d},
        "bool_4d_broadcast": {"attn_mask": np.broadcast_to(bool_2d, (2, 1, 4, 6)).copy()},
        "float": {"attn_mask": rng.standard_normal((4, 6))},
        "float_with_minus_inf": {"attn_mask": np.where(bool_2d, 0.5, -np.inf)},
        "is_causal": {"is_causal": True},
        "scale": {"scale": 0.37},
    }


@pytest.mark.parametrize("case", list(_sdpa_masks(np.random.default_rng(0))))
def test_sdpa_matches_torch_values_and_gradients(device, case):
    rng = np.random.default_rng(1)
    kwargs = _sdpa_masks(np.random.default_rng(0))[case]
    (tq, gq), (tk, gk), (tv, gv) = (pair(rng.standard_normal(s)) for s in [(2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 7)])
    t_kw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    g_kw = {k: gn.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    t_out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, **t_kw)
    g_out = F.scaled_dot_product_attention(gq, gk, gv, **g_kw)
    assert tuple(g_out.shape) == (2, 3, 4, 7)
    close(g_out, t_out)
    backward_both(t_out, g_out)
    for g, t in ((gq, tq), (gk, tk), (gv, tv)):
        close(g.grad, t.grad)


def test_sdpa_float_mask_gets_the_gradient_and_gqa_matches_torch(device):
    rng = np.random.default_rng(2)
    (tq, gq), (tk, gk), (tv, gv) = (pair(rng.standard_normal(s)) for s in [(2, 4, 3, 5), (2, 2, 6, 5), (2, 2, 6, 3)])
    tm, gm = pair(rng.standard_normal((3, 6)))
    t_out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm, enable_gqa=True)
    g_out = F.scaled_dot_product_attention(gq, gk, gv, attn_mask=gm, enable_gqa=True)
    close(g_out, t_out)
    backward_both(t_out, g_out)
    for g, t in ((gq, tq), (gk, tk), (gv, tv), (gm, tm)):
        close(g.grad, t.grad)


def test_sdpa_unbatched_and_causal_with_more_keys_than_queries(device):
    rng = np.random.default_rng(3)
    (tq, gq), (tk, gk), (tv, gv) = (pair(rng.standard_normal(s)) for s in [(3, 4), (5, 4), (5, 2)])
    t_out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    g_out = F.scaled_dot_product_attention(gq, gk, gv, is_causal=True)
    close(g_out, t_out)
    # worked value: the first query sees only the first key, so its output is the first value
    np.testing.assert_allclose(g_out.numpy()[0], gv.numpy()[0], rtol=1e-12)


def test_sdpa_fully_masked_row_is_zero_with_zero_gradient_as_in_torch(device):
    rng = np.random.default_rng(4)
    (tq, gq), (tk, gk), (tv, gv) = (pair(rng.standard_normal(s)) for s in [(2, 3, 4), (2, 5, 4), (2, 5, 3)])
    keep = np.ones((3, 5), dtype=bool)
    keep[1] = False
    for t_mask, g_mask in ((torch.tensor(keep), gn.tensor(keep)),
                           (torch.tensor(np.where(keep, 0.0, -np.inf)), gn.tensor(np.where(keep, 0.0, -np.inf)))):
        for t in (tq, tk, tv, gq, gk, gv):
            t.grad = None
        t_out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, attn_mask=t_mask)
        g_out = F.scaled_dot_product_attention(gq, gk, gv, attn_mask=g_mask)
        assert np.all(g_out.numpy()[:, 1] == 0) and np.all(np.isfinite(g_out.numpy()))
        close(g_out, t_out)
        backward_both(t_out, g_out)
        assert np.all(gq.grad.numpy()[:, 1] == 0)
        for g, t in ((gq, tq), (gk, tk), (gv, tv)):
            close(g.grad, t.grad)


def test_sdpa_float32_masked_rows_through_the_softmax_kernel(device, launched_kernels):
    """float32 runs the backend's masked-softmax kernel (on cuda-emu the CUDA source, emulated), which reads the
    mask itself; a fully-masked row stays 0."""
    rng = np.random.default_rng(18)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in [(2, 3, 4), (2, 5, 4), (2, 5, 3)])
    keep = rng.random((3, 5)) > 0.4
    keep[0, 0], keep[2] = True, False
    theirs = torch.nn.functional.scaled_dot_product_attention(*map(torch.tensor, (q, k, v)),
                                                              attn_mask=torch.tensor(keep))
    ours = F.scaled_dot_product_attention(*map(gn.tensor, (q, k, v)), attn_mask=gn.tensor(keep))
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=2e-6, atol=2e-6)
    assert np.all(ours.numpy()[:, 2] == 0)
    assert ("masked_softmax_rows_f32" in launched_kernels) == device.startswith("cuda-emu")


def test_sdpa_dropout_zeroes_weights_and_scales_the_rest(device):
    """With the identity as values the output is the weight matrix: after dropout each entry is 0 or the
    undropped weight / (1 - p); the same seed gives the same mask."""
    rng = np.random.default_rng(6)
    q, k = gn.tensor(rng.standard_normal((2, 8, 4))), gn.tensor(rng.standard_normal((2, 8, 4)))
    v = gn.tensor(np.broadcast_to(np.eye(8), (2, 8, 8)).copy())
    plain = F.scaled_dot_product_attention(q, k, v).numpy()
    gn.manual_seed(11)
    dropped = F.scaled_dot_product_attention(q, k, v, dropout_p=0.25).numpy()
    gn.manual_seed(11)
    again = F.scaled_dot_product_attention(q, k, v, dropout_p=0.25).numpy()
    np.testing.assert_array_equal(dropped, again)
    kept = dropped != 0
    assert 0.5 < kept.mean() < 0.95
    np.testing.assert_allclose(dropped[kept], plain[kept] / 0.75, rtol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    ({"attn_mask": np.ones((4, 6), bool), "is_causal": True}, "not both"),
    ({"attn_mask": np.ones((5, 6), bool)}, r"does not broadcast .* \(2, 4, 6\)"),
    ({"attn_mask": np.ones((4, 6), np.int64)}, "bool or floating-point"),
    ({"dropout_p": 1.0}, r"dropout_p must be a number in \[0, 1\)"),
])
def test_sdpa_errors_name_the_rule(kwargs, message):
    q, k, v = gn.randn(2, 4, 3), gn.randn(2, 6, 3), gn.randn(2, 6, 2)
    kwargs = {key: gn.tensor(value) if isinstance(value, np.ndarray) else value for key, value in kwargs.items()}
    with pytest.raises((ValueError, TypeError), match=message):
        F.scaled_dot_product_attention(q, k, v, **kwargs)
    with pytest.raises(ValueError, match="same last .*feature"):
        F.scaled_dot_product_attention(q, gn.randn(2, 6, 4), v)
    with pytest.raises(ValueError, match="same sequence length"):
        F.scaled_dot_product_attention(q, k, gn.randn(2, 5, 2))


def test_mask_on_another_device_is_named():
    q = gn.randn(2, 3, 4, device="cuda-emu")
    with pytest.raises(RuntimeError, match="attn_mask is on cpu but the inputs are on cuda-emu"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=gn.tensor(np.ones((3, 3), bool)))


def test_sdpa_gradcheck_with_mask(device):
    rng = np.random.default_rng(7)
    q, k, v = (gn.tensor(rng.standard_normal(s), requires_grad=True) for s in [(2, 3, 2), (2, 4, 2), (2, 4, 3)])
    bias = gn.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    keep = gn.tensor(np.array([[1, 1, 0, 1], [0, 1, 1, 1], [0, 0, 0, 0]], dtype=bool))  # with a fully-masked row
    assert gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=keep), [q, k, v])
    assert gradcheck(lambda q, k, v, b: F.scaled_dot_product_attention(q, k, v, attn_mask=b), [q, k, v, bias])
    assert gradgradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=keep), [q, k, v])


# ----- MultiheadAttention -----------------------------------------------------------------------------------------

def twin(theirs, **kwargs):
    """The gpunet MultiheadAttention with ``theirs``'s arguments and weights (float64)."""
    ours = nn.MultiheadAttention(theirs.embed_dim, theirs.num_heads, dtype=np.float64, **kwargs)
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in state.items()]
    ours.load_state_dict(state)
    return ours


MHA_CONFIGS = {
    "default": {},
    "batch_first": {"batch_first": True},
    "kdim_vdim": {"kdim": 3, "vdim": 5},
    "no_bias": {"bias": False},
    "bias_kv_zero_attn": {"add_bias_kv": True, "add_zero_attn": True},
    "all": {"kdim": 3, "vdim": 5, "batch_first": True, "add_bias_kv": True, "add_zero_attn": True, "bias": False},
}


def _mha_inputs(rng, config, target_len=4, source_len=6, batch=2, embed=6):
    def seq(length, features):
        shape = (batch, length, features) if config.get("batch_first") else (length, batch, features)
        return rng.standard_normal(shape)
    kdim, vdim = config.get("kdim", embed), config.get("vdim", embed)
    return seq(target_len, embed), seq(source_len, kdim), seq(source_len, vdim)


def _mha_masks(rng, kind, target_len=4, source_len=6, batch=2, heads=3):
    padding = np.zeros((batch, source_len), dtype=bool)
    padding[0, -2:] = True
    blocked = rng.random((target_len, source_len)) > 0.7
    blocked[:, 0] = False
    return {
        "none": {},
        "bool_attn_2d": {"attn_mask": blocked},
        "float_attn_3d": {"attn_mask": rng.standard_normal((batch * heads, target_len, source_len))},
        "bool_padding": {"key_padding_mask": padding},
        "float_padding": {"key_padding_mask": np.where(padding, -np.inf, 0.0)},
        "bool_both": {"attn_mask": blocked, "key_padding_mask": padding},
        "mixed_both": {"attn_mask": rng.standard_normal((target_len, source_len)), "key_padding_mask": padding},
    }[kind]


def _run_mha(config, masks, rng, need_weights=True, average=True, self_attention=False):
    torch.manual_seed(0)
    theirs = torch.nn.MultiheadAttention(6, 3, dtype=torch.float64, **config).eval()
    ours = twin(theirs, **config).eval()
    q, k, v = _mha_inputs(rng, config)
    if self_attention:
        (tq, gq), = [pair(q)]
        t_in, g_in = (tq, tq, tq), (gq, gq, gq)
    else:
        t_in, g_in = zip(*(pair(a) for a in (q, k, v)))
    t_out, t_w = theirs(*t_in, need_weights=need_weights, average_attn_weights=average,
                        **{name: torch.tensor(m) for name, m in masks.items()})
    g_out, g_w = ours(*g_in, need_weights=need_weights, average_attn_weights=average,
                      **{name: gn.tensor(m) for name, m in masks.items()})
    return theirs, ours, (t_in, t_out, t_w), (g_in, g_out, g_w)


def _assert_mha_equal(theirs, ours, t, g):
    (t_in, t_out, t_w), (g_in, g_out, g_w) = t, g
    assert tuple(g_out.shape) == tuple(t_out.shape)
    close(g_out, t_out)
    if t_w is None:
        assert g_w is None
    else:
        assert tuple(g_w.shape) == tuple(t_w.shape)
        close(g_w, t_w)
    backward_both(t_out, g_out)
    for gx, tx in zip(g_in, t_in):
        close(gx.grad, tx.grad)
    for (name, gp), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert gp.grad is not None, name
        close(gp.grad, tp.grad)


@pytest.mark.parametrize("config", MHA_CONFIGS, ids=str)
def test_mha_matches_torch_for_every_layout_and_projection(device, config):
    rng = np.random.default_rng(8)
    masks = _mha_masks(rng, "bool_both")
    theirs, ours, t, g = _run_mha(MHA_CONFIGS[config], masks, rng)
    _assert_mha_equal(theirs, ours, t, g)


@pytest.mark.parametrize("kind", ["none", "bool_attn_2d", "float_attn_3d", "bool_padding", "float_padding",
                                  "mixed_both"])
def test_mha_matches_torch_for_every_mask(device, kind):
    rng = np.random.default_rng(9)
    theirs, ours, t, g = _run_mha({}, _mha_masks(rng, kind), rng)
    _assert_mha_equal(theirs, ours, t, g)


@pytest.mark.parametrize("need_weights, average", [(False, True), (True, False)])
def test_mha_self_attention_need_weights_and_per_head_weights(device, need_weights, average):
    rng = np.random.default_rng(10)
    masks = _mha_masks(rng, "bool_padding", source_len=4)
    theirs, ours, t, g = _run_mha({"batch_first": True}, masks, rng,
                                  need_weights=need_weights, average=average, self_attention=True)
    _assert_mha_equal(theirs, ours, t, g)


def test_mha_unbatched_input_matches_torch(device):
    rng = np.random.default_rng(11)
    torch.manual_seed(1)
    theirs = torch.nn.MultiheadAttention(4, 2, dtype=torch.float64, add_bias_kv=True)
    ours = twin(theirs, add_bias_kv=True)
    (tq, gq), (tk, gk) = pair(rng.standard_normal((3, 4))), pair(rng.standard_normal((5, 4)))
    padding = np.array([False, False, True, False, True])
    attn = rng.standard_normal((2, 3, 5))  # 3-D unbatched: (num_heads, L, S)
    t_out, t_w = theirs(tq, tk, tk, key_padding_mask=torch.tensor(padding), attn_mask=torch.tensor(attn))
    g_out, g_w = ours(gq, gk, gk, key_padding_mask=gn.tensor(padding), attn_mask=gn.tensor(attn))
    _assert_mha_equal(theirs, ours, ((tq, tk), t_out, t_w), ((gq, gk), g_out, g_w))


def test_mha_fully_masked_query_gives_out_proj_bias_like_torch_without_weights(device):
    """PyTorch: NaN with need_weights=True, 0 attention (so out_proj's bias) with need_weights=False; gpunet gives the
    latter in both cases, with weights 0 for that query."""
    rng = np.random.default_rng(12)
    torch.manual_seed(2)
    theirs = torch.nn.MultiheadAttention(4, 2, dtype=torch.float64)
    with torch.no_grad():
        theirs.out_proj.bias.normal_()
    ours = twin(theirs)
    (tx, gx), = [pair(rng.standard_normal((5, 2, 4)))]
    blocked = np.zeros((5, 5), dtype=bool)
    blocked[2] = True
    t_out, t_w = theirs(tx, tx, tx, attn_mask=torch.tensor(blocked), need_weights=False)
    assert np.all(np.isnan(theirs(tx, tx, tx, attn_mask=torch.tensor(blocked))[0].detach().numpy()[2]))
    for need_weights in (False, True):
        g_out, g_w = ours(gx, gx, gx, attn_mask=gn.tensor(blocked), need_weights=need_weights)
        close(g_out, t_out)
        np.testing.assert_allclose(g_out.numpy()[2], np.broadcast_to(ours.out_proj.bias.numpy(), (2, 4)), rtol=1e-12)
    assert np.all(g_w.numpy()[:, 2] == 0)


def test_mha_dropout_only_in_training(device):
    rng = np.random.default_rng(13)
    layer = nn.MultiheadAttention(8, 2, dropout=0.5, dtype=np.float64)
    x = gn.tensor(rng.standard_normal((5, 3, 8)))
    layer.eval()
    out_eval, w_eval = layer(x, x, x)
    layer.train()
    gn.manual_seed(3)
    out_train, w_train = layer(x, x, x, average_attn_weights=False)
    kept = w_train.numpy() != 0
    assert 0.3 < kept.mean() < 0.7
    _, w_heads = layer.eval()(x, x, x, average_attn_weights=False)
    np.testing.assert_allclose(w_train.numpy()[kept], 2 * w_heads.numpy()[kept], rtol=1e-12)
    assert not np.allclose(out_train.numpy(), out_eval.numpy())


def test_mha_state_dict_and_initialisation_follow_torch():
    for kwargs in ({}, {"kdim": 3, "vdim": 5, "add_bias_kv": True}, {"bias": False, "add_bias_kv": True}):
        theirs, ours = torch.nn.MultiheadAttention(8, 4, **kwargs), nn.MultiheadAttention(8, 4, **kwargs)
        assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
               [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    layer = nn.MultiheadAttention(8, 4)
    bound = np.sqrt(6 / (8 + 24))  # xavier_uniform_ of the (24, 8) in_proj_weight
    weight = layer.in_proj_weight.numpy()
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.8 * bound
    assert np.all(layer.in_proj_bias.numpy() == 0) and np.all(layer.out_proj.bias.numpy() == 0)
    assert (layer.embed_dim, layer.num_heads, layer.head_dim, layer._qkv_same_embed_dim) == (8, 4, 2, True)


def test_mha_gradcheck(device):
    rng = np.random.default_rng(14)
    layer = nn.MultiheadAttention(4, 2, kdim=3, add_bias_kv=True, add_zero_attn=True, dtype=np.float64)
    q = gn.tensor(rng.standard_normal((2, 1, 4)), requires_grad=True)
    k = gn.tensor(rng.standard_normal((3, 1, 3)), requires_grad=True)
    v = gn.tensor(rng.standard_normal((3, 1, 4)), requires_grad=True)
    padding = gn.tensor(np.array([[False, True, False]]))
    params = list(layer.parameters())

    def fn(q, k, v, *weights):
        out, w = layer(q, k, v, key_padding_mask=padding)
        return out, w

    assert gradcheck(fn, [q, k, v, *params])


@pytest.mark.parametrize("call, message", [
    (lambda: nn.MultiheadAttention(10, 3), r"embed_dim \(10\) must be divisible by num_heads \(3\)"),
    (lambda: nn.MultiheadAttention(0, 1), "embed_dim must be a positive integer"),
    (lambda: nn.MultiheadAttention(4, 2, dropout=1.5), r"MultiheadAttention: dropout must be a number in \[0, 1\), got 1.5"),
    (lambda: nn.MultiheadAttention(4, 2)(gn.randn(3, 2, 5), gn.randn(3, 2, 5), gn.randn(3, 2, 5)),
     r"query of shape \(3, 2, 5\) has 5 features .* embed_dim is 4"),
    (lambda: nn.MultiheadAttention(4, 2, kdim=3)(gn.randn(3, 2, 4), gn.randn(3, 2, 4), gn.randn(3, 2, 4)),
     "kdim is 3"),
    (lambda: nn.MultiheadAttention(4, 2)(gn.randn(3, 2, 4), gn.randn(5, 2, 4), gn.randn(5, 2, 4),
                                         key_padding_mask=gn.tensor(np.zeros((5, 2), bool))),
     r"key_padding_mask of shape \(5, 2\) .* \(2, 5\)"),
    (lambda: nn.MultiheadAttention(4, 2)(gn.randn(3, 2, 4), gn.randn(5, 2, 4), gn.randn(5, 2, 4),
                                         attn_mask=gn.tensor(np.zeros((2, 3, 5), bool))),
     r"attn_mask of shape \(2, 3, 5\) .* \(3, 5\) or 3-D .* \(4, 3, 5\)"),
    (lambda: nn.MultiheadAttention(4, 2)(gn.randn(3, 2, 4), gn.randn(5, 1, 4), gn.randn(5, 1, 4)),
     "different batch sizes"),
    (lambda: nn.MultiheadAttention(4, 2)(gn.randn(3, 2, 4), gn.randn(5, 2, 4), gn.randn(4, 2, 4)),
     "same batch size and sequence length"),
    (lambda: nn.MultiheadAttention(4, 2)(gn.randn(4), gn.randn(4), gn.randn(4)), "query must be 3-D"),
    (lambda: nn.MultiheadAttention(4, 2)(gn.randn(3, 2, 4), gn.randn(3, 2, 4), gn.randn(3, 2, 4), is_causal=True),
     "is_causal=True is a hint"),
])
def test_mha_errors_name_the_layer_shapes_and_rule(call, message):
    with pytest.raises(ValueError, match=f"MultiheadAttention: .*{message}|{message}"):
        call()


# ----- AdditiveAttention (seed 002's Bahdanau attention) ----------------------------------------------------------

class TutorialBahdanauAttention(torch.nn.Module):
    """PyTorch's seq2seq tutorial's BahdanauAttention, verbatim except for the key padding mask."""

    def __init__(self, hidden_size):
        super().__init__()
        self.Wa = torch.nn.Linear(hidden_size, hidden_size)
        self.Ua = torch.nn.Linear(hidden_size, hidden_size)
        self.Va = torch.nn.Linear(hidden_size, 1)

    def forward(self, query, keys, padding=None):
        scores = self.Va(torch.tanh(self.Wa(query) + self.Ua(keys)))
        scores = scores.squeeze(2).unsqueeze(1)
        if padding is not None:
            scores = scores.masked_fill(padding[:, None, :], float("-inf"))
        weights = torch.nn.functional.softmax(scores, dim=-1)
        context = torch.bmm(weights, keys)
        return context, weights


@pytest.mark.parametrize("masked", [False, True])
def test_additive_attention_matches_the_pytorch_tutorial(device, masked):
    rng = np.random.default_rng(15)
    torch.manual_seed(4)
    theirs = TutorialBahdanauAttention(5).double()
    ours = nn.AdditiveAttention(5, dtype=np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    (tq, gq), (tk, gk) = pair(rng.standard_normal((3, 1, 5))), pair(rng.standard_normal((3, 7, 5)))
    padding = np.zeros((3, 7), dtype=bool)
    padding[1, 4:] = True
    t_ctx, t_w = theirs(tq, tk, torch.tensor(padding) if masked else None)
    g_ctx, g_w = ours(gq, gk, key_padding_mask=gn.tensor(padding) if masked else None)
    close(g_ctx, t_ctx)
    close(g_w, t_w)
    assert np.all(g_w.numpy()[1, 0, 4:] == 0) == masked
    backward_both(t_ctx, g_ctx)
    for g, t in ((gq, tq), (gk, tk)):
        close(g.grad, t.grad)
    for (name, gp), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        close(gp.grad, tp.grad)


def test_additive_attention_seed_formula_with_several_queries_and_separate_values(device):
    """e_ts = v_a . tanh(W_a h_t + U_a x_s), a_t = softmax_s(e_t), c_t = sum_s a_ts value_s (seed 002), in NumPy."""
    rng = np.random.default_rng(16)
    layer = nn.AdditiveAttention(4, key_size=3, hidden_size=6, dtype=np.float64)
    h, x, values = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 7, 3)), rng.standard_normal((2, 7, 2))
    context, weights = layer(gn.tensor(h), gn.tensor(x), gn.tensor(values))
    w = {k: v for k, v in layer.state_dict().items()}
    e = np.tanh((h @ w["Wa.weight"].T + w["Wa.bias"])[:, :, None] + (x @ w["Ua.weight"].T + w["Ua.bias"])[:, None])
    e = e @ w["Va.weight"][0] + w["Va.bias"][0]
    a = np.exp(e - e.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights.numpy(), a, rtol=1e-12)
    np.testing.assert_allclose(context.numpy(), a @ values, rtol=1e-12)
    one_context, one_weights = layer(gn.tensor(h[:, 0]), gn.tensor(x), gn.tensor(values))  # one decoder step
    np.testing.assert_allclose(one_context.numpy(), context.numpy()[:, 0], rtol=1e-12)
    assert tuple(one_weights.shape) == (2, 7)


def test_additive_attention_gradcheck_and_errors(device):
    rng = np.random.default_rng(17)
    layer = nn.AdditiveAttention(2, key_size=3, hidden_size=2, dtype=np.float64)
    q = gn.tensor(rng.standard_normal((2, 2)), requires_grad=True)
    k = gn.tensor(rng.standard_normal((2, 3, 3)), requires_grad=True)
    padding = gn.tensor(np.array([[False, False, True], [False, False, False]]))
    assert gradcheck(lambda q, k, *p: layer(q, k, key_padding_mask=padding), [q, k, *layer.parameters()])
    with pytest.raises(ValueError, match=r"AdditiveAttention: keys must be \(N, S, key_size\) = \(2, S, 3\)"):
        layer(q, gn.randn(2, 3, 2).double())
    with pytest.raises(ValueError, match=r"AdditiveAttention: key_padding_mask of shape \(3,\) must be \(N, S\)"):
        layer(q, k, key_padding_mask=gn.tensor(np.zeros(3, bool)))
