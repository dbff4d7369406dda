"""Registered architectures: ``model: {arch: <name>, args: {...}}`` builds a whole network from a few arguments."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .layers import build_layers
from .spec import Choice, Field, Float, Int, ListOf, Optional, Section


@dataclass(frozen=True)
class ArchSpec(Section):
    """The arguments an architecture takes (checked like any section) and ``build(**args) -> Module``."""

    build: Callable | None = field(default=None, compare=False)


ARCHS: dict[str, ArchSpec] = {}


def register_arch(name: str, doc: str, fields: dict, build: Callable, check_fn=None) -> ArchSpec:
    """Allow ``model: {arch: name, args: ...}``; ``build`` receives the checked args as keywords."""
    spec = ArchSpec(fields, doc, check_fn, build)
    ARCHS[name] = spec
    return spec


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


def _build_mlp(**args):
    return build_layers(mlp_layers(**args))


register_arch("mlp", "Multilayer perceptron: Linear layers with an activation (and optional dropout) between them.", {
    "in_features": Field(Int(ge=1), "number of input features"),
    "out_features": Field(Int(ge=1), "number of outputs (classes for classification)"),
    "hidden": Field(ListOf(Int(ge=1)), "widths of the hidden layers, in order", []),
    "activation": Field(Choice(MLP_ACTIVATIONS, "activation"), "activation after each hidden Linear", "ReLU"),
    "dropout": Field(Float(ge=0, lt=1), "dropout probability after each hidden activation (0: none)", 0.0),
    "output_activation": Field(Optional(Choice(("Softmax", "LogSoftmax", "Sigmoid"), "activation")),
                               "activation after the last Linear (null for logits, which cross_entropy expects)",
                               None),
}, _build_mlp)
