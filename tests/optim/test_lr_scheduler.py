"""Learning-rate schedulers: the lr sequence over 30 epochs equals PyTorch's (two parameter groups), state_dict
round trips (plain JSON) continue exactly, and bad arguments raise clear errors."""
import json
import math
import warnings

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.optim import lr_scheduler as ours_sched

EPOCHS = 30
LRS = (0.1, 0.05)


def _optimizers():
    a = gn.tensor(np.ones(2), requires_grad=True, dtype=gn.float64)
    b = gn.tensor(np.ones(3), requires_grad=True, dtype=gn.float64)
    ours = gn.optim.SGD([{"params": [a], "lr": LRS[0]}, {"params": [b], "lr": LRS[1]}], momentum=0.9)
    ta = torch.ones(2, dtype=torch.float64, requires_grad=True)
    tb = torch.ones(3, dtype=torch.float64, requires_grad=True)
    theirs = torch.optim.SGD([{"params": [ta], "lr": LRS[0]}, {"params": [tb], "lr": LRS[1]}], momentum=0.9)
    return ours, theirs


def _decay(epoch):
    return 0.95 ** epoch


def _warm(epoch):
    return min(1.0, (epoch + 1) / 4)


SCHEDULES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[3, 8, 8, 20], gamma=0.3),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
    "CosineAnnealingLR_T7": lambda m, o: m.CosineAnnealingLR(o, T_max=7),
    "LambdaLR": lambda m, o: m.LambdaLR(o, _decay),
    "LambdaLR_per_group": lambda m, o: m.LambdaLR(o, [_decay, _warm]),
    "LinearLR": lambda m, o: m.LinearLR(o, start_factor=0.25, total_iters=6),
    "LinearLR_decay": lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=12),
    "SequentialLR": lambda m, o: m.SequentialLR(
        o, [m.LinearLR(o, start_factor=0.1, total_iters=5), m.CosineAnnealingLR(o, T_max=20)], milestones=[5]),
}


def _sequence(scheduler, optimizer, epochs=EPOCHS):
    values = [scheduler.get_last_lr()]
    for _ in range(epochs):
        optimizer.step()
        scheduler.step()
        values.append(scheduler.get_last_lr())
    return values


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_lr_sequence_matches_torch_over_30_epochs(name):
    ours_opt, theirs_opt = _optimizers()
    ours = SCHEDULES[name](ours_sched, ours_opt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's SequentialLR warns about its own internal step order
        theirs = SCHEDULES[name](torch.optim.lr_scheduler, theirs_opt)
        expected = _sequence(theirs, theirs_opt)
    got = _sequence(ours, ours_opt)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    assert [g["lr"] for g in ours_opt.param_groups] == pytest.approx(expected[-1], rel=1e-12)


def test_two_schedulers_chained_on_one_optimizer_match_torch():
    ours_opt, theirs_opt = _optimizers()
    ours = [ours_sched.StepLR(ours_opt, 5, 0.5), ours_sched.ExponentialLR(ours_opt, 0.95)]
    theirs = [torch.optim.lr_scheduler.StepLR(theirs_opt, 5, 0.5), torch.optim.lr_scheduler.ExponentialLR(theirs_opt, 0.95)]
    for _ in range(EPOCHS):
        ours_opt.step()
        theirs_opt.step()
        for s in ours + theirs:
            s.step()
        np.testing.assert_allclose([g["lr"] for g in ours_opt.param_groups],
                                   [g["lr"] for g in theirs_opt.param_groups], rtol=1e-12)


PLATEAU = {
    "min_rel": dict(patience=2),
    "min_abs_cooldown": dict(mode="min", threshold=0.05, threshold_mode="abs", cooldown=2, patience=1),
    "max_rel_min_lr": dict(mode="max", factor=0.5, patience=1, min_lr=[0.02, 0.01]),
    "max_abs_eps": dict(mode="max", threshold_mode="abs", factor=0.9, patience=0, eps=0.006),
}
METRICS = [1.0, 0.9, 0.95, 0.91, 0.92, 0.899, 0.9, 0.95, 0.7, 0.71, 0.7, 0.72, 0.73, 0.69, 0.7, 0.75, 0.8, 0.81,
           0.6, 0.61, 0.62, 0.63, 0.64, 0.65, 0.5, 0.5, 0.5, 0.5, 0.49, 0.5]


@pytest.mark.parametrize("name", sorted(PLATEAU))
def test_reduce_lr_on_plateau_matches_torch(name):
    ours_opt, theirs_opt = _optimizers()
    ours = ours_sched.ReduceLROnPlateau(ours_opt, **PLATEAU[name])
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs_opt, **PLATEAU[name])
    for metric in METRICS:
        ours.step(metric)
        theirs.step(metric)
        assert ours.get_last_lr() == pytest.approx(theirs.get_last_lr(), rel=1e-12)
    assert ours.get_last_lr() != list(LRS)  # the sequence did reduce the lr


def test_reduce_lr_on_plateau_accepts_a_one_element_tensor_metric():
    opt, _ = _optimizers()
    sched = ours_sched.ReduceLROnPlateau(opt, patience=0)
    sched.step(gn.tensor(1.0))
    sched.step(gn.tensor(2.0))
    assert sched.get_last_lr() == pytest.approx([0.01, 0.005])


@pytest.mark.parametrize("name", ["StepLR", "CosineAnnealingLR", "LambdaLR", "LinearLR", "SequentialLR"])
def test_state_dict_is_json_and_resumes_exactly(name):
    reference_opt, _ = _optimizers()
    reference = SCHEDULES[name](ours_sched, reference_opt)
    expected = _sequence(reference, reference_opt)

    first_opt, _ = _optimizers()
    first = SCHEDULES[name](ours_sched, first_opt)
    _sequence(first, first_opt, epochs=12)
    saved_sched = json.loads(json.dumps(first.state_dict()))
    saved_groups = [{k: v for k, v in g.items() if k != "params"} for g in first_opt.state_dict()["param_groups"]]

    resumed_opt, _ = _optimizers()
    resumed = SCHEDULES[name](ours_sched, resumed_opt)
    for group, saved in zip(resumed_opt.param_groups, saved_groups):
        group.update(saved)
    resumed.load_state_dict(saved_sched)
    got = _sequence(resumed, resumed_opt, epochs=EPOCHS - 12)
    np.testing.assert_allclose(got, expected[12:], rtol=1e-12)


def test_lambda_lr_state_dict_holds_no_function():
    opt, _ = _optimizers()
    state = ours_sched.LambdaLR(opt, lambda e: 0.5 ** e).state_dict()
    assert "lr_lambdas" not in state and json.dumps(state)


def test_reduce_lr_on_plateau_state_dict_round_trip():
    opt, _ = _optimizers()
    sched = ours_sched.ReduceLROnPlateau(opt, patience=1, cooldown=1)
    for metric in METRICS[:7]:
        sched.step(metric)
    saved = json.loads(json.dumps(sched.state_dict()))
    other_opt, _ = _optimizers()
    for g, lr in zip(other_opt.param_groups, sched.get_last_lr()):
        g["lr"] = lr
    other = ours_sched.ReduceLROnPlateau(other_opt)
    other.load_state_dict(saved)
    for metric in METRICS[7:]:
        sched.step(metric)
        other.step(metric)
        assert other.get_last_lr() == sched.get_last_lr()


@pytest.mark.parametrize("make, error, message", [
    (lambda o: ours_sched.StepLR(o, step_size=0), ValueError, "StepLR: step_size must be an integer >= 1, got 0"),
    (lambda o: ours_sched.CosineAnnealingLR(o, T_max=0), ValueError, "CosineAnnealingLR: T_max must be an integer >= 1, got 0"),
    (lambda o: ours_sched.LinearLR(o, start_factor=0.0), ValueError, r"start_factor must be a number in \(0, 1\]"),
    (lambda o: ours_sched.LinearLR(o, end_factor=1.5), ValueError, r"end_factor must be a number in \[0, 1\]"),
    (lambda o: ours_sched.LambdaLR(o, [_decay]), ValueError, "1 lr_lambdas for 2 parameter groups"),
    (lambda o: ours_sched.ReduceLROnPlateau(o, factor=1.0), ValueError, r"factor must be a number in \(0, 1\), got 1.0"),
    (lambda o: ours_sched.ReduceLROnPlateau(o, patience=-1), ValueError, "patience must be an integer >= 0"),
    (lambda o: ours_sched.ExponentialLR(o, gamma=0), ValueError, "gamma must be a number > 0"),
    (lambda o: ours_sched.CosineAnnealingLR(o, 5, eta_min=-1), ValueError, "eta_min must be a number >= 0"),
    (lambda o: ours_sched.ReduceLROnPlateau(o, mode="up"), ValueError, "mode must be one of 'min', 'max'"),
    (lambda o: ours_sched.ReduceLROnPlateau(o, threshold_mode="x"), ValueError, "threshold_mode must be"),
    (lambda o: ours_sched.ReduceLROnPlateau(o, min_lr=[0.1]), ValueError, "1 min_lr values for 2"),
    (lambda o: ours_sched.StepLR(o, 3, last_epoch=4), KeyError, "initial_lr"),
    (lambda o: ours_sched.SequentialLR(o, [ours_sched.StepLR(o, 2)], milestones=[3]), ValueError, "need 0 milestones"),
    (lambda o: ours_sched.StepLR(torch.optim.SGD([torch.ones(1, requires_grad=True)]), 3), TypeError,
     "expected a gpunet optimizer"),
])
def test_invalid_scheduler_arguments_raise_clear_errors(make, error, message):
    opt, _ = _optimizers()
    with pytest.raises(error, match=message):
        make(opt)


def test_cosine_closed_form_at_half_period():
    opt, _ = _optimizers()
    sched = ours_sched.CosineAnnealingLR(opt, T_max=10, eta_min=0.0)
    for _ in range(5):
        opt.step()
        sched.step()
    assert sched.get_last_lr() == pytest.approx([LRS[0] / 2, LRS[1] / 2], rel=1e-12)
    assert sched.get_last_lr()[0] == pytest.approx(0.1 * (1 + math.cos(math.pi * 5 / 10)) / 2, rel=1e-12)
