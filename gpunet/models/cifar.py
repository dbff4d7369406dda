"""Seed 000's CIFAR-10 network (its Keras example): Conv 32 3x3 ReLU, MaxPool 2, Conv 64 3x3 ReLU, MaxPool 2,
Conv 64 3x3 ReLU, Flatten, Dense 64 ReLU, Dense 10 (logits); 122,570 parameters on 32x32x3 inputs."""
from __future__ import annotations

from .. import nn
from ..kinds import Arguments, Int, checked
from ._args import check_input


def _feature_size(input_size: int) -> int:
    """The side of the last feature map: valid 3x3 convolutions and floor 2x2 pooling."""
    return ((input_size - 2) // 2 - 2) // 2 - 2


class CifarCNN(nn.Sequential):
    """Seed 000's CIFAR-10 CNN as a Sequential (children 0..10, the keys of ``torch.nn.Sequential`` of the same
    layers). ``input_size`` (square inputs) must be at least 18, so that the last feature map is not empty."""

    arguments = Arguments(num_classes=Int(ge=1), in_channels=Int(ge=1), input_size=Int(ge=18))

    @checked
    def __init__(self, num_classes: int = 10, in_channels: int = 3, input_size: int = 32):
        side = _feature_size(input_size)
        super().__init__(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * side * side, 64), nn.ReLU(),
            nn.Linear(64, num_classes),
        )
        self.in_channels, self.input_size = in_channels, input_size

    def forward(self, x):
        check_input(f"cifar_cnn(in_channels={self.in_channels}, input_size={self.input_size})", x, self.in_channels,
                    self.input_size)
        return super().forward(x)


def cifar_cnn(num_classes: int = 10, in_channels: int = 3, input_size: int = 32) -> CifarCNN:
    """Seed 000's CIFAR-10 CNN (see ``CifarCNN``)."""
    return CifarCNN(num_classes, in_channels, input_size)
