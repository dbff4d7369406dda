"""gpunet.optim's SGD, Adam and AdamW on the emulated CUDA device (kernels/optimizers.cu) against the CPU (the NumPy
reference) step for step, and against PyTorch; the CUDA backend really launches the kernels."""
import itertools

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.backend import get_backend

SHAPES = [(7, 5), (3,), (1,)]


def run(device, make_optimizer, steps=6, seed=0):
    """Parameters after ``steps`` optimizer steps on ``device`` with the same gradients, as host arrays."""
    rng = np.random.default_rng(seed)
    params = [gn.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True, device=device) for s in SHAPES]
    opt = make_optimizer(params)
    for _ in range(steps):
        for p in params:
            p.grad = gn.tensor(rng.standard_normal(p.shape).astype(np.float32), device=device)
        opt.step()
    return [p.numpy() for p in params], opt.state_dict()


SGD_OPTIONS = [dict(momentum=m, dampening=d, nesterov=n, weight_decay=w, maximize=x)
               for m, d, n, w, x in itertools.product([0, 0.9], [0, 0.5], [False, True], [0, 1e-2], [False, True])
               if not (n and (m == 0 or d != 0))]
ADAM_OPTIONS = [dict(amsgrad=a, maximize=x, weight_decay=w) for a, x, w in itertools.product([False, True],
                                                                                               [False, True], [0, 0.1])]


def optimizers():
    for o in SGD_OPTIONS:
        yield f"SGD{o}", lambda ps, o=o: gn.optim.SGD(ps, lr=0.05, **o), lambda ps, o=o: torch.optim.SGD(ps, lr=0.05, **o)
    for cls in ("Adam", "AdamW"):
        for o in ADAM_OPTIONS:
            yield (f"{cls}{o}", lambda ps, o=o, c=cls: getattr(gn.optim, c)(ps, lr=1e-2, **o),
                   lambda ps, o=o, c=cls: getattr(torch.optim, c)(ps, lr=1e-2, **o))


CASES = list(optimizers())


@pytest.mark.parametrize("name, ours, _", CASES, ids=[c[0] for c in CASES])
def test_emulated_cuda_steps_equal_cpu_steps_bit_for_bit(name, ours, _):
    cpu, cpu_state = run("cpu", ours)
    emu, emu_state = run("cuda-emu", ours)
    for a, b in zip(cpu, emu):
        np.testing.assert_array_equal(b, a)
    for index, values in cpu_state["state"].items():
        for key, value in values.items():
            np.testing.assert_array_equal(emu_state["state"][index][key], value, err_msg=key)


@pytest.mark.parametrize("name, ours, theirs", CASES[::3], ids=[c[0] for c in CASES[::3]])
def test_emulated_cuda_steps_match_torch(name, ours, theirs):
    emu, _ = run("cuda-emu", ours)
    rng = np.random.default_rng(0)
    params = [torch.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True) for s in SHAPES]
    opt = theirs(params)
    for _ in range(6):
        for p in params:
            p.grad = torch.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32))
        opt.step()
    for a, p in zip(emu, params):
        np.testing.assert_allclose(a, p.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_the_emulated_device_launches_the_optimizer_kernels():
    backend = get_backend("cuda-emu")
    assert backend.kernel_implementation("sgd_update") == "kernels/optimizers.cu"
    assert backend.kernel_implementation("adam_update") == "kernels/optimizers.cu"
    run("cuda-emu", lambda ps: gn.optim.Adam(ps), steps=1)
    assert "optimizers" in backend.compiled_families()


def test_float64_parameters_and_non_contiguous_gradients_use_the_reference_path(device):
    p = gn.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    q = gn.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), requires_grad=True)
    p.grad = gn.ones(2, 3, dtype=gn.float64)
    q.grad = gn.tensor(np.ones((3, 2), np.float32)).t()  # a transposed (non-contiguous) gradient
    gn.optim.SGD([p, q], lr=0.5, momentum=0.9).step()
    np.testing.assert_array_equal(p.numpy(), np.arange(6.0).reshape(2, 3) - 0.5)
    np.testing.assert_array_equal(q.numpy(), np.arange(6.0, dtype=np.float32).reshape(2, 3) - 0.5)


def test_the_cuda_launcher_names_a_wrong_gradient_shape():
    backend = get_backend("cuda-emu")
    p = backend.xp.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"shape \(3, 2\).*\(2, 3\)"):
        backend.sgd_update(p, backend.xp.zeros((3, 2), dtype=np.float32), None, 0.1, 0, 0, 0, False, False, False)
