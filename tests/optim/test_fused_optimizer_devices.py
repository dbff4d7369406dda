"""gpunet.optim's optimizers on the emulated CUDA device (kernels/optimizers.cu) against the CPU (the NumPy reference)
step for step, bit for bit, and against PyTorch; one kernel launch updates a whole parameter group."""
import itertools

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.backend import get_backend

SHAPES = [(7, 5), (3,), (1,), (70, 70), (0, 3)]  # (70, 70) spans two of the launcher's chunks; (0, 3) is empty


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


RMSPROP_OPTIONS = [dict(centered=c, momentum=m, weight_decay=w, maximize=x)
                   for c, m, w, x in itertools.product([False, True], [0, 0.9], [0, 0.1], [False, True])]
ADAGRAD_OPTIONS = [dict(lr_decay=d, weight_decay=w, initial_accumulator_value=a, maximize=x)
                   for d, w, a, x in itertools.product([0, 0.1], [0, 0.1], [0, 0.5], [False, True])]
ADADELTA_OPTIONS = [dict(rho=r, weight_decay=w, maximize=x)
                    for r, w, x in itertools.product([0.9, 0.5], [0, 0.1], [False, True])]


def optimizers():
    for o in SGD_OPTIONS:
        yield f"SGD{o}", lambda ps, o=o: gn.optim.SGD(ps, lr=0.05, **o), lambda ps, o=o: torch.optim.SGD(ps, lr=0.05, **o)
    for cls, options, lr in (("Adam", ADAM_OPTIONS, 1e-2), ("AdamW", ADAM_OPTIONS, 1e-2),
                             ("RMSprop", RMSPROP_OPTIONS, 1e-2), ("Adagrad", ADAGRAD_OPTIONS, 0.1),
                             ("Adadelta", ADADELTA_OPTIONS, 1.0)):
        for o in options:
            yield (f"{cls}{o}", lambda ps, o=o, c=cls, lr=lr: getattr(gn.optim, c)(ps, lr=lr, **o),
                   lambda ps, o=o, c=cls, lr=lr: getattr(torch.optim, c)(ps, lr=lr, **o))


CASES = list(optimizers())


CHECKS = [("cuda-emu", *c) for c in CASES] + [("cuda-emu:1", *c) for c in CASES[::6]]  # a group on device 1 too


@pytest.mark.parametrize("device, name, ours, _", CHECKS, ids=[f"{c[0]}-{c[1]}" for c in CHECKS])
def test_emulated_cuda_steps_equal_cpu_steps_bit_for_bit(device, name, ours, _):
    cpu, cpu_state = run("cpu", ours)
    emu, emu_state = run(device, ours)
    for a, b in zip(cpu, emu):
        np.testing.assert_array_equal(b, a)
    for index, values in cpu_state["state"].items():
        for key, value in values.items():
            np.testing.assert_array_equal(emu_state["state"][index][key], value, err_msg=key)


@pytest.mark.parametrize("name, ours, theirs", CASES[::2], ids=[c[0] for c in CASES[::2]])
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


@pytest.mark.parametrize("name, ours, _", CASES[::5], ids=[c[0] for c in CASES[::5]])
def test_one_launch_updates_the_whole_group(name, ours, _, launched_kernels):
    """One step of a group of four float32 parameters is one launch of the optimizer's kernel (issue 9: one launch
    per parameter before)."""
    rng = np.random.default_rng(0)
    params = [gn.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True, device="cuda-emu")
              for s in SHAPES]
    opt = ours(params)
    for p in params:
        p.grad = gn.tensor(rng.standard_normal(p.shape).astype(np.float32), device="cuda-emu")
    opt.step()  # the first step makes the state buffers
    for p in params:
        p.grad = gn.tensor(rng.standard_normal(p.shape).astype(np.float32), device="cuda-emu")
    launched_kernels.clear()
    opt.step()
    kernel = {"SGD": "sgd_update_f32", "Adam": "adam_update_f32", "AdamW": "adam_update_f32",
              "RMSprop": "rmsprop_update_f32", "Adagrad": "adagrad_update_f32",
              "Adadelta": "adadelta_update_f32"}[name.split("{")[0]]
    assert launched_kernels == [kernel]


@pytest.mark.parametrize("make, launches", [
    (lambda ps: gn.optim.Adam(ps, lr=1e-2, amsgrad=True), ["adam_update_f32"] * 2),  # bias corrections differ
    (lambda ps: gn.optim.SGD(ps, lr=0.1, momentum=0.9), ["sgd_update_f32"] * 2),  # one parameter's first step
    (lambda ps: gn.optim.Adagrad(ps, lr=0.1, lr_decay=0.1), ["adagrad_update_f32"] * 2),
    (lambda ps: gn.optim.Adagrad(ps, lr=0.1), ["adagrad_update_f32"]),  # no lr decay: the step does not matter
    (lambda ps: gn.optim.RMSprop(ps, lr=0.01), ["rmsprop_update_f32"]),
], ids=["Adam", "SGD", "Adagrad-lr_decay", "Adagrad", "RMSprop"])
def test_parameters_at_different_steps_launch_once_per_step_number_and_match_the_cpu(launched_kernels, make,
                                                                                   launches):
    """A parameter that missed the first step is one step behind: where the rule depends on the step the group
    takes a launch per step number, and still equals the CPU bit for bit."""
    def run(device):
        """The parameters after 3 steps (parameter 1 has no gradient at the first), the launches of the second."""
        rng = np.random.default_rng(1)
        params = [gn.tensor(rng.standard_normal(s).astype(np.float32), requires_grad=True, device=device)
                  for s in SHAPES]
        opt = make(params)
        for step in range(3):
            for i, p in enumerate(params):
                g = rng.standard_normal(p.shape).astype(np.float32)
                p.grad = None if (step == 0 and i == 1) else gn.tensor(g, device=device)
            launched_kernels.clear()
            opt.step()
            if step == 1:
                second = list(launched_kernels)
        return [p.numpy() for p in params], second

    emu, second = run("cuda-emu")
    assert second == launches
    cpu, _ = run("cpu")
    for a, b in zip(emu, cpu):
        np.testing.assert_array_equal(a, b)


def test_the_emulated_device_launches_the_optimizer_kernels():
    backend = get_backend("cuda-emu")
    for name in ("sgd_update", "adam_update", "rmsprop_update", "adagrad_update", "adadelta_update"):
        assert backend.kernel_implementation(name) == "kernels/optimizers.cu"
    run("cuda-emu", lambda ps: gn.optim.Adam(ps), steps=1)
    assert "optimizers" in backend.compiled_families()


def test_float64_parameters_and_non_contiguous_gradients_share_a_group_with_kernel_ones(device, launched_kernels):
    p = gn.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    q = gn.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), requires_grad=True)
    r = gn.tensor(np.arange(4.0, dtype=np.float32), requires_grad=True)
    p.grad = gn.ones(2, 3, dtype=gn.float64)
    q.grad = gn.tensor(np.ones((3, 2), np.float32)).t()  # a transposed (non-contiguous) gradient
    r.grad = gn.ones(4)
    gn.optim.SGD([p, q, r], lr=0.5, momentum=0.9).step()
    np.testing.assert_array_equal(p.numpy(), np.arange(6.0).reshape(2, 3) - 0.5)
    np.testing.assert_array_equal(q.numpy(), np.arange(6.0, dtype=np.float32).reshape(2, 3) - 0.5)
    np.testing.assert_array_equal(r.numpy(), np.arange(4.0, dtype=np.float32) - 0.5)
    assert launched_kernels == ([] if device == "cpu" else ["sgd_update_f32"])  # q and r: float64 p runs the reference


def test_the_cuda_launcher_names_a_wrong_gradient_shape_and_a_missing_list():
    backend = get_backend("cuda-emu")
    p = backend.xp.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"grads\[0\] has shape \(3, 2\).*\(2, 3\)"):
        backend.sgd_update([p], [backend.xp.zeros((3, 2), dtype=np.float32)], None, 0.1, 0, 0, 0, False, False, None)
    with pytest.raises(ValueError, match="1 params but 2 grads"):
        backend.sgd_update([p], [p, p], None, 0.1, 0, 0, 0, False, False, None)
    with pytest.raises(TypeError, match="lists of arrays"):
        backend.sgd_update(p, p, None, 0.1, 0, 0, 0, False, False, None)
    with pytest.raises(ValueError, match="centered=True needs grad_avgs"):
        backend.rmsprop_update([p], [p], [p], None, None, 0.1, 0.9, 1e-8, 0, 0, True, False)


def test_a_group_spread_over_two_devices_is_refused_with_the_parameter_named():
    b0, b1 = get_backend("cuda-emu:0"), get_backend("cuda-emu:1")
    with b0.activate():
        p0 = b0.xp.zeros(3, dtype=np.float32)
    with b1.activate():
        p1 = b1.xp.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError, match="parameter 1 .*lives on device 1"):
        b0.adadelta_update([p0, p1], [p0, p1], [p0, p1], [p0, p1], 1.0, 0.9, 1e-6, 0, False)
