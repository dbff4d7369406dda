"""kernels/layernorm.cu on the CUDA emulator against PyTorch's layer_norm in float64 (values, the saved statistics,
input/weight/bias gradients), outputs NaN-filled before every launch, several rows per block and wide rows, once under
AddressSanitizer; the backend's fused layer_norm / layer_norm_backward on cuda-emu and cuda-emu:1 against the float64
reference; gradcheck and gradgradcheck of F.layer_norm (the double backward's differentiable path) on every device."""
import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.backend import emulated as ce
from gpunet.backend import get_backend
from gpunet.backend.references import layernorm as ref
from gpunet.nn import functional as F
from gpunet.testing import gradcheck, gradgradcheck
from gpunet.testing.nvrtc import KERNELS_DIR

LAYERNORM = KERNELS_DIR / "layernorm.cu"
EPS = 1e-5


@pytest.fixture(scope="module")
def mod():
    return ce.load(LAYERNORM)


def data(rows, cols, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, (rows, cols)).astype(np.float32)  # an offset: the two-pass variance matters
    w, b, gy = (rng.standard_normal(s).astype(np.float32) for s in ((cols,), (cols,), (rows, cols)))
    return x, w, b, gy


def torch_layer_norm(x, w, b, gy):
    """PyTorch's values and gradients in float64."""
    tx, tw, tb = (None if a is None else torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    y = torch.nn.functional.layer_norm(tx, (x.shape[1],), tw, tb, EPS)
    y.backward(torch.tensor(gy, dtype=torch.float64))
    return y.detach().numpy(), tx.grad.numpy(), None if w is None else tw.grad.numpy(), \
        None if b is None else tb.grad.numpy()


def launch_all(mod, x, w, b, gy, grid, block, group, chunk=3):
    rows, cols = x.shape
    one = np.zeros(1, np.float32)
    y, mean, rstd = ce.nan_array(x.shape), ce.nan_array(rows), ce.nan_array(rows)
    mod.launch("layer_norm_forward_f32", grid, block,
               (x, one if w is None else w, one if b is None else b, y, mean, rstd, np.int64(rows), np.int64(cols),
                np.float32(EPS), np.int64(w is not None), np.int64(b is not None), np.int64(group)))
    gx = ce.nan_array(x.shape)
    mod.launch("layer_norm_backward_f32", grid, block,
               (gy, x, one if w is None else w, mean, rstd, gx, np.int64(rows), np.int64(cols), np.int64(w is not None),
                np.int64(group)))
    chunks = -(-rows // chunk)
    pw, pb = ce.nan_array((chunks, cols)), ce.nan_array((chunks, cols))
    mod.launch("layer_norm_param_grad_f32", max(1, chunks * cols // 64), 32,  # fewer threads than work
               (gy, x, mean, rstd, pw, pb, np.int64(rows), np.int64(cols), np.int64(chunk)))
    return y, mean, rstd, gx, pw.sum(0), pb.sum(0)


CASES = [  # rows, cols, grid, block, group, affine
    (1, 1, 1, 32, 32, True),
    (5, 24, 1, 64, 32, True),       # a warp per row, 2 rows per block: 3 sweeps, the last half idle
    (13, 10, 2, 64, 16, True),      # 16 threads per row, grid-stride over row groups
    (7, 33, 3, 256, 32, False),     # no weight and bias
    (4, 1000, 2, 64, 32, True),     # a warp over 1000 columns
    (3, 1100, 2, 256, 256, True),   # wide rows: a block each, grid smaller than the rows
    (9, 7, 1, 96, 3, True),         # a group that is not a power of two
]


@pytest.mark.parametrize("rows, cols, grid, block, group, affine", CASES)
def test_kernels_match_torch(mod, rows, cols, grid, block, group, affine):
    x, w, b, gy = data(rows, cols, seed=rows + cols)
    if not affine:
        w = b = None
    y, mean, rstd, gx, gw, gb = launch_all(mod, x, w, b, gy, grid, block, group)
    ty, tgx, tgw, tgb = torch_layer_norm(x, w, b, gy)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(mean, x64.mean(1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(x64.var(1) + EPS), rtol=1e-5)
    np.testing.assert_allclose(y, ty, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(gx, tgx, rtol=1e-4, atol=1e-4)
    if affine:
        np.testing.assert_allclose(gw, tgw, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gb, tgb, rtol=1e-5, atol=1e-5)


def test_reference_matches_torch_in_float64():
    x, w, b, gy = (a.astype(np.float64) for a in data(6, 17, seed=3))
    y, mean, rstd = ref.layer_norm(np, x, w, b, EPS)
    gx, gw, gb = ref.layer_norm_backward(np, gy, x, w, mean, rstd)
    for ours, theirs in zip((y, gx, gw, gb), torch_layer_norm(x, w, b, gy)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)


def test_kernels_under_address_sanitizer():
    asan = ce.load(LAYERNORM, sanitize="address")
    x, w, b, gy = data(5, 21, seed=4)
    y, _, _, gx, gw, gb = launch_all(asan, x, w, b, gy, grid=2, block=64, group=16, chunk=2)
    for ours, theirs in zip((y, gx, gw, gb), torch_layer_norm(x, w, b, gy)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", ["cuda-emu", "cuda-emu:1"])
@pytest.mark.parametrize("rows, cols, affine", [(70, 10, True), (130, 48, False), (3, 1030, True)])
def test_backend_fused_layer_norm(device, launched_kernels, rows, cols, affine):
    """130 rows: three chunks of the weight/bias gradient (64 rows each), the last partial."""
    backend = get_backend(device)
    x, w, b, gy = data(rows, cols, seed=cols)
    if not affine:
        w = b = None
    dev = [None if a is None else backend.asarray(a) for a in (x, w, b, gy)]
    y, mean, rstd = backend.layer_norm(dev[0], dev[1], dev[2], EPS)
    gx, gw, gb = backend.layer_norm_backward(dev[3], dev[0], dev[1], mean, rstd)
    assert launched_kernels == ["layer_norm_forward_f32", "layer_norm_backward_f32", "layer_norm_param_grad_f32"]
    x64, gy64 = x.astype(np.float64), gy.astype(np.float64)
    w64 = None if w is None else w.astype(np.float64)
    ey, emean, erstd = ref.layer_norm(np, x64, w64, None if b is None else b.astype(np.float64), EPS)
    egx, egw, egb = ref.layer_norm_backward(np, gy64, x64, w64, emean, erstd)
    for ours, expected in zip((y, mean, rstd, gx, gw, gb), (ey, emean, erstd, egx, egw, egb)):
        np.testing.assert_allclose(backend.to_numpy(ours), expected, rtol=1e-4, atol=1e-4)


def test_layer_norm_gradcheck_and_gradgradcheck(device):
    rng = np.random.default_rng(5)
    x, w, b = (gn.tensor(rng.standard_normal(s), dtype=gn.float64, requires_grad=True)
               for s in ((2, 3, 4), (3, 4), (3, 4)))

    def f(x, w, b):
        return F.layer_norm(x, (3, 4), w, b, eps=1e-3)

    assert gradcheck(f, (x, w, b))
    assert gradgradcheck(f, (x, w, b))


def test_kernels_have_no_data_races_under_thread_sanitizer():
    """Real threads: four rows per block share the block's reduction scratch and barriers."""
    tsan = ce.load(LAYERNORM, sanitize="thread", mode="threads")
    x, w, b, gy = data(6, 20, seed=6)
    y, _, _, gx, gw, gb = launch_all(tsan, x, w, b, gy, grid=1, block=64, group=16)
    for ours, theirs in zip((y, gx, gw, gb), torch_layer_norm(x, w, b, gy)):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
