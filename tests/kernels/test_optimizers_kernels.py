"""kernels/optimizers.cu on the CUDA emulator against the NumPy reference (gpunet/backend/references/optimizers.py),
bit for bit over 20 steps for every option combination, and against float64 PyTorch-rule arithmetic."""

import itertools
import math

import numpy as np
import pytest

from gpunet.backend.references import optimizers as ref
from gpunet.backend import emulated as ce
from gpunet.backend.launchers.optimizers import adam_scalars, sgd_scalars
from gpunet.testing.nvrtc import KERNELS_DIR

OPTIMIZERS = KERNELS_DIR / "optimizers.cu"
f32, i64 = np.float32, np.int64
N = 1037  # not a multiple of the block; the grid below is smaller than N / block (grid-stride loop)
GRID, BLOCK = 3, 96


@pytest.fixture(scope="module")
def mod():
    return ce.load(OPTIMIZERS)


def grads(steps, n, seed):
    g = np.random.default_rng(seed).standard_normal((steps, n)).astype(f32)
    g[:, :5] = [0.0, -0.0, 1e-30, -1e18, 3.0]  # zeros, a square below float32's range, a large value
    return g


def sgd_launch(mod, param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, maximize, first, grid=GRID,
               block=BLOCK):
    kernel, scalars = sgd_scalars(param.size, lr, momentum, dampening, weight_decay, nesterov, maximize, first)
    mod.launch(kernel, grid, block, (param, grad) + ((buf,) if momentum else ()) + scalars)


SGD_CASES = [c for c in itertools.product([0.0, 0.9], [0.0, 0.25], [False, True], [0.0, 0.01], [False, True])
             if not (c[2] and (c[0] == 0 or c[1] != 0))]  # nesterov needs momentum > 0 and no dampening


@pytest.mark.parametrize("momentum, dampening, nesterov, weight_decay, maximize", SGD_CASES)
def test_sgd_matches_reference_bit_for_bit_over_20_steps(mod, momentum, dampening, nesterov, weight_decay, maximize):
    g = grads(20, N, seed=1)
    p_ref = np.random.default_rng(2).standard_normal(N).astype(f32)
    p_emu = p_ref.copy()
    b_ref = np.zeros(N, f32) if momentum else None
    b_emu = ce.nan_array(N) if momentum else None  # the first step must overwrite the buffer, never read it
    for step in range(20):
        args = (0.1, momentum, dampening, weight_decay, nesterov, maximize, step == 0)
        ref.sgd_update(np, p_ref, g[step], b_ref, *args)
        sgd_launch(mod, p_emu, g[step], b_emu, *args)
        np.testing.assert_array_equal(p_emu, p_ref, err_msg=f"step {step + 1}")
        if momentum:
            np.testing.assert_array_equal(b_emu, b_ref, err_msg=f"step {step + 1}")


def adam_launch(mod, param, grad, m, v, vmax, step, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize):
    scalars = adam_scalars(step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize)
    if amsgrad:
        mod.launch("adam_amsgrad_update_f32", GRID, BLOCK, (param, grad, m, v, vmax, i64(param.size), *scalars))
    else:
        mod.launch("adam_update_f32", GRID, BLOCK, (param, grad, m, v, i64(param.size), *scalars))


@pytest.mark.parametrize("decoupled, amsgrad, maximize, weight_decay",
                         list(itertools.product([False, True], [False, True], [False, True], [0.0, 0.1])))
def test_adam_matches_reference_bit_for_bit_over_20_steps(mod, decoupled, amsgrad, maximize, weight_decay):
    g = grads(20, N, seed=3)
    p_ref = np.random.default_rng(4).standard_normal(N).astype(f32)
    state_ref = [p_ref, np.zeros(N, f32), np.zeros(N, f32), np.zeros(N, f32) if amsgrad else None]
    state_emu = [a.copy() if a is not None else None for a in state_ref]
    hyper = (1e-2, 0.9, 0.999, 1e-8, weight_decay, decoupled, amsgrad, maximize)
    for step in range(1, 21):
        p, m, v, vmax = state_ref
        ref.adam_update(np, p, g[step - 1], m, v, vmax, step, *hyper)
        p, m, v, vmax = state_emu
        adam_launch(mod, p, g[step - 1], m, v, vmax, step, *hyper)
        for name, got, want in zip(("param", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"), state_emu, state_ref):
            if want is not None:
                np.testing.assert_array_equal(got, want, err_msg=f"{name}, step {step}")


def test_adam_agrees_with_float64_arithmetic_of_the_rule(mod):
    """An independent check of the rule itself (not the reference): Adam with L2 decay and AMSGrad in float64."""
    n, steps, lr, b1, b2, eps, wd = 257, 5, 1e-2, 0.9, 0.99, 1e-6, 0.05
    g = grads(steps, n, seed=5)[:, 5:].copy()
    n -= 5
    p = np.random.default_rng(6).standard_normal(n).astype(f32)
    p64, m64, v64, vmax64 = p.astype(np.float64), np.zeros(n), np.zeros(n), np.zeros(n)
    m, v, vmax = np.zeros(n, f32), np.zeros(n, f32), np.zeros(n, f32)
    for t in range(1, steps + 1):
        adam_launch(mod, p, g[t - 1], m, v, vmax, t, lr, b1, b2, eps, wd, False, True, False)
        d = g[t - 1] + wd * p64
        m64 = b1 * m64 + (1 - b1) * d
        v64 = b2 * v64 + (1 - b2) * d * d
        vmax64 = np.maximum(vmax64, v64)
        p64 = p64 - lr / (1 - b1 ** t) * m64 / (np.sqrt(vmax64) / math.sqrt(1 - b2 ** t) + eps)
    np.testing.assert_allclose(p, p64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vmax, vmax64, rtol=1e-5, atol=1e-12)


@pytest.mark.parametrize("n", [1, 31])
def test_tiny_parameters_and_excess_threads(mod, n):
    """Fewer elements than threads: the threads past the end write nothing (the neighbours stay NaN)."""
    p = np.full(n + 4, np.nan, f32)
    p[:n] = 1.0
    g = np.full(n, 2.0, f32)
    view = p[:n]
    sgd_launch(mod, view, g, None, 0.5, 0.0, 0.0, 0.0, False, False, True, grid=4, block=64)
    np.testing.assert_array_equal(p[:n], 0.0)
    assert np.isnan(p[n:]).all()


def test_optimizer_kernels_under_address_sanitizer():
    asan = ce.load(OPTIMIZERS, sanitize="address")
    n = 1025
    g = grads(1, n, seed=7)[0]
    p = np.random.default_rng(8).standard_normal(n).astype(f32)
    expected = p.copy()
    buf, buf_ref = ce.nan_array(n), np.zeros(n, f32)
    ref.sgd_update(np, expected, g, buf_ref, 0.1, 0.9, 0.0, 0.01, True, False, True)
    sgd_launch(asan, p, g, buf, 0.1, 0.9, 0.0, 0.01, True, False, True, grid=2, block=128)
    np.testing.assert_array_equal(p, expected)
    np.testing.assert_array_equal(buf, buf_ref)
    sgd_launch(asan, p, g, None, 0.1, 0.0, 0.0, 0.0, False, True, False, grid=3, block=32)
    state = [p.copy(), np.zeros(n, f32), np.zeros(n, f32), np.zeros(n, f32)]
    want = [a.copy() for a in state]
    ref.adam_update(np, want[0], g, want[1], want[2], want[3], 1, 1e-3, 0.9, 0.999, 1e-8, 0.1, True, True, False)
    adam_launch(asan, state[0], g, *state[1:], 1, 1e-3, 0.9, 0.999, 1e-8, 0.1, True, True, False)
    for got, w in zip(state, want):
        np.testing.assert_array_equal(got, w)
    state = [p.copy(), np.zeros(n, f32), np.zeros(n, f32)]
    want = [a.copy() for a in state]
    ref.adam_update(np, want[0], g, want[1], want[2], None, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False, True)
    adam_launch(asan, state[0], g, *state[1:], None, 1, 1e-3, 0.9, 0.999, 1e-8, 0.0, False, False, True)
    for got, w in zip(state, want):
        np.testing.assert_array_equal(got, w)
