"""gpunet.train.transfer: weights read from gpunet checkpoints, .npz, PyTorch and safetensors files equal what was
saved; freezing keeps weights bitwise and out of the optimizer's state; the new head has the new size; per-layer
learning rates reach the optimizer's groups; bad names and files give errors naming them."""
import numpy as np
import pytest
import torch

import gpunet as gn
from gpunet.train.checkpoint import Checkpoint, save_checkpoint
from gpunet.train.transfer import (TransferError, freeze, layer_names, load_weights, parameter_groups,
                                   replace_head)


def _net():
    gn.manual_seed(0)
    return gn.nn.Sequential(gn.nn.Linear(8, 6), gn.nn.ReLU(), gn.nn.Linear(6, 5), gn.nn.ReLU(), gn.nn.Linear(5, 3))


def _torch_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 5), torch.nn.ReLU(),
                               torch.nn.Linear(5, 3))


def _assert_same(loaded, expected):
    assert list(loaded) == list(expected)
    for key in expected:
        np.testing.assert_array_equal(loaded[key], expected[key], err_msg=key)


def test_weights_from_a_gpunet_checkpoint_and_a_plain_npz(tmp_path):
    state = _net().state_dict()
    save_checkpoint(tmp_path / "best.npz", Checkpoint(model=state, epoch=3))
    _assert_same(load_weights(tmp_path / "best.npz"), state)
    np.savez(tmp_path / "weights.npz", **state)
    _assert_same(load_weights(tmp_path / "weights.npz"), state)


def test_weights_from_a_pytorch_state_dict_file_load_into_the_gpunet_model(tmp_path):
    net = _torch_net()
    torch.save(net.state_dict(), tmp_path / "net.pt")
    weights = load_weights(tmp_path / "net.pt")
    _assert_same(weights, {k: v.numpy() for k, v in net.state_dict().items()})
    model = _net()
    model.load_state_dict(weights)
    x = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    np.testing.assert_allclose(model(gn.tensor(x)).numpy(), net(torch.tensor(x)).detach().numpy(), rtol=1e-6)


def test_a_pytorch_file_holding_code_is_refused_not_run(tmp_path):
    torch.save({"model": _torch_net()}, tmp_path / "whole.pt")  # a pickled module: weights_only refuses it
    with pytest.raises(TransferError, match="whole.pt"):
        load_weights(tmp_path / "whole.pt")


def test_pytorch_files_without_pytorch_name_the_install_command(tmp_path, monkeypatch):
    torch.save(_torch_net().state_dict(), tmp_path / "net.pth")
    monkeypatch.setitem(__import__("sys").modules, "torch", None)
    with pytest.raises(TransferError, match="pip install torch"):
        load_weights(tmp_path / "net.pth")


def test_safetensors_written_by_hand_are_read(tmp_path):
    """The format (8-byte little-endian header length, JSON header, raw data), written here without the package."""
    import json
    import struct
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    b = np.array([1.5, -2.0], dtype="<f8")
    header = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "F64", "shape": [2], "data_offsets": [24, 40]}, "__metadata__": {"format": "pt"}}
    text = json.dumps(header).encode()
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + a.tobytes() + b.tobytes())
    _assert_same(load_weights(tmp_path / "w.safetensors"), {"a": a, "b": b})
    (tmp_path / "cut.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + a.tobytes())
    with pytest.raises(TransferError, match="'b' does not fit its byte range"):
        load_weights(tmp_path / "cut.safetensors")


@pytest.mark.parametrize("name, message", [("missing.npz", "no such file"), ("w.h5", "unknown file type '.h5'")])
def test_bad_weight_files_are_named(tmp_path, name, message):
    if name.endswith(".h5"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(TransferError, match=message):
        load_weights(tmp_path / name)


def test_freezing_keeps_weights_bitwise_and_out_of_the_optimizer_state(device):
    model = _net()
    frozen = freeze(model, ["0", "2"])
    assert frozen == ["0.weight", "0.bias", "2.weight", "2.bias"]
    before = {k: v.copy() for k, v in model.state_dict().items()}
    optimizer = gn.optim.Adam(parameter_groups(model, lr=0.1), lr=0.1)
    x = gn.randn(7, 8)
    for _ in range(3):
        optimizer.zero_grad()
        (model(x) ** 2).mean().backward()
        optimizer.step()
    after = model.state_dict()
    for key in frozen:
        np.testing.assert_array_equal(after[key], before[key])
    assert model[0].weight.grad is None and model[2].bias.grad is None  # no gradient is even computed
    assert not np.array_equal(after["4.weight"], before["4.weight"])
    state = optimizer.state_dict()["state"]
    assert len(state) == 2  # only the head's weight and bias have Adam moments
    assert [len(g["params"]) for g in optimizer.state_dict()["param_groups"]] == [2]


def test_replaced_head_has_the_new_size_and_keeps_the_body(device):
    model = _net()
    body = {k: v.copy() for k, v in model.state_dict().items() if not k.startswith("4.")}
    head = replace_head(model, "4", 7)
    assert model[4] is head and (head.in_features, head.out_features) == (5, 7)
    assert head.weight.device == model[0].weight.device and head.weight.dtype == model[0].weight.dtype
    assert model(gn.randn(2, 8)).shape == (2, 7)
    for key, value in body.items():
        np.testing.assert_array_equal(model.state_dict()[key], value)


def test_parameter_groups_give_each_named_layer_its_learning_rate():
    model = _net().double()
    groups = parameter_groups(model, lr=0.1, layer_lr={"0": 0.001, "2": 0.01})
    optimizer = gn.optim.SGD(groups, lr=0.1)
    lrs = [g["lr"] for g in optimizer.param_groups]
    assert lrs == [0.001, 0.01, 0.1]
    expected = [[model[0].weight, model[0].bias], [model[2].weight, model[2].bias], [model[4].weight, model[4].bias]]
    assert [[id(p) for p in g["params"]] for g in optimizer.param_groups] == [[id(p) for p in g] for g in expected]
    # one SGD step moves each layer by its own rate times its gradient
    before = [p.numpy().copy() for p in model.parameters()]
    optimizer.zero_grad()
    (model(gn.randn(5, 8, dtype="float64")) ** 2).mean().backward()
    optimizer.step()
    rates = [0.001, 0.001, 0.01, 0.01, 0.1, 0.1]
    for p, old, rate in zip(model.parameters(), before, rates):
        np.testing.assert_allclose(old - p.numpy(), rate * p.grad.numpy(), rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("call", [lambda m: freeze(m, ["0", "fc"]), lambda m: replace_head(m, "9", 2),
                                  lambda m: parameter_groups(m, 0.1, {"fc": 0.01}), lambda m: freeze(m, ["1"])])
def test_unknown_layer_names_list_the_known_ones(call):
    with pytest.raises(TransferError, match=r"names no layer with parameters; the model's layers are: 0, 2, 4"):
        call(_net())
    assert layer_names(_net()) == ["0", "2", "4"]


def test_the_head_must_be_a_linear_layer():
    model = gn.nn.Sequential(gn.nn.Linear(3, 4), gn.nn.BatchNorm1d(4))
    with pytest.raises(TransferError, match="layer '1' is a BatchNorm1d; the head must be a Linear"):
        replace_head(model, "1", 2)
