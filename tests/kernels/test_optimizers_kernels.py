"""kernels/optimizers.cu on the CUDA emulator against the NumPy reference (gpunet/backend/references/optimizers.py):
every optimizer and option combination over a group of tensors cut into many chunks, bit for bit over 20 steps;
Adam against float64 arithmetic of the rule; every kernel under AddressSanitizer with each tensor in its own
allocation (and a deliberately overstated size caught as an overflow, so the check can fail)."""

import itertools
import math
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

from gpunet.backend import emulated as ce
from gpunet.backend.emulated.build import CXX
from gpunet.backend.launchers import optimizers as launch
from gpunet.backend.references import optimizers as ref
from gpunet.testing.nvrtc import KERNELS_DIR

OPTIMIZERS = KERNELS_DIR / "optimizers.cu"
f32, i32, i64 = np.float32, np.int32, np.int64
SIZES = (1037, 1, 64, 200, 65)  # with CHUNK: 17, 1, 1, 4 and 2 chunks
CHUNK, GRID, BLOCK = 64, 5, 32  # fewer blocks than chunks (block stride), fewer threads than a chunk (thread stride)
LR = 0.05


@dataclass
class Rule:
    """One optimizer configuration: its kernel, the state lists in the kernel's order (with their initial fill, None
    for a list the options leave unused), the reference step and the kernel's scalars at step t (from 1)."""
    kernel: str
    buffers: dict
    reference: Callable  # reference(params, grads, state: dict name -> list, t)
    scalars: Callable  # scalars(t)


def sgd(momentum, dampening, nesterov, weight_decay, maximize):
    options = (LR, momentum, dampening, weight_decay, nesterov, maximize)
    return Rule("sgd_update_f32", {"momentum_buffer": np.nan if momentum else None},
                lambda P, G, S, t: ref.sgd_update(np, P, G, S["momentum_buffer"], *options, [t == 1] * len(P)),
                lambda t: launch.sgd_scalars(*options, t == 1))


def adam(decoupled, amsgrad, maximize, weight_decay):
    options = (LR, 0.9, 0.999, 1e-8, weight_decay, decoupled, amsgrad, maximize)
    return Rule("adam_update_f32", {"exp_avg": 0.0, "exp_avg_sq": 0.0, "max_exp_avg_sq": 0.0 if amsgrad else None},
                lambda P, G, S, t: ref.adam_update(np, P, G, S["exp_avg"], S["exp_avg_sq"], S["max_exp_avg_sq"],
                                                   [t] * len(P), *options),
                lambda t: launch.adam_scalars(t, *options))


def rmsprop(centered, momentum, weight_decay, maximize):
    options = (LR, 0.9, 1e-8, weight_decay, momentum, centered, maximize)
    return Rule("rmsprop_update_f32", {"square_avg": 0.0, "grad_avg": 0.0 if centered else None,
                                       "momentum_buffer": 0.0 if momentum else None},
                lambda P, G, S, t: ref.rmsprop_update(np, P, G, S["square_avg"], S["grad_avg"], S["momentum_buffer"],
                                                      *options),
                lambda t: launch.rmsprop_scalars(*options))


def adagrad(lr_decay, weight_decay, initial, maximize):
    options = (LR, lr_decay, weight_decay, 1e-10, maximize)
    return Rule("adagrad_update_f32", {"sum": initial},
                lambda P, G, S, t: ref.adagrad_update(np, P, G, S["sum"], [t] * len(P), *options),
                lambda t: launch.adagrad_scalars(t if lr_decay else None, *options))


def adadelta(rho, weight_decay, maximize):
    options = (1.0, rho, 1e-6, weight_decay, maximize)
    return Rule("adadelta_update_f32", {"square_avg": 0.0, "acc_delta": 0.0},
                lambda P, G, S, t: ref.adadelta_update(np, P, G, S["square_avg"], S["acc_delta"], *options),
                lambda t: launch.adadelta_scalars(*options))


RULES = {
    **{f"sgd{c}": sgd(*c) for c in itertools.product([0.0, 0.9], [0.0, 0.25], [False, True], [0.0, 0.01],
                                                     [False, True])
       if not (c[2] and (c[0] == 0 or c[1] != 0))},  # nesterov needs momentum > 0 and no dampening
    **{f"adam{c}": adam(*c) for c in itertools.product([False, True], [False, True], [False, True], [0.0, 0.1])},
    **{f"rmsprop{c}": rmsprop(*c) for c in itertools.product([False, True], [0.0, 0.9], [0.0, 0.1], [False, True])},
    **{f"adagrad{c}": adagrad(*c) for c in itertools.product([0.0, 0.1], [0.0, 0.1], [0.0, 0.5], [False, True])},
    **{f"adadelta{c}": adadelta(*c) for c in itertools.product([0.9, 0.5], [0.0, 0.1], [False, True])},
}


@pytest.fixture(scope="module")
def mod():
    return ce.load(OPTIMIZERS)


def grads(step, seed=0):
    rng = np.random.default_rng([seed, step])
    g = [rng.standard_normal(s).astype(f32) for s in SIZES]
    g[0][:5] = [0.0, -0.0, 1e-30, -1e18, 3.0]  # zeros, a square below float32's range, a large value
    return g


def initial(rule):
    rng = np.random.default_rng(99)
    params = [rng.standard_normal(s).astype(f32) for s in SIZES]
    state = {name: None if fill is None else [np.full(s, fill, f32) for s in SIZES]
             for name, fill in rule.buffers.items()}
    return params, state


def copy(params, state):
    return [p.copy() for p in params], {k: None if v is None else [a.copy() for a in v] for k, v in state.items()}


def kernel_args(rule, lists, t, chunk=CHUNK):
    table, _ = launch.host_table(lists, range(len(SIZES)), chunk)
    return (table, i32(len(SIZES)), i64(chunk), *rule.scalars(t))


def reference_state(rule, params, state):
    """The reference starts from zeros where the kernel's buffer is NaN (SGD's momentum buffer, never read at the
    first step)."""
    return params, {k: None if v is None else [np.nan_to_num(a, nan=0.0) for a in v] for k, v in state.items()}


@pytest.mark.parametrize("name", RULES)
def test_kernel_matches_reference_bit_for_bit_over_20_steps(mod, name):
    rule = RULES[name]
    params, state = initial(rule)
    ref_params, ref_state = reference_state(rule, *copy(params, state))
    for t in range(1, 21):
        g = grads(t)
        rule.reference(ref_params, g, ref_state, t)
        lists = [params, g, *state.values()]
        mod.launch(rule.kernel, GRID, BLOCK, kernel_args(rule, lists, t))
        for what, got, want in [("param", params, ref_params),
                                *((k, state[k], ref_state[k]) for k in state if state[k] is not None)]:
            for i, (a, b) in enumerate(zip(got, want)):
                np.testing.assert_array_equal(a, b, err_msg=f"{name}: {what}[{i}] after step {t}")


def test_adam_agrees_with_float64_arithmetic_of_the_rule(mod):
    """An independent check of the rule itself (not the reference): Adam with L2 decay and AMSGrad in float64."""
    steps, lr, b1, b2, eps, wd = 5, 1e-2, 0.9, 0.99, 1e-6, 0.05
    rule = adam(False, True, False, wd)
    params, state = initial(rule)
    p64 = [p.astype(np.float64) for p in params]
    m64, v64, vmax64 = ([np.zeros(s) for s in SIZES] for _ in range(3))
    for t in range(1, steps + 1):
        g = [a.copy() for a in grads(t)]
        g[0][:5] = 0.5  # keep to normal float32 values
        lists = [params, g, *state.values()]
        table, _ = launch.host_table(lists, range(len(SIZES)), CHUNK)
        mod.launch("adam_update_f32", GRID, BLOCK, (table, i32(len(SIZES)), i64(CHUNK),
                                                    *launch.adam_scalars(t, lr, b1, b2, eps, wd, False, True, False)))
        for k in range(len(SIZES)):
            d = g[k] + wd * p64[k]
            m64[k] = b1 * m64[k] + (1 - b1) * d
            v64[k] = b2 * v64[k] + (1 - b2) * d * d
            vmax64[k] = np.maximum(vmax64[k], v64[k])
            p64[k] = p64[k] - lr / (1 - b1 ** t) * m64[k] / (np.sqrt(vmax64[k]) / math.sqrt(1 - b2 ** t) + eps)
    for k in range(len(SIZES)):
        np.testing.assert_allclose(params[k], p64[k], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(state["max_exp_avg_sq"][k], vmax64[k], rtol=1e-5, atol=1e-12)


def test_threads_past_a_tensor_end_write_nothing(mod):
    """A one-element tensor in a 64-element chunk, views into poisoned arrays: nothing beyond them changes."""
    backing = [np.full(n + 4, np.nan, f32) for n in (1, 31)]
    params = [b[:n] for b, n in zip(backing, (1, 31))]
    for p in params:
        p[...] = 1.0
    g = [np.full(p.shape, 2.0, f32) for p in params]
    table, chunks = launch.host_table([params, g, None], range(2), CHUNK)
    assert chunks == 2
    mod.launch("sgd_update_f32", 4, 64, (table, i32(2), i64(CHUNK), *launch.sgd_scalars(0.5, 0, 0, 0, False, False,
                                                                                          True)))
    for b, p in zip(backing, params):
        np.testing.assert_array_equal(p, 0.0)
        assert np.isnan(b[p.size:]).all()


_ASAN_CHILD = """
import pickle, sys
from pathlib import Path
import numpy as np
from gpunet.backend.emulated.module import _launch_in_process
from gpunet.backend.emulated.signature import convert_args
from gpunet.backend.launchers.optimizers import host_table

job = pickle.loads(Path(sys.argv[1]).read_bytes())
lists = [None if values is None else [np.array(a, copy=True) for a in values] for values in job["lists"]]
for t, scalars in enumerate(job["scalars"]):
    lists[1] = [np.array(a, copy=True) for a in job["grads"][t]]
    table, _ = host_table(lists, range(len(lists[0])), job["chunk"])
    table = np.array(table, copy=True)
    if job["overstate"]:
        table[len(lists) * len(lists[0])] += 1  # the first tensor's size, one too many
    args = (table, np.int32(len(lists[0])), np.int64(job["chunk"]), *scalars)
    _launch_in_process(Path(job["library"]), job["signature"], (3, 1, 1), (32, 1, 1),
                       convert_args(job["signature"], args), 0, 20.0, "fibers", False)
Path(job["result"]).write_bytes(pickle.dumps(lists))
"""


def _run_under_asan(tmp_path, rule, lists, steps, overstate=False):
    """Run ``steps`` kernel steps in a Python process with AddressSanitizer preloaded, every tensor and the table
    in its own exactly sized allocation; the lists afterwards, or the failed process."""
    module = ce.load(OPTIMIZERS, sanitize="address")
    job, result = tmp_path / "job.pkl", tmp_path / "result.pkl"
    job.write_bytes(pickle.dumps({
        "library": str(module.library_path), "signature": module.kernels[rule.kernel], "lists": lists,
        "grads": [grads(t) for t in range(1, steps + 1)], "scalars": [rule.scalars(t) for t in range(1, steps + 1)],
        "chunk": CHUNK, "overstate": overstate, "result": str(result)}))
    runtime = subprocess.run([CXX, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    env = dict(os.environ, LD_PRELOAD=runtime, ASAN_OPTIONS="detect_leaks=0")
    proc = subprocess.run([sys.executable, "-c", _ASAN_CHILD, str(job)], env=env, capture_output=True, text=True,
                          timeout=600)
    return proc, (pickle.loads(result.read_bytes()) if proc.returncode == 0 else None)


ASAN_RULES = {"sgd": sgd(0.9, 0.0, True, 0.01, True), "adam": adam(True, True, False, 0.1),
              "rmsprop": rmsprop(True, 0.9, 0.1, False), "adagrad": adagrad(0.1, 0.1, 0.5, True),
              "adadelta": adadelta(0.9, 0.1, False)}


@pytest.mark.parametrize("rule_name", ASAN_RULES)
def test_kernels_under_address_sanitizer(tmp_path, rule_name):
    rule = ASAN_RULES[rule_name]
    params, state = initial(rule)
    ref_params, ref_state = reference_state(rule, *copy(params, state))
    for t in (1, 2):
        rule.reference(ref_params, grads(t), ref_state, t)
    proc, lists = _run_under_asan(tmp_path, rule, [params, None, *state.values()], 2)
    assert proc.returncode == 0, proc.stderr[-5000:]
    for got, want in zip([lists[0], *lists[2:]], [ref_params, *ref_state.values()]):
        if want is not None:
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)


def test_address_sanitizer_sees_a_tensor_size_one_too_large(tmp_path):
    rule = adadelta(0.9, 0.0, False)
    params, state = initial(rule)
    proc, _ = _run_under_asan(tmp_path, rule, [params, None, *state.values()], 1, overstate=True)
    assert proc.returncode != 0 and "heap-buffer-overflow" in proc.stderr, proc.stderr[-3000:]
