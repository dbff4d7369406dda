"""LeNet-5 (LeCun et al. 1998) with the layer table of seed 002: C1 conv 6@5x5, S2 avg pool 2, C3 conv 16@5x5,
S4 avg pool 2, C5 fully connected 400 -> 120, F6 120 -> 84, output 84 -> classes; tanh activations.

C3 connects every input map (the paper's table of 10 partial connections is not used, as in every modern
reimplementation); with 10 classes the network has 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706 parameters.
"""
from __future__ import annotations

from .. import nn
from ..kinds import Arguments, Choice, Int, checked
from ._args import check_input, input_size_in

_ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(nn.Sequential):
    """LeNet-5 as a Sequential (children 0..12, the same keys as ``torch.nn.Sequential`` of the same layers).

    ``input_size`` 32 (the paper's) or 28 (MNIST-sized: the first convolution pads by 2, so the shapes from C1 on
    are the paper's); ``activation`` tanh (the paper's), relu or sigmoid; ``pooling`` avg (the paper's) or max.
    """

    arguments = Arguments(num_classes=Int(ge=1), in_channels=Int(ge=1), input_size=Int(ge=1),
                          activation=Choice(tuple(_ACTIVATIONS), "activation"), pooling=Choice(tuple(_POOLS), "pooling"),
                          rules=(input_size_in((32, 28), "LeNet-5's layer table"),))

    @checked
    def __init__(self, num_classes: int = 10, in_channels: int = 1, input_size: int = 32, activation: str = "tanh",
                 pooling: str = "avg"):
        act, pool = _ACTIVATIONS[activation], _POOLS[pooling]
        super().__init__(
            nn.Conv2d(in_channels, 6, 5, padding=(32 - input_size) // 2), act(), pool(2),  # C1, S2: 28x28x6, 14x14x6
            nn.Conv2d(6, 16, 5), act(), pool(2),  # C3, S4: 10x10x16, 5x5x16
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), act(),  # C5
            nn.Linear(120, 84), act(),  # F6
            nn.Linear(84, num_classes),  # output logits (cross_entropy applies the softmax)
        )
        self.in_channels, self.input_size = in_channels, input_size

    def forward(self, x):
        check_input(f"lenet5(in_channels={self.in_channels}, input_size={self.input_size})", x, self.in_channels,
                    self.input_size)
        return super().forward(x)


def lenet5(num_classes: int = 10, in_channels: int = 1, input_size: int = 32, activation: str = "tanh",
           pooling: str = "avg") -> LeNet5:
    """Seed 002's LeNet-5 (see ``LeNet5``)."""
    return LeNet5(num_classes, in_channels, input_size, activation, pooling)
