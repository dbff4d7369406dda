"""kernels/conv.cu on the CUDA emulator against float64 references: a direct loop definition of im2col written
here, NumPy's reference (gpunet.backend.references.conv) and PyTorch's F.unfold / F.fold. Outputs are
NaN-filled before every launch. Columns are stored batch-innermost, (C*kh*kw, OH*OW, N), and compared as
(N, C*kh*kw, OH*OW) views."""

import numpy as np
import pytest
import torch

from gpunet.backend.geometry import conv_output_shape
from gpunet.backend.launchers.conv import geometry_args
from gpunet.backend.references import conv as ref
from gpunet.backend import emulated as ce
from gpunet.testing.nvrtc import KERNELS_DIR

CONV = KERNELS_DIR / "conv.cu"


@pytest.fixture(scope="module")
def mod():
    return ce.load(CONV)


def geometry(x_shape, kernel, stride, padding, dilation):
    """The output (OH, OW) and the kernels' scalar arguments, packed as the launcher packs them."""
    out = conv_output_shape(x_shape, kernel, stride, padding, dilation)
    return out, geometry_args(x_shape, out, kernel, stride, padding, dilation)


def run_im2col(mod, x, kernel, stride, padding, dilation, grid=None, block=64, batch_major=False):
    """cols as (N, C*kh*kw, OH*OW): a view of batch-innermost storage, or batch-major storage itself."""
    out, args = geometry(x.shape, kernel, stride, padding, dilation)
    n, c = x.shape[:2]
    rows, length = c * kernel[0] * kernel[1], out[0] * out[1]
    cols = ce.nan_array((n, rows, length) if batch_major else (rows, length, n))
    threads = n * c * length
    mod.launch("im2col_f32", grid or -(-threads // block), block, (x, cols) + args + (np.int64(batch_major),))
    return cols if batch_major else cols.transpose(2, 0, 1)


def run_col2im(mod, cols, x_shape, kernel, stride, padding, dilation, grid=None, block=64):
    _, args = geometry(x_shape, kernel, stride, padding, dilation)
    x = ce.nan_array(x_shape)
    cols = np.ascontiguousarray(cols.transpose(1, 2, 0))  # the kernel reads batch-innermost (C*K, L, N)
    mod.launch("col2im_f32", grid or -(-int(np.prod(x_shape)) // block), block, (cols, x) + args)
    return x


def loop_im2col(x, kernel, stride, padding, dilation):
    """The definition, one element at a time (float64)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    cols = np.zeros((n, c * kh * kw, oh * ow))
    for ci in range(c):
        for i in range(kh):
            for j in range(kw):
                for a in range(oh):
                    for b in range(ow):
                        hh, ww = a * sh - ph + i * dh, b * sw - pw + j * dw
                        if 0 <= hh < h and 0 <= ww < w:
                            cols[:, (ci * kh + i) * kw + j, a * ow + b] = x[:, ci, hh, ww]
    return cols


CASES = [  # x shape, kernel, stride, padding, dilation
    ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1), (1, 1)),  # 'same' 3x3
    ((1, 2, 9, 8), (3, 2), (2, 2), (1, 0), (1, 1)),  # stride 2, batch 1, odd sizes
    ((2, 2, 9, 11), (3, 3), (1, 2), (2, 1), (2, 2)),  # dilation 2 with padding
    ((3, 5, 4, 5), (1, 1), (1, 1), (0, 0), (1, 1)),  # 1x1 kernel
    ((2, 3, 5, 4), (5, 4), (1, 1), (0, 0), (1, 1)),  # kernel = input size: one output position
    ((1, 1, 1, 13), (1, 3), (1, 2), (0, 1), (1, 3)),  # 1-D as H = 1
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1)),  # one element
    ((2, 1, 3, 3), (3, 3), (3, 3), (2, 2), (1, 1)),  # stride 3: some pixels read by no window
]


def inputs(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("batch_major", [False, True])
@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation", CASES)
def test_im2col_matches_the_definition(mod, x_shape, kernel, stride, padding, dilation, batch_major):
    x = inputs(x_shape)
    cols = run_im2col(mod, x, kernel, stride, padding, dilation, batch_major=batch_major)
    expected = loop_im2col(x.astype(np.float64), kernel, stride, padding, dilation)
    np.testing.assert_array_equal(cols, expected)  # a copy: exact
    reference = ref.im2col(np, x.astype(np.float64), kernel, stride, padding, dilation, batch_major)
    np.testing.assert_array_equal(reference, expected)
    # the storage the kernel writes: batch-innermost, or batch-major
    assert (reference if batch_major else reference.transpose(1, 2, 0)).flags.c_contiguous


@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation", CASES)
def test_col2im_is_the_adjoint_of_im2col(mod, x_shape, kernel, stride, padding, dilation):
    out = conv_output_shape(x_shape, kernel, stride, padding, dilation)
    cols = inputs((x_shape[0], x_shape[1] * kernel[0] * kernel[1], out[0] * out[1]), seed=1)
    x = run_col2im(mod, cols, x_shape, kernel, stride, padding, dilation)
    # the adjoint of a 0/1 matrix A (cols = A x) is A^T: build A column by column from the definition
    eye = np.eye(int(np.prod(x_shape[1:]))).reshape((-1, 1) + x_shape[1:])
    a = np.stack([loop_im2col(e, kernel, stride, padding, dilation)[0] for e in eye], axis=-1)  # (CK, L, CHW)
    expected = np.einsum("nkl,klp->np", cols.astype(np.float64), a).reshape(x_shape)
    np.testing.assert_allclose(x, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ref.col2im(np, cols.astype(np.float64), x_shape, kernel, stride, padding, dilation),
                               expected, rtol=1e-12, atol=1e-12)


def test_kernels_match_torch_unfold_and_fold(mod):
    x = inputs((2, 3, 10, 9), seed=2)
    args = dict(kernel_size=(3, 2), dilation=(2, 1), padding=(1, 2), stride=(2, 3))
    cols = run_im2col(mod, x, (3, 2), (2, 3), (1, 2), (2, 1))
    np.testing.assert_array_equal(cols, torch.nn.functional.unfold(torch.tensor(x, dtype=torch.float64), **args))
    g = inputs(cols.shape, seed=3)
    back = run_col2im(mod, g, x.shape, (3, 2), (2, 3), (1, 2), (2, 1))
    expected = torch.nn.functional.fold(torch.tensor(g, dtype=torch.float64), output_size=(10, 9), **args)
    np.testing.assert_allclose(back, expected.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("grid, block", [(1, 32), (3, 96), (50, 1024)])
def test_any_launch_geometry_gives_the_same_result(mod, grid, block):
    """Grid-stride loops: fewer threads than items (each thread loops), a block not a power of two, more
    threads than items; col2im is a gather, so its result is bitwise the same for every geometry."""
    x = inputs((2, 3, 11, 7), seed=4)
    geo = ((3, 3), (2, 1), (1, 1), (1, 2))
    cols = run_im2col(mod, x, *geo, grid=grid, block=block)
    np.testing.assert_array_equal(cols, ref.im2col(np, x, *geo))
    back = run_col2im(mod, cols, x.shape, *geo, grid=grid, block=block)
    np.testing.assert_array_equal(back, run_col2im(mod, cols, x.shape, *geo, grid=7, block=64))
    np.testing.assert_allclose(back, ref.col2im(np, cols.astype(np.float64), x.shape, *geo), rtol=1e-6, atol=1e-6)


def test_conv_kernels_under_address_sanitizer():
    asan = ce.load(CONV, sanitize="address")
    x = inputs((3, 2, 5, 7), seed=5)  # N > 1: the batch is the columns' innermost axis
    # padding reaching past every edge, with a general stride and with unit stride (col2im's two paths)
    for geo in (((3, 3), (2, 2), (2, 1), (2, 1)), ((2, 4), (1, 1), (1, 2), (2, 1))):
        cols = run_im2col(asan, x, *geo, grid=2, block=32)
        np.testing.assert_array_equal(cols, ref.im2col(np, x, *geo))
        back = run_col2im(asan, cols, x.shape, *geo, grid=2, block=32)
        np.testing.assert_allclose(back, ref.col2im(np, cols.astype(np.float64), x.shape, *geo), rtol=1e-6, atol=1e-6)


def test_backend_launchers_cover_any_size_with_a_capped_grid():
    """CupyBackend.im2col / col2im on cuda-emu with the grid capped at 2 blocks: grid-stride loops cover the rest."""
    from gpunet.backend.cupy_backend import emulated_backend

    backend = emulated_backend()
    backend.max_grid_blocks = 2
    x = inputs((3, 2, 9, 10), seed=6)
    geo = ((2, 3), (1, 2), (1, 1), (2, 1))
    cols = backend.to_numpy(backend.im2col(backend.asarray(x), *geo))
    np.testing.assert_array_equal(cols, ref.im2col(np, x, *geo))
    back = backend.to_numpy(backend.col2im(backend.asarray(cols), x.shape, *geo))
    np.testing.assert_allclose(back, ref.col2im(np, cols.astype(np.float64), x.shape, *geo), rtol=1e-6, atol=1e-6)
    assert backend.kernel_implementation("im2col") == backend.kernel_implementation("col2im") == "kernels/conv.cu"


def test_64_bit_index_path(tmp_path):
    """Tensors beyond 2^31 elements take the 64-bit index instantiation; forced here on small tensors by a copy
    of the source whose size test always answers "too large"."""
    source = CONV.read_text()
    narrow = "return a < 0x7FFFFFFFll && b < 0x7FFFFFFFll;"
    assert source.count(narrow) == 1
    (tmp_path / "conv_wide.cu").write_text(source.replace(narrow, "return false;"))
    (tmp_path / "common.cuh").write_text((KERNELS_DIR / "common.cuh").read_text())
    wide = ce.load(tmp_path / "conv_wide.cu")
    x = inputs((2, 3, 7, 6), seed=7)
    for geo in (((3, 3), (1, 1), (1, 1), (1, 1)), ((3, 2), (2, 1), (1, 0), (1, 2))):  # unit and general stride
        cols = run_im2col(wide, x, *geo)
        np.testing.assert_array_equal(cols, ref.im2col(np, x, *geo))
        np.testing.assert_array_equal(run_im2col(wide, x, *geo, batch_major=True), cols)
        back = run_col2im(wide, cols, x.shape, *geo)
        np.testing.assert_allclose(back, ref.col2im(np, cols.astype(np.float64), x.shape, *geo), rtol=1e-6, atol=1e-6)


@pytest.fixture
def matmul_outs(device, monkeypatch):
    """The ``out=`` argument (None when absent) of every ``xp.matmul`` call on ``device`` during the test."""
    from gpunet.backend import get_backend

    outs = []
    xp = get_backend(device).xp
    original = xp.matmul

    def spy(*args, **kwargs):
        outs.append(kwargs.get("out"))
        return original(*args, **kwargs)

    monkeypatch.setattr(xp, "matmul", spy)
    return outs


@pytest.mark.parametrize("device", ["cuda-emu", "cuda-emu:1"], indirect=True)  # conftest's fixture sets the device
@pytest.mark.parametrize("x_shape, weight_shape, stride, padding, groups, keeps_cols", [
    ((3, 4, 9, 8), (6, 4, 3, 3), 1, 1, 1, False),   # 3x3: columns 9x the input, rebuilt in the backward
    ((3, 4, 9, 8), (6, 2, 3, 3), 2, 1, 2, False),   # groups, stride 2: columns 2.25x the input
    ((2, 4, 8, 8), (6, 4, 1, 1), 1, 0, 1, True),    # 1x1: columns the size of the input, kept
    ((2, 4, 8, 8), (4, 2, 2, 2), 2, 0, 2, True),    # stride = kernel: columns the size of the input, kept
])
def test_conv2d_on_cuda_writes_its_output_once_and_keeps_columns_by_size(device, matmul_outs, launched_kernels,
                                                                        x_shape, weight_shape, stride, padding,
                                                                        groups, keeps_cols):
    """conv2d in float32 through the CUDA backend (emulated): one batched GEMM writes the (N, O, OH, OW) output in
    place (the matmul's out= is the returned array), the columns are kept only when no larger than the input, and
    values and all gradients equal PyTorch's."""
    import gpunet as gn
    from gpunet.nn import functional as F

    rng = np.random.default_rng(sum(x_shape))
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in (x_shape, weight_shape, weight_shape[:1]))
    gx, gw, gb = (gn.tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.conv2d(gx, gw, gb, stride=stride, padding=padding, groups=groups)
    assert len(matmul_outs) == 1 and matmul_outs[0] is not None
    assert np.shares_memory(matmul_outs[0], y.data)  # the GEMM's output is the convolution's
    assert (y.creator.cols is not None) == keeps_cols
    assert launched_kernels == ["im2col_f32"]
    gy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(gn.tensor(gy))
    assert launched_kernels.count("im2col_f32") == 1 + (not keeps_cols)  # rebuilt for the weight gradient
    tx, tw, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=padding, groups=groups)
    ty.backward(torch.tensor(gy, dtype=torch.float64))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    for ours, theirs in zip((gx, gw, gb), (tx, tw, tb)):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", ["cuda-emu"], indirect=True)
def test_conv2d_with_tf32_keeps_the_single_gemm_that_tf32_reaches(device, matmul_outs):
    """CuPy runs a broadcast float32 matmul as cublasSgemmBatched, outside its TF32 compute type: with TF32 allowed
    the forward takes the one-GEMM form (no out=, batch-innermost columns), whose result the stand-in rounds as tensor
    cores do: within TF32's error of the float32 result, and not equal to it."""
    import gpunet as gn
    from gpunet.nn import functional as F

    rng = np.random.default_rng(9)
    x, w = gn.tensor(rng.standard_normal((2, 8, 6, 6)).astype(np.float32)), \
        gn.tensor(rng.standard_normal((16, 8, 3, 3)).astype(np.float32))
    plain = F.conv2d(x, w, padding=1).numpy()
    with gn.backends.cuda.matmul.tf32(True):
        rounded = F.conv2d(x, w, padding=1).numpy()
    assert matmul_outs[0] is not None and matmul_outs[1] is None
    assert not np.array_equal(rounded, plain)
    np.testing.assert_allclose(rounded, plain, rtol=0, atol=2e-2)


@pytest.mark.parametrize("shape, dtype", [((1000, 64), np.float32), ((37, 1500), np.float64), ((64, 3), np.float32),
                                          ((5, 3), np.float32)])
def test_transposed_is_the_transpose_in_blocks(shape, dtype):
    """The CPU's blocked transposing copy (the forward's output, the backward's gy, col2im's result): several blocks
    of 64 rows and a partial last one, exactly one block, and a single partial block."""
    rows = np.random.default_rng(10).standard_normal(shape).astype(dtype)
    out = ref.transposed(np, rows)
    assert out.flags.c_contiguous and out.dtype == dtype
    np.testing.assert_array_equal(out, rows.T)
    into = np.full(shape[::-1], np.nan, dtype=dtype)
    assert ref.transposed(np, rows, into) is into
    np.testing.assert_array_equal(into, rows.T)
