"""kernels/softmax.cu on the CUDA emulator against float64 references (NumPy, and PyTorch for the
cross-entropy gradient); outputs are NaN-filled before every launch."""

import numpy as np
import pytest
import torch

from gpunet.backend.references import softmax as ref
from gpunet.backend import emulated as ce
from gpunet.testing.nvrtc import KERNELS_DIR

SOFTMAX = KERNELS_DIR / "softmax.cu"
IGNORE = -100


@pytest.fixture(scope="module")
def mod():
    return ce.load(SOFTMAX)


def logits(shape, scale, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def atol_for(x):  # float32 rounding of values of |x|'s size, plus a little
    return 4e-7 * max(1.0, float(np.abs(x).max())) + 1e-6


ROW_CASES = [  # rows, cols, scale, grid, block, group (threads per row)
    (1, 1, 1.0, 1, 256, 256),
    (1, 1000, 1.0, 1, 256, 256),
    (3, 1025, 1.0, 3, 256, 256),
    (5, 1, 1.0, 5, 32, 32),
    (7, 33, 1e3, 2, 96, 96),     # grid smaller than rows, block not a power of two, logits of 1e3
    (4, 1000, 1e3, 4, 128, 128),
    (13, 10, 1.0, 2, 64, 16),    # 4 rows per block, 8 per sweep of the grid: the last sweep has idle groups
    (37, 33, 1e3, 3, 256, 32),   # a warp per row, 8 rows per block, a warp and one per row
    (9, 7, 1.0, 1, 96, 3),       # a group that is not a power of two; 32 groups for 9 rows
    (5, 300, 3.0, 1, 160, 32),   # the launcher's shape for 5 x 300
    (2, 1000, 3.0, 1, 64, 32),   # a warp over 1000 columns
]


@pytest.mark.parametrize("rows, cols, scale, grid, block, group", ROW_CASES)
@pytest.mark.parametrize("log", [False, True])
def test_row_softmax(mod, rows, cols, scale, grid, block, group, log):
    x = logits((rows, cols), scale, seed=rows * cols)
    y = ce.nan_array(x.shape)
    mod.launch("log_softmax_rows_f32" if log else "softmax_rows_f32", grid, block, (x, y, rows, cols, group))
    x64 = x.astype(np.float64)
    expected = ref.log_softmax(np, x64, -1) if log else ref.softmax(np, x64, -1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=atol_for(x) if log else 1e-7)


def test_row_softmax_handles_masked_and_fully_masked_rows(mod):
    x = np.array([[0.0, -np.inf, 1.0, -np.inf], [-np.inf] * 4, [np.nan, 0.0, 1.0, 2.0]], np.float32)
    y, ly = ce.nan_array(x.shape), ce.nan_array(x.shape)
    mod.launch("softmax_rows_f32", 1, 12, (x, y, 3, 4, 4))
    mod.launch("log_softmax_rows_f32", 1, 12, (x, ly, 3, 4, 4))
    e = np.exp([0.0, 1.0])
    np.testing.assert_allclose(y[0], [e[0] / e.sum(), 0, e[1] / e.sum(), 0], rtol=1e-6)
    assert ly[0, 1] == -np.inf and ly[0, 3] == -np.inf
    assert np.isnan(y[1:]).all() and np.isnan(ly[1:]).all()  # as PyTorch: NaN in, NaN out


@pytest.mark.parametrize("outer, dim, inner", [(2, 5, 3), (1, 1025, 7), (3, 1, 2)])
@pytest.mark.parametrize("log", [False, True])
def test_column_softmax(mod, outer, dim, inner, log):
    x = logits((outer, dim, inner), 10.0, seed=dim)
    y = ce.nan_array(x.shape)
    grid = -(-outer * inner // 64)
    mod.launch("log_softmax_cols_f32" if log else "softmax_cols_f32", grid, 64, (x, y, outer, dim, inner))
    x64 = x.astype(np.float64)
    expected = ref.log_softmax(np, x64, 1) if log else ref.softmax(np, x64, 1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=atol_for(x) if log else 1e-7)


def xent_forward(mod, x, target, grid=None, block=256, group=None):
    rows, cols = x.shape
    loss, log_probs = ce.nan_array(rows), ce.nan_array(x.shape)
    mod.launch("softmax_xent_forward_f32", grid or rows, block,
               (x, target, loss, log_probs, rows, cols, IGNORE, group or block))
    return loss, log_probs


@pytest.mark.parametrize("rows, cols, scale, block, group", [(1, 1, 1.0, 256, 256), (9, 10, 1.0, 256, 256),
                                                             (9, 10, 1.0, 64, 16), (5, 1025, 1e3, 256, 256),
                                                             (2, 1000, 3.0, 256, 256), (7, 1000, 3.0, 64, 32)])
def test_cross_entropy_forward(mod, rows, cols, scale, block, group):
    x = logits((rows, cols), scale, seed=cols)
    target = np.random.default_rng(rows).integers(0, cols, rows).astype(np.int64)
    target[::3] = IGNORE
    loss, log_probs = xent_forward(mod, x, target, grid=max(1, rows // 2), block=block, group=group)
    exp_loss, exp_lp = ref.softmax_cross_entropy(np, x.astype(np.float64), target, IGNORE)
    np.testing.assert_allclose(log_probs, exp_lp, rtol=1e-5, atol=atol_for(x))
    np.testing.assert_allclose(loss, exp_loss, rtol=1e-5, atol=atol_for(x))
    assert (loss[::3] == 0).all()


def test_cross_entropy_forward_marks_out_of_range_targets_with_nan(mod):
    x = logits((4, 5), 1.0)
    loss, _ = xent_forward(mod, x, np.array([0, 5, -1, IGNORE], np.int64))
    assert np.isfinite(loss[0]) and np.isnan(loss[1]) and np.isnan(loss[2]) and loss[3] == 0


@pytest.mark.parametrize("rows, cols, block", [(1, 1, 32), (9, 10, 64), (3, 1025, 256)])
def test_cross_entropy_backward_matches_torch_autograd(mod, rows, cols, block):
    x = logits((rows, cols), 5.0, seed=rows + cols)
    target = np.random.default_rng(cols).integers(0, cols, rows).astype(np.int64)
    target[1::4] = IGNORE
    grad_loss = np.random.default_rng(1).standard_normal(rows).astype(np.float32)
    _, log_probs = xent_forward(mod, x, target)
    grad = ce.nan_array(x.shape)
    grid = max(1, (rows * cols) // (4 * block))  # fewer threads than elements: grid-stride loop
    mod.launch("softmax_xent_backward_f32", grid, block, (log_probs, target, grad_loss, grad, rows, cols, IGNORE))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(xt, torch.tensor(target), ignore_index=IGNORE, reduction="none")
    loss.backward(torch.tensor(grad_loss, dtype=torch.float64))
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-5, atol=1e-6)


def test_row_softmax_with_real_threads():
    threads = ce.load(SOFTMAX, mode="threads")
    x = logits((3, 70), 2.0)
    y = ce.nan_array(x.shape)
    threads.launch("softmax_rows_f32", 1, 64, (x, y, 3, 70, 32))
    np.testing.assert_allclose(y, ref.softmax(np, x.astype(np.float64), -1), rtol=1e-5, atol=1e-7)


def test_softmax_kernels_under_address_sanitizer():
    asan = ce.load(SOFTMAX, sanitize="address")
    x = logits((3, 1025), 1.0)
    target = np.array([0, IGNORE, 1024], np.int64)
    loss, log_probs = ce.nan_array(3), ce.nan_array(x.shape)
    asan.launch("softmax_xent_forward_f32", 2, 96, (x, target, loss, log_probs, 3, 1025, IGNORE, 96))
    grad = ce.nan_array(x.shape)
    asan.launch("softmax_xent_backward_f32", 5, 128, (log_probs, target, np.ones(3, np.float32), grad, 3, 1025, IGNORE))
    y = ce.nan_array((2, 5, 3))
    asan.launch("softmax_cols_f32", 1, 32, (np.ones((2, 5, 3), np.float32), y, 2, 5, 3))
    exp_loss, exp_lp = ref.softmax_cross_entropy(np, x.astype(np.float64), target, IGNORE)
    np.testing.assert_allclose(loss, exp_loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(grad, np.where(target[:, None] == IGNORE, 0, np.exp(exp_lp) - np.eye(1025)[target % 1025]),
                               atol=1e-6)
    np.testing.assert_allclose(y, 0.2, rtol=1e-6)


def test_softmax_kernels_have_no_data_races_under_thread_sanitizer():
    tsan = ce.load(SOFTMAX, sanitize="thread", mode="threads")
    x = logits((3, 77), 2.0)
    target = np.array([5, IGNORE, 76], np.int64)
    loss, log_probs = ce.nan_array(3), ce.nan_array(x.shape)
    tsan.launch("softmax_xent_forward_f32", 1, 64, (x, target, loss, log_probs, 3, 77, IGNORE, 16))
    exp_loss, exp_lp = ref.softmax_cross_entropy(np, x.astype(np.float64), target, IGNORE)
    np.testing.assert_allclose(log_probs, exp_lp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss, exp_loss, rtol=1e-5, atol=1e-6)


def test_asan_packed_rows_stay_inside_their_arrays():
    asan = ce.load(SOFTMAX, sanitize="address")
    x = logits((11, 10), 2.0)
    y = ce.nan_array(x.shape)
    asan.launch("softmax_rows_f32", 1, 64, (x, y, 11, 10, 16))  # 4 rows per block, the last sweep 1 of 4 active
    np.testing.assert_allclose(y, ref.softmax(np, x.astype(np.float64), -1), rtol=1e-5, atol=1e-7)


class _Launches:
    """Records (kernel, blocks, threads, args) of every launch of a backend, then launches."""

    def __init__(self, backend, monkeypatch):
        self.calls = []
        launch = backend.launch

        def spy(family, kernel, blocks, threads, args, shared_mem=0):
            self.calls.append((kernel, blocks, threads, args))
            return launch(family, kernel, blocks, threads, args, shared_mem)

        monkeypatch.setattr(backend, "launch", spy)


@pytest.mark.parametrize("device", ["cuda-emu", "cuda-emu:1"])
@pytest.mark.parametrize("rows, cols, blocks, threads, group", [
    (1000, 10, 63, 256, 16),      # C = 10: 16 rows per 256-thread block (was 1000 blocks of 32 threads)
    (300, 32, 38, 256, 32),       # a warp per row, 8 rows per block
    (3, 993, 1, 96, 32),          # C = 993: a warp per row (was 1024 threads per row)
    (2, 1025, 2, 256, 256),       # wide rows: 256 threads each
    (1, 1, 1, 1, 1),
])
def test_backend_row_geometry(device, monkeypatch, rows, cols, blocks, threads, group):
    """Through CupyBackend on the emulated device: the launch shape of softmax, log_softmax and the cross-entropy
    forward, and their values against float64 references."""
    from gpunet.backend import get_backend

    backend = get_backend(device)
    launches = _Launches(backend, monkeypatch)
    x = logits((rows, cols), 3.0, seed=cols)
    target = np.random.default_rng(0).integers(0, cols, rows).astype(np.int64)
    xd = backend.asarray(x)
    y = backend.to_numpy(backend.softmax(xd, -1))
    ly = backend.to_numpy(backend.log_softmax(xd, 1))
    loss, log_probs = backend.softmax_cross_entropy(xd, backend.asarray(target), IGNORE)
    assert [c[:3] for c in launches.calls] == [(k, blocks, threads) for k in
                                               ("softmax_rows_f32", "log_softmax_rows_f32", "softmax_xent_forward_f32")]
    assert all(c[3][-1] == group for c in launches.calls)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(y, torch.softmax(torch.tensor(x64), -1).numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ly, ref.log_softmax(np, x64, -1), rtol=1e-5, atol=atol_for(x))
    exp_loss, exp_lp = ref.softmax_cross_entropy(np, x64, target, IGNORE)
    np.testing.assert_allclose(backend.to_numpy(loss), exp_loss, rtol=1e-5, atol=atol_for(x))
    np.testing.assert_allclose(backend.to_numpy(log_probs), exp_lp, rtol=1e-5, atol=atol_for(x))
