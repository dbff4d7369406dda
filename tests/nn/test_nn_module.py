"""Module: registration, traversal, state_dict interchange with PyTorch, modes, devices/dtypes, repr."""
import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet import nn


def _net_class(lib):
    """The same network written against gpunet.nn or torch.nn (named Net in both)."""

    class Net(lib.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = lib.Linear(6, 5)
            self.act = lib.PReLU(5)
            self.blocks = lib.ModuleList([lib.Linear(5, 5), lib.Tanh(), lib.Linear(5, 4, bias=False)])
            self.head = lib.Sequential(OrderedDict([("drop", lib.Dropout(0.1)), ("out", lib.Linear(4, 3))]))
            self.register_buffer("running", _tensor(lib, np.arange(3.0)))
            self.register_buffer("scratch", _tensor(lib, np.zeros(2)), persistent=False)

        def forward(self, x):
            x = self.act(self.fc1(x))
            for block in self.blocks:
                x = block(x)
            return self.head(x) + self.running

    return Net


def _tensor(lib, array):
    return gn.tensor(array, dtype=gn.float32) if lib is nn else torch.tensor(array, dtype=torch.float32)


def _pair():
    gn.manual_seed(0)
    torch.manual_seed(0)
    return _net_class(nn)(), _net_class(torch.nn)()


def test_named_parameters_buffers_and_state_dict_keys_match_torch():
    ours, theirs = _pair()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [tuple(p.shape) for p in ours.parameters()] == [tuple(p.shape) for p in theirs.parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)  # includes 'running', not the non-persistent 'scratch'
    for key in ours_sd:
        assert isinstance(ours_sd[key], np.ndarray)
        assert ours_sd[key].shape == tuple(theirs_sd[key].shape), key
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())


def test_weights_move_both_ways_and_give_equal_outputs():
    ours, theirs = _pair()
    ours.eval(), theirs.eval()
    x = np.random.default_rng(0).standard_normal((7, 6)).astype(np.float32)
    # torch -> gpunet: torch's own state_dict (CPU tensors convert through NumPy)
    ours.load_state_dict(theirs.state_dict())
    np.testing.assert_allclose(ours(gn.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    # gpunet -> torch, after changing gpunet's weights
    gn.manual_seed(5)
    fresh = _net_class(nn)()
    fresh.eval()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in fresh.state_dict().items()})
    np.testing.assert_allclose(fresh(gn.tensor(x)).numpy(), theirs(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_state_dict_is_a_copy_and_load_copies_in_place():
    net = nn.Linear(3, 2)
    weight = net.weight
    array_before = weight.data
    sd = net.state_dict()
    sd["weight"][...] = 7.0
    assert not np.any(net.weight.numpy() == 7.0)  # state_dict holds copies
    net.load_state_dict({"weight": np.ones((2, 3)), "bias": gn.tensor([1.0, 2.0], dtype=gn.float64)})
    assert net.weight is weight and net.weight.data is array_before  # same Parameter, same array
    assert net.weight.dtype == np.float32 and net.bias.dtype == np.float32  # dtype kept
    np.testing.assert_array_equal(net.bias.numpy(), [1.0, 2.0])


def test_load_state_dict_errors_name_missing_unexpected_and_mismatched_keys():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    good = net.state_dict()
    missing = {k: v for k, v in good.items() if k != "1.bias"}
    with pytest.raises(RuntimeError, match=r"missing keys: '1\.bias'"):
        net.load_state_dict(missing)
    with pytest.raises(RuntimeError, match=r"unexpected keys: 'extra'"):
        net.load_state_dict({**good, "extra": np.zeros(1)})
    bad = dict(good, **{"0.weight": np.zeros((3, 2))})
    with pytest.raises(RuntimeError, match=r"size mismatch for '0\.weight'.*\(3, 2\).*\(2, 3\)"):
        net.load_state_dict(bad)
    before = net.state_dict()
    with pytest.raises(RuntimeError):  # a failed load changes nothing
        net.load_state_dict(dict(bad, **{"1.bias": np.full(1, 9.0)}))
    np.testing.assert_array_equal(net.state_dict()["1.bias"], before["1.bias"])
    result = net.load_state_dict({**missing, "extra": np.zeros(1)}, strict=False)
    assert result.missing_keys == ["1.bias"] and result.unexpected_keys == ["extra"]
    with pytest.raises(RuntimeError, match="size mismatch"):  # shape mismatches are errors even when not strict
        net.load_state_dict(bad, strict=False)


def test_registration_rules():
    m = nn.Module()
    m.w = nn.Parameter(gn.zeros(2))
    m.child = nn.Linear(1, 1)
    m.plain = gn.zeros(3)  # a plain tensor attribute is not registered
    assert [n for n, _ in m.named_parameters()] == ["w", "child.weight", "child.bias"]
    assert list(m.state_dict()) == ["w", "child.weight", "child.bias"]
    with pytest.raises(TypeError, match="Parameter or None"):
        m.w = gn.zeros(2)
    m.w = None
    assert m.w is None and [n for n, _ in m.named_parameters()] == ["child.weight", "child.bias"]
    m.child = nn.Tanh()  # replacing a child
    assert [n for n, _ in m.named_parameters()] == []
    del m.child
    assert list(m.children()) == []
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        m.missing
    m.register_buffer("stat", gn.ones(2))
    m.stat = gn.zeros(2)  # assigning to a buffer name keeps it a buffer
    np.testing.assert_array_equal(m.state_dict()["stat"], [0.0, 0.0])
    with pytest.raises(KeyError, match="without '.'"):
        m.register_buffer("a.b", gn.ones(1))
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("training", gn.ones(1))


def test_shared_parameters_and_modules_are_listed_once():
    shared = nn.Linear(2, 2)
    net = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(net.parameters())) == 2
    assert [n for n, _ in net.named_modules()] == ["", "0", "1"]


def test_forgetting_super_init_gives_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(1, 1)

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_train_eval_propagate_and_return_self():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.ReLU()))
    assert net.eval() is net
    assert all(not m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    with pytest.raises(ValueError, match="bool"):
        net.train("no")


def test_to_float64_keeps_the_parameter_objects_an_optimizer_holds():
    net = nn.Sequential(nn.Linear(3, 4), nn.PReLU())
    net.register_buffer("scale", gn.ones(2))
    held = list(net.parameters())
    values = [p.numpy() for p in held]
    net(gn.randn(2, 3)).sum().backward()
    assert net.to(dtype=gn.float64) is net
    assert all(a is b for a, b in zip(held, net.parameters()))
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in held)
    assert net.scale.dtype == np.float64
    for p, v in zip(held, values):
        np.testing.assert_array_equal(p.numpy(), v.astype(np.float64))
    out = net(gn.randn(2, 3, dtype=gn.float64))
    assert out.dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in held)
    net.to(gn.float64)  # a dtype as the first argument, as in PyTorch
    assert held[0].dtype == np.float64
    net.to("cpu")
    assert all(p.device == gn.device("cpu") for p in held)
    with pytest.raises(TypeError, match="floating-point"):
        net.to(dtype=gn.int64)


def test_zero_grad_and_apply():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    net(gn.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    visited = []
    assert net.apply(lambda m: visited.append(type(m).__name__)) is net
    assert visited == ["Linear", "Linear", "Sequential"]

    def init_linear(m):
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)

    net.apply(init_linear)
    assert not net[0].weight.numpy().any() and not net[1].weight.numpy().any()


def test_repr_matches_torch():
    ours, theirs = _pair()
    assert repr(ours) == repr(theirs)
    assert repr(nn.Flatten()) == repr(torch.nn.Flatten())
    assert repr(nn.Identity()) == repr(torch.nn.Identity())
    assert repr(nn.Sequential()) == repr(torch.nn.Sequential())


def test_parameter_is_a_leaf_that_requires_grad():
    p = nn.Parameter(gn.randn(2, 2))
    assert isinstance(p, gn.Tensor) and p.requires_grad and p.is_leaf
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(np.zeros(2), requires_grad=False).requires_grad
    assert nn.Parameter([1, 2]).dtype == np.float32
    computed = gn.randn(2, requires_grad=True) * 2
    assert nn.Parameter(computed).is_leaf


def test_deepcopy_and_pickle_give_independent_working_modules():
    net = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    x = gn.randn(4, 3)
    for clone in (copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        assert isinstance(clone[0].weight, nn.Parameter)
        np.testing.assert_array_equal(clone(x).numpy(), net(x).numpy())
        nn.init.zeros_(clone[0].weight)
        assert net[0].weight.numpy().any()
        clone(x).sum().backward()  # the copy works on the same device as the original
        assert clone[0].bias.grad is not None


def test_get_submodule_and_call_without_forward():
    net = nn.Sequential(nn.Sequential(nn.Linear(1, 1)))
    assert net.get_submodule("0.0") is net[0][0]
    with pytest.raises(AttributeError, match="no submodule '5'"):
        net.get_submodule("0.5")
    with pytest.raises(NotImplementedError, match="no forward"):
        nn.Module()(1)
