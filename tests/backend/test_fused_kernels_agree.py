"""Every fused kernel with a ``kernels/<family>.cu``, on the same random float32 inputs, gives on "cuda-emu" (the
CuPy backend's launchers, the kernel run by the CUDA emulator) what it gives on "cpu" (the NumPy reference), at odd
sizes along the kernel axis (1, 7, 33, 1025 elements; batch 1): launch geometry for sizes that are not a multiple of
the block, one element, and more than a block. The softmax family has this test in ``test_cupy_backend.py``."""
from __future__ import annotations

import numpy as np
import pytest

from gpunet.backend import get_backend
from gpunet.backend.registry import KERNELS
from gpunet.backend.geometry import conv_output_shape
from gpunet.backend.geometry import pool_output_size

SIZES = (1, 7, 33, 1025)


def normal(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _pool_geometry(n):
    """x (1, 2, 3, n), a (2, k) window with stride (1, 2) and padding (1, k // 2), its ceil-mode output shape."""
    k = min(3, n)
    kernel, stride, padding = (2, k), (1, 2), (1, k // 2)
    out = tuple(pool_output_size(size, kernel[a], stride[a], padding[a], 1, True) for a, size in enumerate((3, n)))
    return (1, 2, 3, n), kernel, stride, padding, out


def _conv_geometry(n):
    """x (1, 2, 3, n), a (2, k) kernel with stride (1, 2), padding 1, dilation (1, 2 when it fits)."""
    k = min(3, n)
    kernel, stride, padding, dilation = (2, k), (1, 2), (1, 1), (1, 2 if n >= 5 else 1)
    return (1, 2, 3, n), kernel, stride, padding, dilation


def cases(n, rng):
    """(fused kernel, arguments as host arrays or plain values, indices of arguments it updates in place)."""
    gates, c_prev, grad_h, grad_c = normal(rng, 1, 4 * n), normal(rng, 1, n), normal(rng, 1, n), normal(rng, 1, n)
    gi, gh = normal(rng, 1, 3 * n), normal(rng, 1, 3 * n)
    pool_x, window, stride, padding, out = _pool_geometry(n)
    pool_in = normal(rng, *pool_x)
    argmax = get_backend("cpu").max_pool2d(pool_in, window, stride, padding, (1, 1), True)[1]
    conv_x, kernel, conv_stride, conv_padding, dilation = _conv_geometry(n)
    oh, ow = conv_output_shape(conv_x, kernel, conv_stride, conv_padding, dilation)
    cols = normal(rng, 1, 2 * kernel[0] * kernel[1], oh * ow)
    positions = rng.integers(0, 9, (1, n))
    param, grad = normal(rng, n), normal(rng, n)
    return [
        ("lstm_cell", (gates, c_prev), ()),
        ("lstm_cell_backward", (gates, c_prev, grad_h, grad_c), ()),
        ("gru_cell", (gi, gh, c_prev), ()),
        ("gru_cell_backward", (gi, gh, c_prev, grad_h), ()),
        ("batch_norm_stats", (normal(rng, 1, 3, n) * 3 + 1, (0, 2)), ()),
        ("batch_norm_stats", (normal(rng, n, 5), (0,)), ()),
        ("embedding_backward", (normal(rng, 1, n, 5), positions, 9, 2), ()),  # n positions
        ("embedding_backward", (normal(rng, 1, 3, n), rng.integers(0, 4, (1, 3)), 4, None), ()),  # rows of n
        ("dropout_mask", ((1, n), 0.3, 2**40 + 17, 5, np.float32), ()),
        ("dropout_apply", (normal(rng, 1, n), 0.3, 2**40 + 17, 5), ()),
        ("sgd_update", (param, grad, normal(rng, n), 0.1, 0.9, 0.0, 1e-2, True, False, False), (0, 2)),
        ("adam_update", (param, grad, normal(rng, n), np.abs(normal(rng, n)), np.abs(normal(rng, n)) * 2, 3, 1e-3,
                         0.9, 0.999, 1e-8, 1e-2, True, True, False), (0, 2, 3, 4)),
        ("max_pool2d", (pool_in, window, stride, padding, (1, 1), True), ()),
        ("max_pool2d_backward", (normal(rng, 1, 2, *out), argmax, pool_x, window, stride, padding, (1, 1)), ()),
        ("avg_pool2d", (pool_in, window, stride, padding, False, True), ()),
        ("avg_pool2d_backward", (normal(rng, 1, 2, *out), pool_x, window, stride, padding, False), ()),
        ("im2col", (normal(rng, *conv_x), kernel, conv_stride, conv_padding, dilation), ()),
        ("col2im", (cols, conv_x, kernel, conv_stride, conv_padding, dilation), ()),
    ]


def run(device, kernel, args, in_place):
    """The kernel's outputs (and the arguments it updates in place) on ``device``, as host arrays."""
    backend = get_backend(device)
    args = [backend.asarray(a.copy()) if isinstance(a, np.ndarray) else a for a in args]  # fresh on each device
    out = getattr(backend, kernel)(*args)
    outs = list(out) if isinstance(out, tuple) else [] if out is None else [out]
    return [backend.to_numpy(a) for a in outs + [args[i] for i in in_place]]


def test_the_cases_cover_every_kernel_with_a_cuda_file_except_softmax():
    covered = {kernel for kernel, _, _ in cases(7, np.random.default_rng(0))}
    assert covered == {name for name, k in KERNELS.items() if k.family not in (None, "softmax")}


@pytest.mark.parametrize("n", SIZES)
def test_cuda_emu_agrees_with_cpu_at_odd_sizes(n, launched_kernels):
    for kernel, args, in_place in cases(n, np.random.default_rng(n)):
        cpu = run("cpu", kernel, args, in_place)
        launched_kernels.clear()
        emu = run("cuda-emu", kernel, args, in_place)
        assert launched_kernels and all(name.endswith("_f32") for name in launched_kernels), kernel
        assert len(cpu) == len(emu) > 0
        for i, (a, b) in enumerate(zip(cpu, emu)):
            what = f"{kernel} result {i} at n={n}"
            assert a.shape == b.shape and a.dtype == b.dtype, f"{what}: {a.shape} {a.dtype} vs {b.shape} {b.dtype}"
            if a.dtype.kind in "iub" or kernel.startswith("dropout"):  # indices and masks: exactly
                np.testing.assert_array_equal(b, a, err_msg=what)
            else:  # float32 tolerance, absolute part relative to the array's magnitude (sums over the axis)
                scale = float(np.abs(a).max(initial=0.0))
                np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6 + 2e-5 * scale, err_msg=what)
