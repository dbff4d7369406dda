"""gpunet.models against PyTorch models built here from the same layer lists: parameter counts (and the published
ones), state_dict keys and shapes, float64 outputs with the same weights, output shapes, the summary table, and
errors for arguments out of range and for inputs the network cannot take."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn as tnn

import gpunet as gn
from gpunet import models
from gpunet.nn.summary import summary


# ----- the references, in PyTorch -------------------------------------------------------------------------------
def torch_lenet5(num_classes=10, in_channels=1, input_size=32):
    return tnn.Sequential(
        tnn.Conv2d(in_channels, 6, 5, padding=(32 - input_size) // 2), tnn.Tanh(), tnn.AvgPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.Tanh(), tnn.AvgPool2d(2),
        tnn.Flatten(), tnn.Linear(400, 120), tnn.Tanh(), tnn.Linear(120, 84), tnn.Tanh(), tnn.Linear(84, num_classes))


def torch_cifar_cnn(num_classes=10, in_channels=3, side=4):
    return tnn.Sequential(
        tnn.Conv2d(in_channels, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(64, 64, 3), tnn.ReLU(), tnn.Flatten(), tnn.Linear(64 * side * side, 64), tnn.ReLU(),
        tnn.Linear(64, num_classes))


class TorchBasic(tnn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(cin, planes, 3, stride, 1, bias=False), tnn.BatchNorm2d(planes)
        self.conv2, self.bn2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False), tnn.BatchNorm2d(planes)
        self.downsample = (tnn.Sequential(tnn.Conv2d(cin, planes, 1, stride, bias=False), tnn.BatchNorm2d(planes))
                           if stride != 1 or cin != planes else None)

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1, self.bn1 = tnn.Conv2d(cin, planes, 1, bias=False), tnn.BatchNorm2d(planes)
        self.conv2, self.bn2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False), tnn.BatchNorm2d(planes)
        self.conv3, self.bn3 = tnn.Conv2d(planes, 4 * planes, 1, bias=False), tnn.BatchNorm2d(4 * planes)
        self.downsample = (tnn.Sequential(tnn.Conv2d(cin, 4 * planes, 1, stride, bias=False),
                                          tnn.BatchNorm2d(4 * planes)) if stride != 1 or cin != 4 * planes else None)

    def forward(self, x):
        out = torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return torch.relu(self.bn3(self.conv3(out)) + (x if self.downsample is None else self.downsample(x)))


class TorchPreAct(tnn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.bn1, self.conv1 = tnn.BatchNorm2d(cin), tnn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = tnn.BatchNorm2d(planes), tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.downsample = (tnn.Sequential(tnn.Conv2d(cin, planes, 1, stride, bias=False))
                           if stride != 1 or cin != planes else None)

    def forward(self, x):
        out = torch.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(out)
        return self.conv2(torch.relu(self.bn2(self.conv1(out)))) + shortcut


class TorchResNet(tnn.Module):
    def __init__(self, block, layers, width, in_channels, num_classes, imagenet_stem):
        super().__init__()
        preact = block is TorchPreAct
        self.conv1 = (tnn.Conv2d(in_channels, width, 7, 2, 3, bias=False) if imagenet_stem
                      else tnn.Conv2d(in_channels, width, 3, 1, 1, bias=False))
        self.bn1 = None if preact else tnn.BatchNorm2d(width)
        self.maxpool = tnn.MaxPool2d(3, 2, 1) if imagenet_stem else None
        cin = width
        for stage, blocks in enumerate(layers):
            stage_blocks = []
            for i in range(blocks):
                stage_blocks.append(block(cin, width * 2 ** stage, 2 if stage and not i else 1))
                cin = width * 2 ** stage * block.expansion
            setattr(self, f"layer{stage + 1}", tnn.Sequential(*stage_blocks))
        self.bn_final = tnn.BatchNorm2d(cin) if preact else None
        self.avgpool, self.fc = tnn.AdaptiveAvgPool2d(1), tnn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.conv1(x)
        x = x if self.bn1 is None else torch.relu(self.bn1(x))
        x = x if self.maxpool is None else self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = x if self.bn_final is None else torch.relu(self.bn_final(x))
        return self.fc(self.avgpool(x).flatten(1))


TORCH_LAYOUTS = {18: (TorchBasic, (2, 2, 2, 2)), 34: (TorchBasic, (3, 4, 6, 3)), 50: (TorchBottleneck, (3, 4, 6, 3)),
                 101: (TorchBottleneck, (3, 4, 23, 3))}


def torch_resnet(depth, width=64, in_channels=3, num_classes=10, input_size=32, preact=False):
    block, layers = TORCH_LAYOUTS[depth]
    return TorchResNet(TorchPreAct if preact else block, layers, width, in_channels, num_classes, input_size > 64)


def _count(module):
    return sum(int(np.prod(p.shape)) for p in module.parameters())


def _shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


# ----- parameter counts and layouts -----------------------------------------------------------------------------
@pytest.mark.parametrize("build, reference, published", [
    (lambda: models.lenet5(), lambda: torch_lenet5(), 61_706),  # seed 002's table
    (lambda: models.lenet5(input_size=28), lambda: torch_lenet5(input_size=28), 61_706),
    (lambda: models.cifar_cnn(), lambda: torch_cifar_cnn(), 122_570),  # seed 000
    (lambda: models.resnet(18), lambda: torch_resnet(18), 11_173_962),  # the common CIFAR ResNet-18
    (lambda: models.resnet(34), lambda: torch_resnet(34), 21_282_122),
    (lambda: models.resnet(18, in_channels=1, input_size=28), lambda: torch_resnet(18, in_channels=1), None),
    (lambda: models.resnet(34, width=16, in_channels=1, input_size=28),
     lambda: torch_resnet(34, width=16, in_channels=1), None),
    (lambda: models.resnet(18, preact=True), lambda: torch_resnet(18, preact=True), None),
    (lambda: models.resnet(18, num_classes=1000, input_size=224),  # torchvision's counts
     lambda: torch_resnet(18, num_classes=1000, input_size=224), 11_689_512),
    (lambda: models.resnet(34, num_classes=1000, input_size=224),
     lambda: torch_resnet(34, num_classes=1000, input_size=224), 21_797_672),
    (lambda: models.resnet(50, num_classes=1000, input_size=224),
     lambda: torch_resnet(50, num_classes=1000, input_size=224), 25_557_032),
], ids=["lenet5", "lenet5_28", "cifar_cnn", "resnet18", "resnet34", "resnet18_28x28x1", "resnet34_w16_28x28x1",
        "preact_resnet18", "resnet18_imagenet", "resnet34_imagenet", "resnet50_imagenet"])
def test_parameter_counts_and_state_dict_layout_match_pytorch(build, reference, published):
    model, ref = build(), reference()
    assert _shapes(model.state_dict()) == _shapes(ref.state_dict())
    assert _count(model) == _count(ref)
    if published is not None:
        assert _count(model) == published


@pytest.mark.parametrize("build, reference, shape", [
    (lambda: models.lenet5(input_size=28), lambda: torch_lenet5(input_size=28), (3, 1, 28, 28)),
    (lambda: models.lenet5(num_classes=5, in_channels=3), lambda: torch_lenet5(5, 3), (2, 3, 32, 32)),
    (lambda: models.cifar_cnn(), lambda: torch_cifar_cnn(), (2, 3, 32, 32)),
    (lambda: models.resnet(18, width=4, in_channels=1, input_size=28),
     lambda: torch_resnet(18, width=4, in_channels=1), (2, 1, 28, 28)),
    (lambda: models.resnet(34, width=2, num_classes=7), lambda: torch_resnet(34, width=2, num_classes=7),
     (2, 3, 32, 32)),
    (lambda: models.resnet(18, width=4, preact=True), lambda: torch_resnet(18, width=4, preact=True), (2, 3, 32, 32)),
    (lambda: models.resnet(50, width=2, input_size=96), lambda: torch_resnet(50, width=2, input_size=96),
     (2, 3, 96, 96)),
], ids=["lenet5_28", "lenet5_rgb", "cifar_cnn", "resnet18_28x28x1", "resnet34", "preact_resnet18", "resnet50"])
def test_outputs_match_pytorch_with_the_same_weights(build, reference, shape):
    torch.manual_seed(0)
    model, ref = build().double(), reference().double()
    for module in ref.modules():  # non-trivial BatchNorm statistics and affine parameters
        if isinstance(module, tnn.BatchNorm2d):
            for t in (module.weight, module.bias, module.running_mean):
                t.data.normal_(0, 0.5)
            module.running_var.data.uniform_(0.5, 2)
    model.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    x = np.random.default_rng(0).normal(size=shape)
    for train in (False, True):
        model.train(train), ref.train(train)
        y = model(gn.tensor(x, dtype=gn.float64))
        expected = ref(torch.tensor(x)).detach().numpy()
        assert y.shape == expected.shape
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-9, atol=1e-11)


def test_lenet5_summary_shows_the_seed_table():
    table = summary(models.lenet5(input_size=28), (1, 28, 28))
    rows = [(r.type, r.output_shape, r.params) for r in table.rows if r.params or r.type.endswith("Pool2d")]
    assert rows == [("Conv2d", "(None, 6, 28, 28)", 156), ("AvgPool2d", "(None, 6, 14, 14)", 0),
                    ("Conv2d", "(None, 16, 10, 10)", 2416), ("AvgPool2d", "(None, 16, 5, 5)", 0),
                    ("Linear", "(None, 120)", 48120), ("Linear", "(None, 84)", 10164), ("Linear", "(None, 10)", 850)]
    assert table.total == 61_706


def test_resnet_for_digits_trains_on_both_devices(device):
    gn.manual_seed(0)
    model = models.resnet(18, width=2, in_channels=1, num_classes=3, input_size=28)
    x, y = gn.randn(4, 1, 28, 28), gn.tensor(np.array([0, 1, 2, 1]))
    loss = gn.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None and p.grad.device == gn.device(device) for p in model.parameters())


# ----- bad arguments and inputs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("build, message", [
    (lambda: models.resnet(20), r"resnet: depth must be one of 18, 34, 50, 101, 152 \(the ResNet layouts\), got 20"),
    (lambda: models.resnet(18, width=0), r"resnet: width must be an integer >= 1, got 0"),
    (lambda: models.resnet(18, num_classes=-1), r"resnet: num_classes must be an integer >= 1, got -1"),
    (lambda: models.resnet(50, preact=True), r"resnet: preact is for the basic-block depths 18 or 34 .*, not depth 50"),
    (lambda: models.ResNet(models.BasicBlock, (2, 2, 2)), r"resnet: layers must be 4 numbers of blocks"),
    (lambda: models.lenet5(input_size=30), r"LeNet5: input_size must be one of 32, 28 \(LeNet-5's layer table\), got 30"),
    (lambda: models.lenet5(activation="gelu"), r"LeNet5: activation must be one of 'tanh', 'relu', 'sigmoid'"),
    (lambda: models.cifar_cnn(input_size=16), r"CifarCNN: input_size must be an integer >= 18, got 16"),
    (lambda: models.cifar_cnn(in_channels=2.5), r"CifarCNN: in_channels must be an integer >= 1, got 2.5"),
])
def test_arguments_out_of_range(build, message):
    with pytest.raises(ValueError, match=message):
        build()


@pytest.mark.parametrize("model, shape, message", [
    (lambda: models.lenet5(), (2, 1, 28, 28), r"lenet5\(in_channels=1, input_size=32\): expects inputs of shape "
                                              r"\(N, 1, 32, 32\), got \(2, 1, 28, 28\)"),
    (lambda: models.cifar_cnn(), (2, 1, 32, 32), r"cifar_cnn\(in_channels=3, input_size=32\): expects inputs of shape "
                                                 r"\(N, 3, 32, 32\), got \(2, 1, 32, 32\)"),
    (lambda: models.resnet(18, width=2), (2, 1, 32, 32), r"Conv2d\(3, 2, kernel_size=\(3, 3\).*input of shape "
                                                         r"\(2, 1, 32, 32\) has 1 channels"),
])
def test_inputs_the_network_cannot_take(model, shape, message):
    with pytest.raises(ValueError, match=message):
        model()(gn.randn(*shape))
