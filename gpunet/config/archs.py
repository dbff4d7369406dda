"""Registered architectures: ``model: {arch: <name>, args: {...}}`` builds a whole network from a few arguments."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .. import models
from ..models.resnet import LAYOUTS as RESNET_LAYOUTS, BasicBlock
from .components import Component, component
from .layers import build_layers
from ..kinds import Bool, Choice, Float, Int, ListOf, Optional
from .spec import Field, Section


@dataclass(frozen=True)
class ArchSpec(Component):
    """The arguments an architecture takes (checked like any section); ``build(**args)`` (its ``cls``) makes the
    network."""

    @property
    def build(self) -> Callable:
        return self.cls


ARCHS: dict[str, ArchSpec] = {}


def register_arch(name: str, doc: str, fields: dict, build: Callable, check_fn=None) -> ArchSpec:
    """Allow ``model: {arch: name, args: ...}``; ``build`` receives the checked args as keywords. ``fields`` maps
    each offered argument to its Field; names and defaults come from ``build``'s signature."""
    ARCHS[name] = component(build, doc, fields, check_fn=check_fn, spec_type=ArchSpec)
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


def mlp(in_features: int, out_features: int, hidden=(), activation: str = "ReLU", dropout: float = 0.0,
        output_activation: str | None = None):
    """The ``mlp`` architecture as a ``gpunet.nn.Sequential`` (see ``mlp_layers``)."""
    return build_layers(mlp_layers(in_features, out_features, list(hidden), activation, dropout, output_activation))


register_arch("mlp", "Multilayer perceptron: Linear layers with an activation (and optional dropout) between them.", {
    "in_features": Field(Int(ge=1), "number of input features"),
    "out_features": Field(Int(ge=1), "number of outputs (classes for classification)"),
    "hidden": Field(ListOf(Int(ge=1)), "widths of the hidden layers, in order"),
    "activation": Field(Choice(MLP_ACTIVATIONS, "activation"), "activation after each hidden Linear"),
    "dropout": Field(Float(ge=0, lt=1), "dropout probability after each hidden activation (0: none)"),
    "output_activation": Field(Optional(Choice(("Softmax", "LogSoftmax", "Sigmoid"), "activation")),
                               "activation after the last Linear (null for logits, which cross_entropy expects)"),
}, mlp)


# The convolutional networks of gpunet.models.
def _one_of(key: str, allowed: tuple, why: str):
    """A rule the architecture also enforces, checked here so the message names the file and line."""
    def check(args, path, ck):
        if args[key] not in allowed:
            ck.fail(path + (key,), f"must be one of {', '.join(map(str, allowed))} ({why})", value=args[key],
                    allowed=", ".join(map(str, allowed)))
    return check


def _resnet_rules(args, path, ck):
    _one_of("depth", tuple(RESNET_LAYOUTS), "the ResNet layouts")(args, path, ck)
    basic = tuple(depth for depth, (block, _) in RESNET_LAYOUTS.items() if block is BasicBlock)
    if args["preact"] and args["depth"] in RESNET_LAYOUTS and args["depth"] not in basic:
        ck.fail(path + ("preact",), f"pre-activation blocks are basic blocks: depth must be "
                f"{' or '.join(map(str, basic))}, got depth {args['depth']}", value=True,
                allowed=f"false, or depth {' or '.join(map(str, basic))}")


_CLASSES = Field(Int(ge=1), "number of outputs (classes)")
_IN_CHANNELS = Field(Int(ge=1), "channels of the input images (1 grey, 3 colour)")
register_arch("lenet5", "LeNet-5 (seed 002): conv 6@5x5, pool, conv 16@5x5, pool, Linear 400-120-84-classes; "
              "61,706 parameters for 10 classes.", {
                  "num_classes": _CLASSES,
                  "in_channels": _IN_CHANNELS,
                  "input_size": Field(Int(ge=1), "side of the square input: 32 (the paper's) or 28 (the first "
                                      "convolution pads by 2)"),
                  "activation": Field(Choice(("tanh", "relu", "sigmoid"), "activation"),
                                      "activation after each convolution and hidden Linear"),
                  "pooling": Field(Choice(("avg", "max"), "pooling"), "2x2 subsampling: avg (the paper's) or max"),
              }, models.lenet5, _one_of("input_size", (32, 28), "LeNet-5's layer table"))
register_arch("cifar_cnn", "Seed 000's CIFAR-10 CNN: conv 32, pool, conv 64, pool, conv 64 (3x3, ReLU), Linear 64, "
              "Linear classes; 122,570 parameters on 32x32x3 inputs.", {
                  "num_classes": _CLASSES,
                  "in_channels": _IN_CHANNELS,
                  "input_size": Field(Int(ge=18), "side of the square input (at least 18)"),
              }, models.cifar_cnn)
register_arch("resnet", "Residual network: a stem, four stages of residual blocks (widths width x 1, 2, 4, 8), "
              "global average pooling, Linear; inputs up to 64x64 get the CIFAR stem (3x3 conv, no max pooling).",
              {
                  "depth": Field(Int(ge=18), "18, 34 (basic blocks), 50, 101, 152 (bottlenecks)"),
                  "width": Field(Int(ge=1), "channels of the first stage (64 in the paper; 16 is small)"),
                  "in_channels": _IN_CHANNELS,
                  "num_classes": _CLASSES,
                  "input_size": Field(Int(ge=1), "side of the square input"),
                  "preact": Field(Bool(), "pre-activation basic blocks (depth 18 or 34)"),
              }, models.resnet, _resnet_rules)
