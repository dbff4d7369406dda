"""BatchNorm1d/2d and F.batch_norm against PyTorch (values, gradients, running statistics, state_dict) on cpu and
cuda-emu (kernels/batchnorm.cu), plus gradcheck and gradgradcheck of the batch-statistics op."""
import numpy as np
import pytest
import torch

import gpunet as gn
import gpunet.nn.functional as F
from gpunet import nn
from gpunet.ops.normalization import batch_norm_stats
from gpunet.testing import assert_close, gradcheck, gradgradcheck

SHAPES = {nn.BatchNorm1d: [(5, 3), (4, 3, 7), (2, 3, 1)], nn.BatchNorm2d: [(3, 3, 4, 5), (1, 3, 2, 3)]}
CASES = [(cls, shape) for cls, shapes in SHAPES.items() for shape in shapes]


def twin(cls, **kw):
    ours = cls(3, **kw)
    theirs = getattr(torch.nn, cls.__name__)(3, **kw)
    rng = np.random.default_rng(9)  # non-trivial affine parameters, the same in both
    for name, value in (("weight", rng.uniform(0.5, 1.5, 3)), ("bias", rng.standard_normal(3))):
        if getattr(ours, name) is not None:
            getattr(ours, name).data[...] = value
            getattr(theirs, name).data = torch.tensor(value, dtype=torch.float32)
    return ours, theirs


TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}  # float32 against PyTorch's float32


@pytest.mark.parametrize("cls, shape", CASES, ids=[f"{c.__name__}-{s}" for c, s in CASES])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_training_steps_then_eval_match_torch(device, cls, shape, momentum):
    ours, theirs = twin(cls, momentum=momentum)
    rng = np.random.default_rng(len(shape))
    for step in range(3):
        x = (rng.standard_normal(shape) * 2 + step).astype(np.float32)
        xt = torch.tensor(x, requires_grad=True)
        xg = gn.tensor(x, requires_grad=True)
        y, yt = ours(xg), theirs(xt)
        assert_close(y, yt, **TOLERANCE)
        g = rng.standard_normal(shape).astype(np.float32)
        y.backward(gn.tensor(g))
        yt.backward(torch.tensor(g))
        assert_close(xg.grad, xt.grad, rtol=1e-5, atol=1e-4)
        assert_close(ours.weight.grad, theirs.weight.grad, rtol=1e-5, atol=1e-4)
        if ours.bias is not None:
            assert_close(ours.bias.grad, theirs.bias.grad, rtol=1e-5, atol=1e-4)
        for name in ("running_mean", "running_var"):
            assert_close(getattr(ours, name), getattr(theirs, name), **TOLERANCE)
        assert int(ours.num_batches_tracked.numpy()) == int(theirs.num_batches_tracked) == step + 1
        ours.zero_grad(), theirs.zero_grad()
    ours.eval(), theirs.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    assert_close(ours(gn.tensor(x)), theirs(torch.tensor(x)), **TOLERANCE)


@pytest.mark.parametrize("kw", [dict(affine=False), dict(track_running_stats=False), dict(eps=0.1, momentum=0.5),
                                dict(bias=False)])
def test_options_match_torch(device, kw):
    ours, theirs = twin(nn.BatchNorm2d, **kw)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    x = np.random.default_rng(0).standard_normal((2, 3, 3, 4)).astype(np.float32)
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(theirs, mode)()
        assert_close(ours(gn.tensor(x)), theirs(torch.tensor(x)), **TOLERANCE)
    if ours.track_running_stats:
        assert_close(ours.running_var, theirs.running_var, **TOLERANCE)


def test_state_dict_round_trips_with_torch(device):
    theirs = torch.nn.BatchNorm1d(3)
    theirs(torch.randn(6, 3) * 4 + 2)
    ours = nn.BatchNorm1d(3)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    state = ours.state_dict()
    assert list(state) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert state["num_batches_tracked"].dtype == np.int64 and state["num_batches_tracked"].shape == ()
    for k, v in theirs.state_dict().items():
        np.testing.assert_array_equal(state[k], v.numpy())
    ours.eval(), theirs.eval()
    x = np.random.default_rng(1).standard_normal((4, 3)).astype(np.float32)
    assert_close(ours(gn.tensor(x)), theirs(torch.tensor(x)), **TOLERANCE)


def test_default_init_and_repr():
    m = nn.BatchNorm2d(4)
    np.testing.assert_array_equal(m.weight.numpy(), np.ones(4, np.float32))
    np.testing.assert_array_equal(m.bias.numpy(), np.zeros(4, np.float32))
    np.testing.assert_array_equal(m.running_var.numpy(), np.ones(4, np.float32))
    assert repr(m) == repr(torch.nn.BatchNorm2d(4))
    assert repr(nn.BatchNorm1d(2, affine=False, bias=False)) == repr(torch.nn.BatchNorm1d(2, affine=False, bias=False))


@pytest.mark.parametrize("shape", [(4, 2), (3, 2, 3), (2, 2, 2, 3)])
def test_batch_statistics_op_gradcheck_and_gradgradcheck(device, shape):
    x = gn.tensor(np.random.default_rng(3).standard_normal(shape), dtype=gn.float64, requires_grad=True)
    assert gradcheck(lambda t: batch_norm_stats(t), (x,))
    assert gradgradcheck(lambda t: batch_norm_stats(t), (x,))


def test_batch_norm_function_gradgradcheck_with_affine_parameters(device):
    rng = np.random.default_rng(4)
    x = gn.tensor(rng.standard_normal((3, 2, 4)), dtype=gn.float64, requires_grad=True)
    w = gn.tensor(rng.uniform(0.5, 1.5, 2), dtype=gn.float64, requires_grad=True)
    b = gn.tensor(rng.standard_normal(2), dtype=gn.float64, requires_grad=True)
    fn = lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True)  # noqa: E731
    assert gradcheck(fn, (x, w, b))
    assert gradgradcheck(fn, (x, w, b))


def test_second_derivative_matches_torch(device):
    x = np.random.default_rng(5).standard_normal((4, 3, 2)).astype(np.float64)
    xt = torch.tensor(x, requires_grad=True)
    gt, = torch.autograd.grad((torch.nn.functional.batch_norm(xt, None, None, training=True) ** 3).sum(), xt,
                              create_graph=True)
    (gt ** 2).sum().backward()
    xg = gn.tensor(x, requires_grad=True)
    g, = gn.grad((F.batch_norm(xg, None, None, training=True) ** 3).sum(), xg, create_graph=True)
    (g ** 2).sum().backward()
    np.testing.assert_allclose(g.numpy(), gt.detach().numpy(), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), rtol=1e-7, atol=1e-8)


def test_the_emulated_device_uses_the_kernel():
    backend = gn.backend.get_backend("cuda-emu")
    assert backend.kernel_implementation("batch_norm_stats") == "kernels/batchnorm.cu"


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(3)(gn.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(gn.zeros(2, 3))
    with pytest.raises(ValueError, match="has 4 channels"):
        nn.BatchNorm1d(3)(gn.zeros(2, 4))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(gn.zeros(1, 3))
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm1d(0)
    nn.BatchNorm1d(3).eval()(gn.zeros(1, 3))  # eval with one sample is fine (running statistics)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_training_on_a_device_that_is_not_current_updates_the_running_stats_there_without_waiting(momentum):
    """cuda-emu:1 while the CPU is current: the running statistics and the batch counter move on device 1 (the
    stand-in refuses an in-place update run on another device) as PyTorch's do, and no step copies to the host
    (the cumulative average's 1 / batches stays on the device)."""
    ours, theirs = twin(nn.BatchNorm2d, momentum=momentum)
    ours.to("cuda-emu:1")
    device = gn.backend.get_backend("cuda-emu:1")
    rng = np.random.default_rng(3)
    for step in range(3):
        x = (rng.standard_normal((4, 3, 2, 2)) + step).astype(np.float32)
        before = device.host_syncs()
        ours(gn.tensor(x, device="cuda-emu:1")).sum().backward()
        assert device.host_syncs() == before
        theirs(torch.tensor(x))
    assert ours.running_mean.data.device_id == 1 and int(ours.num_batches_tracked.item()) == 3
    for name in ("running_mean", "running_var"):
        assert_close(getattr(ours, name), getattr(theirs, name), **TOLERANCE)
