"""Sequential, ModuleList and ModuleDict: indexing, iteration, mutation and registration, as in PyTorch."""
from collections import OrderedDict

import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet import nn


def test_sequential_chains_modules_and_indexes_like_a_list():
    a, b, c = nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)
    net = nn.Sequential(a, b, c)
    assert len(net) == 3 and list(net) == [a, b, c]
    assert net[0] is a and net[-1] is c
    head = net[:2]
    assert isinstance(head, nn.Sequential) and list(head) == [a, b]
    x = gn.randn(5, 4)
    np.testing.assert_allclose(net(x).numpy(), c(b(a(x))).numpy())
    with pytest.raises(IndexError, match="out of range"):
        net[3]
    with pytest.raises(TypeError, match="integers or slices"):
        net["0"]


def test_sequential_from_ordered_dict_keeps_names():
    net = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Sigmoid())]))
    assert list(net.state_dict()) == ["fc.weight", "fc.bias"]
    assert isinstance(net.act, nn.Sigmoid) and net[1] is net.act


def test_sequential_append_insert_delete_renumber_like_torch():
    ours = nn.Sequential(nn.Linear(1, 1), nn.Tanh())
    theirs = torch.nn.Sequential(torch.nn.Linear(1, 1), torch.nn.Tanh())
    for seq, lib in ((ours, nn), (theirs, torch.nn)):
        seq.append(lib.Linear(1, 2))
        seq.insert(1, lib.ReLU())
        del seq[0]
        seq[0] = lib.Sigmoid()
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs] == ["Sigmoid", "Tanh", "Linear"]
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["2.weight", "2.bias"]


def test_module_list_registers_and_behaves_like_a_list():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and sum(1 for _ in layers.parameters()) == 6
    layers.append(nn.Linear(2, 1))
    layers.extend([nn.ReLU()])
    layers += [nn.Tanh()]
    layers.insert(0, nn.Identity())
    assert [type(m).__name__ for m in layers] == ["Identity", "Linear", "Linear", "Linear", "Linear", "ReLU", "Tanh"]
    assert layers[-1] is list(layers)[-1]
    del layers[0]
    assert list(layers.state_dict())[:2] == ["0.weight", "0.bias"]
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    with pytest.raises(NotImplementedError, match="iterate"):
        layers(gn.randn(1, 2))


def test_module_dict_registers_named_modules():
    d = nn.ModuleDict({"enc": nn.Linear(3, 2), "dec": nn.Linear(2, 3)})
    assert list(d) == ["enc", "dec"] and "enc" in d and len(d) == 2
    assert list(d.state_dict()) == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    d["act"] = nn.ReLU()
    assert list(d.keys()) == ["enc", "dec", "act"]
    popped = d.pop("enc")
    assert isinstance(popped, nn.Linear) and "enc" not in d
    d.update([("out", nn.Sigmoid())])
    assert [k for k, _ in d.items()] == ["dec", "act", "out"]
    with pytest.raises(KeyError, match="already exists"):
        d["keys"] = nn.ReLU()


def test_containers_inside_a_module_expose_parameters_to_the_parent():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 3), nn.Linear(3, 1)])
            self.extra = nn.ModuleDict({"bias": nn.Linear(1, 1, bias=False)})

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return self.extra["bias"](x)

    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias", "extra.bias.weight"]
    net(gn.randn(4, 2)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
