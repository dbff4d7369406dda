"""The attention's fused masked softmax (``masked_softmax_rows_f32`` in kernels/softmax.cu): on the CUDA emulator
against the float64 reference (outputs NaN-filled, once under AddressSanitizer), through CupyBackend on cuda-emu and
cuda-emu:1 with masks of every broadcast layout, and through scaled_dot_product_attention and MultiheadAttention in
float32 against PyTorch 2.13 (values and gradients; on the CPU too). Fully-masked rows give 0 (PyTorch's SDPA), not
NaN."""
import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet import nn
from gpunet.backend import emulated as ce
from gpunet.backend import get_backend
from gpunet.backend.references import softmax as ref
from gpunet.nn import functional as F
from gpunet.testing.nvrtc import KERNELS_DIR

pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask and attn_mask")

SOFTMAX = KERNELS_DIR / "softmax.cu"
EMU_DEVICES = ["cuda-emu", "cuda-emu:1"]


def scores(shape, seed=0, scale=2.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def contiguous_strides(shape):
    """Element strides of a C-contiguous array of ``shape``, 0 along dimensions of size 1."""
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step if size > 1 else 0)
        step *= size
    return strides[::-1]


def launch(mod, x, keep=None, bias=None, causal=False, grid=1, block=64, group=16):
    """masked_softmax_rows_f32 on a 4-D x (outer, heads, queries, keys) with 4-D (broadcasting) masks."""
    outer, heads, queries, keys = x.shape
    y = ce.nan_array(x.shape)
    keep_a = np.zeros(1, bool) if keep is None else np.ascontiguousarray(keep)
    bias_a = np.zeros(1, np.float32) if bias is None else np.ascontiguousarray(bias)
    ks = [0] * 4 if keep is None else contiguous_strides(keep.shape)
    bs = [0] * 4 if bias is None else contiguous_strides(bias.shape)
    args = (x, keep_a, bias_a, y, outer * heads * queries, keys, heads, queries, *ks, *bs, keep is not None,
            bias is not None, causal, group)
    mod.launch("masked_softmax_rows_f32", grid, block, tuple(np.int64(a) if not isinstance(a, np.ndarray) else a
                                                             for a in args))
    return y


def expected(x, keep=None, bias=None, causal=False):
    return ref.masked_softmax(np, x.astype(np.float64), keep, None if bias is None else bias.astype(np.float64),
                              causal)


@pytest.fixture(scope="module")
def mod():
    return ce.load(SOFTMAX)


KERNEL_CASES = [  # x shape, keep shape or None, bias shape or None, causal, grid, block, group
    ((2, 3, 5, 7), (2, 1, 1, 7), None, False, 2, 64, 8),           # key padding
    ((2, 3, 5, 7), (1, 1, 5, 7), (2, 3, 5, 7), False, 1, 64, 16),  # attn mask (L, S) and a full float mask
    ((1, 2, 6, 6), None, None, True, 1, 32, 32),                   # causal only
    ((2, 2, 4, 9), (2, 1, 1, 9), (1, 1, 4, 9), True, 3, 96, 32),   # all three, grid-stride over row groups
    ((1, 1, 3, 40), (1, 1, 3, 1), None, False, 1, 64, 16),         # a mask broadcast along the keys
    ((1, 1, 2, 1100), (1, 1, 1, 1100), (1, 1, 2, 1100), False, 2, 256, 256),  # wide rows
]


@pytest.mark.parametrize("shape, keep_shape, bias_shape, causal, grid, block, group", KERNEL_CASES)
def test_masked_kernel_matches_the_reference(mod, shape, keep_shape, bias_shape, causal, grid, block, group):
    rng = np.random.default_rng(sum(shape))
    x = scores(shape, seed=len(shape) + shape[-1])
    keep = None if keep_shape is None else rng.random(keep_shape) > 0.3
    bias = None if bias_shape is None else scores(bias_shape, seed=1, scale=1.0)
    if bias is not None:
        bias[..., 1] = -np.inf  # PyTorch's float masks hold -inf
    y = launch(mod, x, keep, bias, causal, grid, block, group)
    np.testing.assert_allclose(y, expected(x, keep, bias, causal), rtol=1e-5, atol=1e-7)


def test_fully_masked_rows_are_zero_and_others_unaffected(mod):
    x = scores((1, 2, 4, 5), seed=3)
    keep = np.ones((1, 2, 4, 5), bool)
    keep[0, 0, 1] = False                          # a row masked by keep
    bias = np.zeros((1, 1, 4, 5), np.float32)
    bias[0, 0, 2] = -np.inf                        # a row masked by -inf in the float mask (every head)
    x[0, 1, 3] = -np.inf                           # a row of -inf scores
    y = launch(mod, x, keep, bias)
    assert np.all(y[0, 0, 1] == 0) and np.all(y[:, :, 2] == 0) and np.all(y[0, 1, 3] == 0)
    np.testing.assert_allclose(y, expected(x, keep, bias), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(y.sum(-1)[0, 0, [0, 3]], 1, rtol=1e-6)
    # the plain softmax kernel keeps PyTorch's softmax rule: NaN for a row of -inf
    plain = ce.nan_array((4, 5))
    mod.launch("softmax_rows_f32", 1, 32, (x[0, 1], plain, 4, 5, 8))
    assert np.isnan(plain[3]).all() and np.isfinite(plain[:3]).all()


def test_masked_kernel_under_address_sanitizer():
    asan = ce.load(SOFTMAX, sanitize="address")
    rng = np.random.default_rng(4)
    x = scores((2, 2, 3, 11), seed=5)
    keep, bias = rng.random((2, 1, 1, 11)) > 0.3, scores((1, 2, 3, 11), seed=6)
    y = launch(asan, x, keep, bias, True, grid=2, block=64, group=16)  # 2 blocks x 4 rows over 12 rows
    np.testing.assert_allclose(y, expected(x, keep, bias, True), rtol=1e-5, atol=1e-7)


# ----- through the CUDA backend -------------------------------------------------------------------------------------

BACKEND_CASES = [  # scores shape, keep shape, bias shape, causal
    ((3, 4), (3, 4), None, False),                        # 2-D scores
    ((2, 3, 4), None, (3, 4), True),                      # 3-D (heads or batch, L, S)
    ((2, 3, 5, 6), (2, 1, 1, 6), (5, 6), False),          # MultiheadAttention: key padding and an attn mask
    ((2, 3, 5, 6), (2, 3, 5, 6), (2, 3, 5, 6), True),
    ((2, 3, 2, 5, 6), (2, 1, 2, 5, 6), None, False),      # 5-D with a mask whose leading strides do not collapse
    ((2, 3, 2, 5, 6), (3, 1, 1, 6), (1, 5, 6), True),     # 5-D with collapsible broadcast dimensions
    ((4, 10), None, None, False),                         # no mask at all: the plain softmax
]


@pytest.mark.parametrize("device", EMU_DEVICES)
@pytest.mark.parametrize("shape, keep_shape, bias_shape, causal", BACKEND_CASES)
def test_backend_masked_softmax(device, launched_kernels, shape, keep_shape, bias_shape, causal):
    backend = get_backend(device)
    rng = np.random.default_rng(len(shape))
    x = scores(shape, seed=7)
    keep = None if keep_shape is None else rng.random(keep_shape) > 0.25
    bias = None if bias_shape is None else scores(bias_shape, seed=8, scale=1.0)
    launched_kernels.clear()
    y = backend.masked_softmax(backend.asarray(x), None if keep is None else backend.asarray(keep),
                               None if bias is None else backend.asarray(bias), causal)
    assert launched_kernels == ["masked_softmax_rows_f32"]
    np.testing.assert_allclose(backend.to_numpy(y), expected(x, keep, bias, causal), rtol=1e-5, atol=1e-7)
    cpu = get_backend("cpu").masked_softmax(x, keep, bias, causal)
    np.testing.assert_allclose(backend.to_numpy(y), cpu, rtol=1e-5, atol=1e-7)


def test_backend_refuses_masks_that_do_not_fit():
    backend = get_backend("cuda-emu")
    x = backend.asarray(scores((2, 3, 4)))
    with pytest.raises(ValueError, match=r"masked_softmax: keep of shape \(2, 4, 4\) does not broadcast to the "
                                         r"scores' shape \(2, 3, 4\)"):
        backend.masked_softmax(x, backend.asarray(np.ones((2, 4, 4), bool)))
    with pytest.raises(TypeError, match="keep must be a bool mask"):
        backend.masked_softmax(x, backend.asarray(np.ones((3, 4), np.int64)))
    with pytest.raises(ValueError, match="bias of shape"):
        backend.masked_softmax(x, None, backend.asarray(np.zeros((1, 2, 3, 4), np.float32)))


# ----- through attention, float32, against PyTorch ------------------------------------------------------------------

def _pair(array):
    return torch.tensor(array, requires_grad=True), gn.tensor(array, requires_grad=True)


@pytest.mark.parametrize("mask_kind", ["bool", "float", "causal"])
def test_sdpa_float32_matches_torch_values_and_gradients(device, launched_kernels, mask_kind):
    rng = np.random.default_rng(9)
    (tq, gq), (tk, gk), (tv, gv) = (_pair(rng.standard_normal(s).astype(np.float32))
                                    for s in [(2, 3, 5, 4), (2, 3, 7, 4), (2, 3, 7, 3)])
    kwargs_t, kwargs_g, t_bias, g_bias = {"is_causal": True}, {"is_causal": True}, None, None
    if mask_kind == "bool":
        keep = rng.random((5, 7)) > 0.3
        keep[3] = False  # a query that sees no key: output 0 and no gradient, as PyTorch's SDPA
        kwargs_t, kwargs_g = {"attn_mask": torch.tensor(keep)}, {"attn_mask": gn.tensor(keep)}
    elif mask_kind == "float":
        bias = rng.standard_normal((3, 5, 7)).astype(np.float32)
        bias[:, 1, 2] = -np.inf
        t_bias, g_bias = _pair(bias)
        kwargs_t, kwargs_g = {"attn_mask": t_bias}, {"attn_mask": g_bias}
    theirs = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, **kwargs_t)
    ours = F.scaled_dot_product_attention(gq, gk, gv, **kwargs_g)
    assert ("masked_softmax_rows_f32" in launched_kernels) == device.startswith("cuda-emu")
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-5, atol=2e-6)
    w = rng.standard_normal(tuple(theirs.shape)).astype(np.float32)
    (theirs * torch.tensor(w)).sum().backward()
    (ours * gn.tensor(w)).sum().backward()
    for g, t in ((gq, tq), (gk, tk), (gv, tv)) + (((g_bias, t_bias),) if g_bias is not None else ()):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)
    if mask_kind == "bool":
        assert np.all(ours.numpy()[:, :, 3] == 0) and np.all(gq.grad.numpy()[:, :, 3] == 0)


def test_mha_float32_key_padding_and_attn_mask_match_torch(device, launched_kernels):
    torch.manual_seed(3)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    ours = nn.MultiheadAttention(8, 2, batch_first=True)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    rng = np.random.default_rng(10)
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    padding = np.zeros((3, 5), bool)
    padding[1, 3:] = padding[2, 1] = True
    attn = rng.standard_normal((5, 5)).astype(np.float32)
    tx, gx = _pair(x)
    t_out, t_w = theirs(tx, tx, tx, key_padding_mask=torch.tensor(padding), attn_mask=torch.tensor(attn))
    g_out, g_w = ours(gx, gx, gx, key_padding_mask=gn.tensor(padding), attn_mask=gn.tensor(attn))
    assert ("masked_softmax_rows_f32" in launched_kernels) == device.startswith("cuda-emu")
    np.testing.assert_allclose(g_out.numpy(), t_out.detach().numpy(), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(g_w.numpy(), t_w.detach().numpy(), rtol=1e-5, atol=1e-6)
    t_out.sum().backward()
    g_out.sum().backward()
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), dict(theirs.named_parameters())[name].grad.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


def test_masked_kernel_has_no_data_races_under_thread_sanitizer():
    tsan = ce.load(SOFTMAX, sanitize="thread", mode="threads")
    rng = np.random.default_rng(11)
    x = scores((1, 2, 3, 9), seed=12)
    keep = rng.random((1, 1, 1, 9)) > 0.3
    y = launch(tsan, x, keep, None, True, grid=1, block=64, group=16)  # 4 rows per block, 2 sweeps
    np.testing.assert_allclose(y, expected(x, keep, None, True), rtol=1e-5, atol=1e-7)
