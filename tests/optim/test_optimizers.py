"""Optimizers against PyTorch: the same parameters and gradients, 20 steps, parameters compared after every step
(float64, 1e-6 relative) for every option combination; param groups, state_dict round trips (each on "cpu" and
"cuda-emu", the ``device`` fixture), validation."""
import json

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet import backend

SHAPES = [(4, 3), (3,), (2, 2, 2)]
STEPS = 20

CASES = {
    "SGD": [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
            dict(lr=0.05, momentum=0.8, nesterov=True), dict(lr=0.1, weight_decay=0.01),
            dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True),
            dict(lr=0.05, momentum=0.5, dampening=0.5, weight_decay=0.05), dict(lr=0.1, maximize=True)],
    "Adam": [dict(), dict(lr=0.01, betas=(0.8, 0.95)), dict(lr=0.01, weight_decay=0.1), dict(lr=0.01, amsgrad=True),
             dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True), dict(lr=0.02, eps=1e-3),
             dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)],
    "AdamW": [dict(), dict(lr=0.01, weight_decay=0.1), dict(lr=0.01, amsgrad=True, maximize=True),
              dict(lr=0.01, weight_decay=0.0, betas=(0.5, 0.9))],
    "RMSprop": [dict(), dict(lr=0.01, alpha=0.9), dict(lr=0.01, momentum=0.9), dict(lr=0.01, centered=True),
                dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1),
                dict(lr=0.01, eps=1e-3, maximize=True)],
    "Adagrad": [dict(), dict(lr=0.1, lr_decay=0.05), dict(lr=0.1, initial_accumulator_value=0.5),
                dict(lr=0.1, weight_decay=0.1, eps=1e-4, maximize=True)],
    "Adadelta": [dict(), dict(lr=0.5, rho=0.8), dict(lr=1.0, weight_decay=0.1, eps=1e-4),
                 dict(lr=1.0, maximize=True)],
}
ALL_CASES = [(name, kwargs) for name, options in CASES.items() for kwargs in options]


def _ids(case):
    name, kwargs = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kwargs.items())


def _initial(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s) for s in SHAPES]


def _gradients(step, seed=1):
    rng = np.random.default_rng(seed * 1000 + step)
    return [rng.standard_normal(s) for s in SHAPES]


def _gpunet_params(values):
    return [gn.tensor(v, requires_grad=True, dtype=gn.float64) for v in values]


def _torch_params(values):
    return [torch.tensor(v, requires_grad=True) for v in values]


def _set_grads(params, grads, make):
    for p, g in zip(params, grads):
        p.grad = None if g is None else make(g)


def _run_both(name, kwargs, steps=STEPS, group_split=None, skip=None):
    """Run gpunet's and torch's optimizer on identical parameters/gradients; assert equality after each step."""
    ours_params, theirs_params = _gpunet_params(_initial()), _torch_params(_initial())
    if group_split:
        ours_args = [dict(group_split[0], params=ours_params[:1]), {"params": ours_params[1:]}]
        theirs_args = [dict(group_split[0], params=theirs_params[:1]), {"params": theirs_params[1:]}]
    else:
        ours_args, theirs_args = ours_params, theirs_params
    ours = getattr(gn.optim, name)(ours_args, **kwargs)
    theirs = getattr(torch.optim, name)(theirs_args, **kwargs)
    for step in range(steps):
        grads = _gradients(step)
        if skip is not None and step % 3 == 0:
            grads[skip] = None  # a parameter without a gradient this step is left alone
        _set_grads(ours_params, grads, lambda g: gn.tensor(g, dtype=gn.float64))
        _set_grads(theirs_params, grads, torch.tensor)
        ours.step()
        theirs.step()
        for i, (a, b) in enumerate(zip(ours_params, theirs_params)):
            assert a.device == backend.current().device, f"{name}: parameter {i} left the current device"
            np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-12,
                                       err_msg=f"{name} {kwargs}: parameter {i} after step {step + 1}")
    return ours, theirs


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids)
def test_updates_match_torch_over_20_steps(device, case):
    name, kwargs = case
    _run_both(name, kwargs)


@pytest.mark.parametrize("name", sorted(CASES))
def test_parameters_without_gradients_are_skipped_like_torch(device, name):
    _run_both(name, CASES[name][-1], steps=9, skip=1)


@pytest.mark.parametrize("name", sorted(CASES))
def test_param_groups_with_their_own_lr(device, name):
    kwargs = dict(CASES[name][1])
    lr = kwargs.get("lr", 0.01)
    ours, _ = _run_both(name, kwargs, steps=6, group_split=[{"lr": lr * 3}])
    assert [g["lr"] for g in ours.param_groups] == [lr * 3, lr]


@pytest.mark.parametrize("name", sorted(CASES))
def test_lr_is_read_from_param_groups_at_every_step(device, name):
    ours_params, theirs_params = _gpunet_params(_initial()), _torch_params(_initial())
    kwargs = CASES[name][1]
    ours = getattr(gn.optim, name)(ours_params, **kwargs)
    theirs = getattr(torch.optim, name)(theirs_params, **kwargs)
    for step in range(6):
        for opt in (ours, theirs):
            opt.param_groups[0]["lr"] = 0.05 / (step + 1)
        grads = _gradients(step)
        _set_grads(ours_params, grads, lambda g: gn.tensor(g, dtype=gn.float64))
        _set_grads(theirs_params, grads, torch.tensor)
        ours.step()
        theirs.step()
    for a, b in zip(ours_params, theirs_params):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-6)


def _plain(value):
    """True when ``value`` is built only of what a pickle-free checkpoint stores: arrays, numbers, strings, lists."""
    if isinstance(value, dict):
        return all(isinstance(k, (int, str)) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return isinstance(value, (np.ndarray, int, float, bool, str, type(None)))


@pytest.mark.parametrize("case", [(name, options[-2]) for name, options in CASES.items()], ids=_ids)
def test_state_dict_round_trip_continues_like_an_uninterrupted_run(device, case):
    name, kwargs = case
    reference_params = _gpunet_params(_initial())
    reference = getattr(gn.optim, name)(reference_params, **kwargs)
    first_params = _gpunet_params(_initial())
    first = getattr(gn.optim, name)(first_params, **kwargs)
    for step in range(10):
        grads = _gradients(step)
        for params, opt in ((reference_params, reference), (first_params, first)):
            _set_grads(params, grads, lambda g: gn.tensor(g, dtype=gn.float64))
            opt.step()
    saved = first.state_dict()
    assert _plain(saved)
    # a new run: parameters restored from the first run's values, the optimizer from its state dict
    resumed_params = _gpunet_params([p.numpy() for p in first_params])
    resumed = getattr(gn.optim, name)(resumed_params, lr=123.0)
    resumed.load_state_dict(saved)
    assert resumed.param_groups[0]["lr"] == first.param_groups[0]["lr"]
    for p in first_params:  # the loaded state is a copy: training the first run further does not change it
        for value in first.state[p].values():
            if isinstance(value, gn.Tensor):
                value.data[...] = 1e9
    for step in range(10, 20):
        grads = _gradients(step)
        for params, opt in ((reference_params, reference), (resumed_params, resumed)):
            _set_grads(params, grads, lambda g: gn.tensor(g, dtype=gn.float64))
            opt.step()
    for a, b in zip(resumed_params, reference_params):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("case", [(name, options[-1]) for name, options in CASES.items()], ids=_ids)
def test_state_dict_structure_matches_torch(device, case):
    name, kwargs = case
    ours, theirs = _run_both(name, kwargs, steps=2)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert sorted(ours_sd["state"]) == sorted(theirs_sd["state"])
    for index, values in theirs_sd["state"].items():
        assert sorted(ours_sd["state"][index]) == sorted(values)
        for key, value in values.items():
            if key == "step":
                assert ours_sd["state"][index][key] == int(value)
            else:
                np.testing.assert_allclose(ours_sd["state"][index][key], value.numpy(), rtol=1e-6)
    assert [g["params"] for g in ours_sd["param_groups"]] == [g["params"] for g in theirs_sd["param_groups"]]
    for ours_group, theirs_group in zip(ours_sd["param_groups"], theirs_sd["param_groups"]):
        for key, value in ours_group.items():
            expected = theirs_group[key]
            assert value == (list(expected) if isinstance(expected, tuple) else expected), key


def test_state_dict_survives_json_and_restores_from_lists(device):
    params = _gpunet_params(_initial())
    opt = gn.optim.SGD(params, lr=0.1, momentum=0.9)
    _set_grads(params, _gradients(0), lambda g: gn.tensor(g, dtype=gn.float64))
    opt.step()
    saved = opt.state_dict()
    text = json.dumps({"param_groups": saved["param_groups"],
                       "state": {k: {n: v.tolist() for n, v in s.items()} for k, s in saved["state"].items()}})
    loaded = json.loads(text)
    other = gn.optim.SGD(_gpunet_params(_initial()), lr=0.5)
    other.load_state_dict(loaded)
    for p, q in zip(params, other.param_groups[0]["params"]):
        np.testing.assert_array_equal(opt.state[p]["momentum_buffer"].numpy(), other.state[q]["momentum_buffer"].numpy())


def test_load_state_dict_rejects_a_different_layout():
    opt = gn.optim.Adam(_gpunet_params(_initial()))
    other = gn.optim.Adam(_gpunet_params(_initial())[:2])
    with pytest.raises(ValueError, match="group 0 has 3 parameters in the state dict but 2"):
        other.load_state_dict(opt.state_dict())


def test_zero_grad_to_none_and_to_zeros():
    params = _gpunet_params(_initial())
    opt = gn.optim.SGD(params, lr=0.1)
    (params[0].sum() * 2.0).backward()
    grad = params[0].grad
    opt.zero_grad(set_to_none=False)
    assert params[0].grad is grad and np.all(grad.numpy() == 0) and params[1].grad is None
    opt.zero_grad()
    assert params[0].grad is None


def test_step_with_closure_returns_the_loss():
    (p,) = _gpunet_params([np.array([1.0, -2.0])])
    opt = gn.optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == 5.0
    np.testing.assert_allclose(p.numpy(), [0.5, -1.0])


def test_float32_parameters_stay_float32_and_match_torch(device):
    values = [v.astype(np.float32) for v in _initial()]
    ours_params = [gn.tensor(v, requires_grad=True) for v in values]
    theirs_params = [torch.tensor(v, requires_grad=True) for v in values]
    ours, theirs = gn.optim.Adam(ours_params, lr=0.01), torch.optim.Adam(theirs_params, lr=0.01)
    for step in range(5):
        grads = [g.astype(np.float32) for g in _gradients(step)]
        _set_grads(ours_params, grads, gn.tensor)
        _set_grads(theirs_params, grads, torch.tensor)
        ours.step()
        theirs.step()
    for a, b in zip(ours_params, theirs_params):
        assert a.dtype == np.float32 and ours.state[a]["exp_avg"].dtype == np.float32
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make, message", [
    (lambda p: gn.optim.SGD(p, lr=-0.1), "lr must be a number >= 0, got -0.1"),
    (lambda p: gn.optim.SGD(p, lr=0.1, nesterov=True), "SGD: nesterov needs momentum > 0 and dampening = 0"),
    (lambda p: gn.optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "dampening = 0"),
    (lambda p: gn.optim.SGD(p, momentum=-1), "momentum must be a number >= 0"),
    (lambda p: gn.optim.Adam(p, betas=(0.9, 1.0)), r"betas must be a list of 2 \(a number in \[0, 1\)\), got \(0.9, 1.0\)"),
    (lambda p: gn.optim.Adam(p, betas=(-0.1, 0.9)), r"Adam: betas must be a list of 2 \(a number in \[0, 1\)\)"),
    (lambda p: gn.optim.AdamW(p, eps=-1e-8), "eps must be a number >= 0"),
    (lambda p: gn.optim.Adam(p, weight_decay=-1), "weight_decay must be a number >= 0"),
    (lambda p: gn.optim.RMSprop(p, alpha=-0.5), "alpha must be a number >= 0"),
    (lambda p: gn.optim.Adagrad(p, lr_decay=-1), "lr_decay must be a number >= 0"),
    (lambda p: gn.optim.Adadelta(p, rho=1.5), r"Adadelta: rho must be a number in \[0, 1\]"),
    (lambda p: gn.optim.SGD([{"params": p[:1], "lr": -1}, {"params": p[1:]}], lr=0.1), "lr must be a number >= 0"),
])
def test_invalid_hyper_parameters_raise_clear_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make(_gpunet_params(_initial()))


def test_invalid_parameter_lists_raise_clear_errors():
    params = _gpunet_params(_initial())
    with pytest.raises(ValueError, match="empty parameter list"):
        gn.optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        gn.optim.SGD([params[0], params[0]], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        gn.optim.SGD([{"params": params[:2]}, {"params": params[1:]}], lr=0.1)
    with pytest.raises(ValueError, match="not a leaf"):
        gn.optim.SGD([params[0] * 2.0], lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        gn.optim.SGD(params[0], lr=0.1)
    opt = gn.optim.SGD(params[:1], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        opt.add_param_group({"params": params[:1]})
    opt.add_param_group({"params": params[1:], "lr": 0.5})
    assert opt.param_groups[1]["lr"] == 0.5 and opt.param_groups[1]["momentum"] == 0


def test_training_a_network_with_adam_reduces_the_loss():
    gn.manual_seed(0)
    net = gn.nn.Sequential(gn.nn.Linear(2, 8), gn.nn.Tanh(), gn.nn.Linear(8, 2))
    x = gn.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = gn.tensor([0, 1, 1, 0])
    opt = gn.optim.Adam(net.parameters(), lr=0.05)
    losses = []
    for _ in range(200):
        loss = gn.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 < losses[0]


@pytest.mark.parametrize("options", [dict(momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True),
                                     dict(momentum=0.9, dampening=0.5), dict(weight_decay=0.1), dict()])
def test_fused_kernels_only_read_the_gradient(options):
    """The gradient may be a read-only (broadcast) array: the kernels must never write into it."""
    backend = gn.backend.get_backend("cpu")
    grad = np.broadcast_to(np.array([0.5, -1.0, 2.0]), (4, 3))
    assert not grad.flags.writeable
    kwargs = dict(dict(momentum=0, dampening=0, weight_decay=0, nesterov=False, maximize=False), **options)
    param, buf = np.ones((4, 3)), np.zeros((4, 3))
    for first in (True, False):
        backend.sgd_update([param], [grad], [buf] if kwargs["momentum"] else None, 0.1, kwargs["momentum"],
                           kwargs["dampening"], kwargs["weight_decay"], kwargs["nesterov"], kwargs["maximize"], [first])
    expected = torch.ones(4, 3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([expected], lr=0.1, **options)
    for _ in range(2):
        expected.grad = torch.tensor(np.array(grad))
        opt.step()
    np.testing.assert_allclose(param, expected.detach().numpy(), rtol=1e-12)
    wd, maximize = kwargs["weight_decay"], kwargs["maximize"]
    def zeros(count):  # fresh state buffers of one parameter
        return [[np.zeros((4, 3))] for _ in range(count)]

    backend.adam_update([param], [grad], *zeros(3), [1], 0.1, 0.9, 0.999, 1e-8, wd, False, True, maximize)
    backend.rmsprop_update([param], [grad], *zeros(3), 0.1, 0.9, 1e-8, wd, 0.9, True, maximize)
    backend.adagrad_update([param], [grad], *zeros(1), [1], 0.1, 0.1, wd, 1e-10, maximize)
    backend.adadelta_update([param], [grad], *zeros(2), 1.0, 0.9, 1e-6, wd, maximize)
    assert np.all(np.isfinite(param)) and np.array_equal(grad[0], [0.5, -1.0, 2.0])
