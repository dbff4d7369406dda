"""Residual networks (He et al. 2015, 2016) as in seed 002: basic, bottleneck and pre-activation blocks, and
``resnet(depth, width, ...)`` with the ResNet-18/34/50/101/152 stage layouts.

Names and layouts follow torchvision (``conv1``, ``bn1``, ``layer1`` ... ``layer4``, ``fc``; blocks ``conv1``,
``bn1``, ..., ``downsample``), so state_dicts carry over. Small inputs (``input_size`` <= 64: CIFAR's 32x32,
MNIST's 28x28) get the usual CIFAR stem, a 3x3 stride-1 convolution without max pooling; larger ones ImageNet's
7x7 stride-2 convolution and 3x3 stride-2 max pooling.
"""
from __future__ import annotations

from .. import nn
from ..nn import functional as F
from ..kinds import ArgumentError, Bool, Int, takes
from ._args import positive_int

_SMALL_INPUT = 64  # the largest input_size that gets the CIFAR stem


def _conv3x3(in_planes, planes, stride=1):
    return nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)


def _projection(in_planes, planes, stride, norm=True):
    """The shortcut when the shape changes: a strided 1x1 convolution (then BatchNorm, for post-activation)."""
    conv = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(planes)) if norm else nn.Sequential(conv)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), two 3x3 convolutions; ``downsample`` (1x1 convolution
    and BatchNorm) is the shortcut when ``stride`` != 1 or the width changes, else the identity."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = _conv3x3(in_planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes), nn.BatchNorm2d(planes)
        needs = stride != 1 or in_planes != planes
        self.downsample = _projection(in_planes, planes, stride) if needs else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce to ``planes``, 3x3 (with the stride), 1x1 expand to 4 * ``planes``, each with BatchNorm, ReLU after
    the sum with the shortcut (torchvision's ResNet v1.5: the stride is on the 3x3 convolution)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(in_planes, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = nn.Conv2d(planes, out_planes, 1, bias=False), nn.BatchNorm2d(out_planes)
        needs = stride != 1 or in_planes != out_planes
        self.downsample = _projection(in_planes, out_planes, stride) if needs else None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class PreActBlock(nn.Module):
    """The pre-activation basic block (He et al. 2016, "Identity mappings"): conv2(relu(bn2(conv1(relu(bn1(x)))))) +
    shortcut, nothing after the sum; the projection shortcut (a 1x1 convolution, ``downsample``) takes relu(bn1(x))."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(in_planes), _conv3x3(in_planes, planes, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(planes), _conv3x3(planes, planes)
        needs = stride != 1 or in_planes != planes
        self.downsample = _projection(in_planes, planes, stride, norm=False) if needs else None

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = x if self.downsample is None else self.downsample(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


LAYOUTS = {18: (BasicBlock, (2, 2, 2, 2)), 34: (BasicBlock, (3, 4, 6, 3)), 50: (Bottleneck, (3, 4, 6, 3)),
           101: (Bottleneck, (3, 4, 23, 3)), 152: (Bottleneck, (3, 8, 36, 3))}


class ResNet(nn.Module):
    """A stem, four stages of residual blocks (widths ``width`` * 1, 2, 4, 8; stages 2-4 start with stride 2),
    global average pooling and a Linear classifier ``fc``. ``block`` BasicBlock, Bottleneck or PreActBlock
    (which adds ``bn_final`` and a ReLU before the pooling, and no BatchNorm in the stem); ``layers`` the number of
    blocks per stage."""

    def __init__(self, block, layers, width: int = 64, in_channels: int = 3, num_classes: int = 1000,
                 input_size: int = 224):
        super().__init__()
        if block not in (BasicBlock, Bottleneck, PreActBlock):
            raise ValueError(f"resnet: block must be BasicBlock, Bottleneck or PreActBlock, got {block!r}")
        if not isinstance(layers, (tuple, list)) or len(layers) != 4:
            raise ValueError(f"resnet: layers must be 4 numbers of blocks (one per stage), got {layers!r}")
        for i, n in enumerate(layers):
            positive_int("resnet", f"layers[{i}]", n)
        for name, value in (("width", width), ("in_channels", in_channels), ("num_classes", num_classes),
                            ("input_size", input_size)):
            positive_int("resnet", name, value)
        preact = block is PreActBlock
        if input_size <= _SMALL_INPUT:
            self.conv1 = _conv3x3(in_channels, width)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = None if preact else nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1) if input_size > _SMALL_INPUT else None
        planes_in = width
        for stage, blocks in enumerate(layers):
            planes = width * 2 ** stage
            stage_blocks = []
            for i in range(blocks):
                stage_blocks.append(block(planes_in, planes, 2 if stage and not i else 1))
                planes_in = planes * block.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*stage_blocks))
        self.bn_final = nn.BatchNorm2d(planes_in) if preact else None
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes_in, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.conv1(x)
        if self.bn1 is not None:
            x = F.relu(self.bn1(x))
        if self.maxpool is not None:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.bn_final is not None:
            x = F.relu(self.bn_final(x))
        return self.fc(self.avgpool(x).flatten(1))


def _depth_is_a_layout(args):
    if args["depth"] not in LAYOUTS:
        allowed = ", ".join(map(str, LAYOUTS))
        raise ArgumentError("depth", f"must be one of {allowed} (the ResNet layouts)", args["depth"], allowed)


def _preact_is_basic(args):
    basic = " or ".join(str(d) for d, (block, _) in LAYOUTS.items() if block is BasicBlock)
    if args["preact"] and LAYOUTS[args["depth"]][0] is not BasicBlock:
        raise ArgumentError("preact", f"is for the basic-block depths {basic} (pre-activation blocks are basic "
                            f"blocks), not depth {args['depth']}", True, f"false, or depth {basic}")


@takes(depth=Int(ge=18), width=Int(ge=1), in_channels=Int(ge=1), num_classes=Int(ge=1), input_size=Int(ge=1),
       preact=Bool(), rules=(_depth_is_a_layout, _preact_is_basic))
def resnet(depth: int = 18, width: int = 64, in_channels: int = 3, num_classes: int = 10, input_size: int = 32,
           preact: bool = False) -> ResNet:
    """ResNet-``depth`` (18, 34: basic blocks; 50, 101, 152: bottlenecks) with base width ``width`` (64 in the
    paper; 16 makes a small network for 28x28 digits), for square inputs of ``input_size`` with ``in_channels``
    channels. ``preact``: pre-activation basic blocks (depths 18 and 34)."""
    block, layers = LAYOUTS[depth]
    if preact:
        block = PreActBlock
    return ResNet(block, layers, width, in_channels, num_classes, input_size)


def resnet18(**kwargs) -> ResNet:
    """``resnet(18, ...)``: stages of 2, 2, 2, 2 basic blocks."""
    return resnet(18, **kwargs)


def resnet34(**kwargs) -> ResNet:
    """``resnet(34, ...)``: stages of 3, 4, 6, 3 basic blocks."""
    return resnet(34, **kwargs)
