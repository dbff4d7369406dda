"""Gradient clipping (gpunet.nn.utils) against torch.nn.utils: returned norm and clipped gradients."""
import math

import numpy as np
import pytest
import torch

import gpunet as gn

SHAPES = [(4, 3), (5,), (2, 2, 2)]


def _pairs(scale=1.0, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    ours, theirs = [], []
    for shape in SHAPES:
        value, grad = rng.standard_normal(shape).astype(dtype), (rng.standard_normal(shape) * scale).astype(dtype)
        p = gn.tensor(value, requires_grad=True, dtype=dtype)
        p.grad = gn.tensor(grad, dtype=dtype)
        t = torch.tensor(value, requires_grad=True)
        t.grad = torch.tensor(grad)
        ours.append(p)
        theirs.append(t)
    return ours, theirs


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = _pairs()
    total = gn.nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=float(norm_type))
    assert isinstance(total, gn.Tensor) and total.shape == ()
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12)
    if max_norm < 1:  # the clipped gradients have the requested joint norm
        joint = np.linalg.norm(np.concatenate([p.grad.numpy().ravel() for p in ours]), ord=float(norm_type))
        np.testing.assert_allclose(joint, max_norm, rtol=1e-5)


def test_clip_grad_norm_skips_parameters_without_gradients_and_takes_one_tensor():
    ours, _ = _pairs()
    ours[1].grad = None
    expected = np.linalg.norm(np.concatenate([ours[0].grad.numpy().ravel(), ours[2].grad.numpy().ravel()]))
    assert gn.nn.utils.clip_grad_norm_(ours, 1e9).item() == pytest.approx(expected, rel=1e-12)
    single = ours[0]
    before = np.linalg.norm(single.grad.numpy())
    assert gn.nn.utils.clip_grad_norm_(single, 0.1).item() == pytest.approx(before, rel=1e-12)
    assert np.linalg.norm(single.grad.numpy()) == pytest.approx(0.1, rel=1e-5)
    assert gn.nn.utils.clip_grad_norm_([gn.tensor([1.0], requires_grad=True)], 1.0).item() == 0.0


def test_clip_grad_norm_nonfinite():
    ours, theirs = _pairs()
    ours[0].grad.data[0, 0] = np.nan
    theirs[0].grad[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="error_if_nonfinite=False"):
        gn.nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    total = gn.nn.utils.clip_grad_norm_(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert math.isnan(total.item()) and math.isnan(expected.item())
    assert np.isnan(ours[1].grad.numpy()).all() and torch.isnan(theirs[1].grad).all()


def test_clip_grad_norm_float32_keeps_dtype():
    ours, theirs = _pairs(dtype=np.float32, scale=10.0)
    for t in theirs:
        t.data, t.grad = t.data.float(), t.grad.float()
    total = gn.nn.utils.clip_grad_norm_(ours, 2.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 2.0)
    assert total.dtype == np.float32 and ours[0].grad.dtype == np.float32
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-6)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("clip_value", [0.0, 0.3, 5.0])
def test_clip_grad_value_matches_torch(clip_value):
    ours, theirs = _pairs(scale=2.0)
    gn.nn.utils.clip_grad_value_(ours, clip_value)
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    for p, t in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad.numpy(), t.grad.numpy())


def test_clipping_arguments_are_checked():
    ours, _ = _pairs()
    with pytest.raises(ValueError, match="clip_value must be >= 0"):
        gn.nn.utils.clip_grad_value_(ours, -1.0)
    with pytest.raises(ValueError, match="norm_type must be > 0"):
        gn.nn.utils.clip_grad_norm_(ours, 1.0, norm_type=0)


def test_clipping_on_every_device(device):
    ours, theirs = _pairs(scale=3.0)
    total = gn.nn.utils.clip_grad_norm_(ours, 1.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert total.device == gn.device(device)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12)


def test_clipping_on_a_device_that_is_not_current_works_there_without_waiting():
    """cuda-emu:1's gradients with the CPU current (the Trainer's grad_clip on a second GPU): clipped on device 1,
    PyTorch's values, and nothing copied to the host."""
    ours, theirs = _pairs(scale=3.0)
    ours = [p.to("cuda-emu:1") for p in ours]
    for p, t in zip(ours, theirs):
        p.grad = gn.tensor(t.grad.numpy(), device="cuda-emu:1")
    device = gn.backend.get_backend("cuda-emu:1")
    before = device.host_syncs()
    total = gn.nn.utils.clip_grad_norm_(ours, 1.0)
    assert device.host_syncs() == before and total.device == gn.device("cuda-emu:1")
    expected = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    for p, t in zip(ours, theirs):
        assert p.grad.data.device_id == 1
        np.testing.assert_allclose(p.grad.numpy(), t.grad.numpy(), rtol=1e-12)
