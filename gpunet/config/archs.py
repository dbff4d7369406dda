"""Registered architectures: ``model: {arch: <name>, args: {...}}`` builds a whole network from a few arguments."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .. import models
from .components import Component, component
from .layers import build_layers
from ..kinds import Choice, Float, Int, ListOf, Optional, takes


@dataclass(frozen=True)
class ArchSpec(Component):
    """The arguments an architecture takes (checked like any section); ``build(**args)`` (its ``cls``) makes the
    network."""

    @property
    def build(self) -> Callable:
        return self.cls


ARCHS: dict[str, ArchSpec] = {}


def register_arch(name: str, doc: str, fields: dict, build: Callable) -> ArchSpec:
    """Allow ``model: {arch: name, args: ...}``; ``build`` (a class or function that declares its arguments' kinds)
    receives the checked args as keywords. ``fields`` describes each offered argument; names, kinds, defaults and
    rules come from ``build``."""
    ARCHS[name] = component(build, doc, fields, spec_type=ArchSpec)
    return ARCHS[name]


MLP_ACTIVATIONS = ("ReLU", "Sigmoid", "Tanh", "LeakyReLU", "ELU", "GELU", "Softplus", "Identity")


def mlp_layers(in_features: int, out_features: int, hidden: list, activation: str, dropout: float,
               output_activation: str | None) -> list[dict]:
    """The ``model.layers`` an ``mlp`` stands for: Linear, activation (and Dropout) per hidden layer, then Linear."""
    layers, width = [], in_features
    for size in hidden:
        layers += [{"type": "Linear", "in_features": width, "out_features": size}, {"type": activation}]
        if dropout > 0:
            layers.append({"type": "Dropout", "p": dropout})
        width = size
    layers.append({"type": "Linear", "in_features": width, "out_features": out_features})
    if output_activation is not None:
        layers.append({"type": output_activation, **({"dim": 1} if "Softmax" in output_activation else {})})
    return layers


@takes(in_features=Int(ge=1), out_features=Int(ge=1), hidden=ListOf(Int(ge=1)),
       activation=Choice(MLP_ACTIVATIONS, "activation"), dropout=Float(ge=0, lt=1),
       output_activation=Optional(Choice(("Softmax", "LogSoftmax", "Sigmoid"), "activation")))
def mlp(in_features: int, out_features: int, hidden=(), activation: str = "ReLU", dropout: float = 0.0,
        output_activation: str | None = None):
    """The ``mlp`` architecture as a ``gpunet.nn.Sequential`` (see ``mlp_layers``)."""
    return build_layers(mlp_layers(in_features, out_features, list(hidden), activation, dropout, output_activation))


register_arch("mlp", "Multilayer perceptron: Linear layers with an activation (and optional dropout) between them.", {
    "in_features": "number of input features",
    "out_features": "number of outputs (classes for classification)",
    "hidden": "widths of the hidden layers, in order",
    "activation": "activation after each hidden Linear",
    "dropout": "dropout probability after each hidden activation (0: none)",
    "output_activation": "activation after the last Linear (null for logits, which cross_entropy expects)",
}, mlp)


# The convolutional networks of gpunet.models.
_CLASSES = "number of outputs (classes)"
_IN_CHANNELS = "channels of the input images (1 grey, 3 colour)"
register_arch("lenet5", "LeNet-5 (seed 002): conv 6@5x5, pool, conv 16@5x5, pool, Linear 400-120-84-classes; "
              "61,706 parameters for 10 classes.", {
                  "num_classes": _CLASSES,
                  "in_channels": _IN_CHANNELS,
                  "input_size": "side of the square input: 32 (the paper's) or 28 (the first convolution pads by 2)",
                  "activation": "activation after each convolution and hidden Linear",
                  "pooling": "2x2 subsampling: avg (the paper's) or max",
              }, models.LeNet5)
register_arch("cifar_cnn", "Seed 000's CIFAR-10 CNN: conv 32, pool, conv 64, pool, conv 64 (3x3, ReLU), Linear 64, "
              "Linear classes; 122,570 parameters on 32x32x3 inputs.", {
                  "num_classes": _CLASSES,
                  "in_channels": _IN_CHANNELS,
                  "input_size": "side of the square input (at least 18)",
              }, models.CifarCNN)
register_arch("resnet", "Residual network: a stem, four stages of residual blocks (widths width x 1, 2, 4, 8), "
              "global average pooling, Linear; inputs up to 64x64 get the CIFAR stem (3x3 conv, no max pooling).",
              {
                  "depth": "18, 34 (basic blocks), 50, 101, 152 (bottlenecks)",
                  "width": "channels of the first stage (64 in the paper; 16 is small)",
                  "in_channels": _IN_CHANNELS,
                  "num_classes": _CLASSES,
                  "input_size": "side of the square input",
                  "preact": "pre-activation basic blocks (depth 18 or 34)",
              }, models.resnet)
