"""Rosenblatt's perceptron trained by the perceptron rule, not by gradient descent (seeds 001 and 002).

Seed 002's algorithm for several output classes: the net input of output j is y_in_j = b_j + sum_i x_i w_ij; the
output is a step of it; when an output differs from its target the weights and bias of that output move, and
training stops after an epoch in which nothing changed (the rule's convergence theorem says this happens for
linearly separable data; for XOR it never does, and ``fit`` reports so).

Two kinds of units:

- ``bipolar`` (targets -1/+1): seed 002's activation, 1 where y_in > theta, -1 where y_in < -theta and 0 (undecided)
  in between; the update is w_ij += lr t_j x_i, b_j += lr t_j when y_j != t_j (Fausett's rule).
- ``binary`` (targets 0/1): 1 where y_in > theta, else 0; the update is w_ij += lr (t_j - y_j) x_i,
  b_j += lr (t_j - y_j). (Seed 002's lr t_j x_i with a 0 target would never lower a weight, so binary targets
  use the error t - y, Rosenblatt's form.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy

from ..autograd.grad_mode import no_grad
from ..nn import Module, init
from ..nn.linear import _empty_parameter
from ..autograd.tensor import Tensor
from ..ops import cast, linear, sum, tensor

_TARGETS = {"binary": (0.0, 1.0), "bipolar": (-1.0, 1.0)}


@dataclass
class PerceptronFit:
    """What ``Perceptron.fit`` did: ``converged`` (an epoch changed nothing), the ``epochs`` run and the number of
    samples with a wrong output in each (``mistakes``)."""

    converged: bool
    epochs: int
    mistakes: list = field(default_factory=list)

    def __str__(self) -> str:
        if self.converged:
            return f"converged after {self.epochs} epochs (the last changed nothing)"
        return (f"did not converge in {self.epochs} epochs: {self.mistakes[-1]} samples still had a wrong output in "
                f"the last one; the perceptron rule only converges on linearly separable data (XOR is not)")


class Perceptron(Module):
    """A single layer of ``out_features`` threshold units on ``in_features`` inputs.

    ``weight`` (out_features, in_features) and ``bias`` (out_features,) start at zero (seed 002's "initialise
    conveniently"; the rule does not need random weights). ``kind`` is ``"binary"`` or ``"bipolar"``, ``threshold``
    the theta of the step. ``forward(x)`` gives the step outputs.
    """

    def __init__(self, in_features: int, out_features: int = 1, kind: str = "bipolar", threshold: float = 0.0,
                 device=None, dtype=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Perceptron: {name} must be a positive integer, got {value!r}")
        if kind not in _TARGETS:
            raise ValueError(f"Perceptron: kind must be 'binary' (0/1 targets) or 'bipolar' (-1/+1), got {kind!r}")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not threshold >= 0:
            raise ValueError(f"Perceptron: threshold (theta) must be a number >= 0, got {threshold!r}")
        self.in_features, self.out_features = in_features, out_features
        self.kind, self.threshold = kind, float(threshold)
        self.weight = _empty_parameter((out_features, in_features), device, dtype)
        self.bias = _empty_parameter((out_features,), device, dtype)
        self.weight.requires_grad = self.bias.requires_grad = False  # the rule, not gradients, trains them
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.zeros_(self.weight)
        init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, kind={self.kind!r}, "
                f"threshold={self.threshold}")

    def _inputs(self, x):
        if not isinstance(x, Tensor):
            return tensor(numpy.asarray(x), dtype=self.weight.dtype, device=self.weight.device)
        return cast(x, self.weight.dtype)

    def forward(self, x):
        net = linear(self._inputs(x), self.weight, self.bias)
        above = cast(net > self.threshold, net.dtype)
        if self.kind == "binary":
            return above
        return above - cast(net < -self.threshold, net.dtype)

    def check_targets(self, targets, where_: str = "Perceptron"):
        """``targets`` as a host array of shape (n, out_features) with the kind's two values, or a ValueError."""
        t = numpy.asarray(targets.numpy() if hasattr(targets, "numpy") else targets, dtype=numpy.float64)
        if t.ndim == 1 and self.out_features == 1:
            t = t[:, None]
        low, high = _TARGETS[self.kind]
        if t.ndim != 2 or t.shape[1] != self.out_features or not numpy.isin(t, (low, high)).all():
            raise ValueError(f"{where_}: {self.kind} targets must be an array of shape (samples, {self.out_features}) "
                             f"holding only {low:g} and {high:g}, got shape {t.shape} with values "
                             f"{numpy.unique(t)[:6].tolist()}")
        return t

    def _batch(self, x, targets, where_):
        """Inputs as a Tensor and targets as a host array, checked against each other."""
        t, x = self.check_targets(targets, where_), self._inputs(x)
        if x.ndim != 2 or x.shape[1] != self.in_features or x.shape[0] != t.shape[0]:
            raise ValueError(f"{where_}: inputs must have shape ({t.shape[0]}, {self.in_features}) "
                             f"(one row per target), got {tuple(x.shape)}")
        return x, t

    def rule_gradient(self, x, targets):
        """Set ``weight.grad`` and ``bias.grad`` to minus the rule's update (without lr) summed over the batch, so an
        SGD step with lr = alpha applies the rule; returns how many samples had a wrong output (a Tensor).

        One sample per call is seed 002's online rule; a larger batch sums its samples' updates (batch perceptron).
        """
        x, t = self._batch(x, targets, "Perceptron.rule_gradient")
        t = tensor(t, dtype=self.weight.dtype, device=self.weight.device)
        with no_grad():
            y = self(x)
            miss = cast(y != t, x.dtype)                                  # (batch, out_features)
            step = t - y if self.kind == "binary" else t * miss           # each output's update, over lr
            self.weight.grad = -(step.T @ x)
            self.bias.grad = -sum(step, dim=0)
            return sum(cast(sum(miss, dim=1) > 0, x.dtype))

    def train_epoch(self, x, targets, lr: float = 1.0) -> int:
        """One pass of the online rule over the samples in order; returns how many had a wrong output."""
        x, t = self._batch(x, targets, "Perceptron.train_epoch")
        wrong = 0
        for i in range(len(t)):
            wrong = self.rule_gradient(x[i:i + 1], t[i:i + 1]) + wrong
            with no_grad():
                for p in (self.weight, self.bias):
                    p.data[...] = (p - p.grad * lr).data
        return int(float(wrong))

    def fit(self, x, targets, lr: float = 1.0, max_epochs: int = 100) -> PerceptronFit:
        """Epochs of the rule until one changes nothing (``converged``) or ``max_epochs`` have run."""
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
            raise ValueError(f"Perceptron.fit: lr (the learning rate alpha) must be a number > 0, got {lr!r}")
        if isinstance(max_epochs, bool) or not isinstance(max_epochs, int) or max_epochs < 1:
            raise ValueError(f"Perceptron.fit: max_epochs must be an integer >= 1, got {max_epochs!r}")
        result = PerceptronFit(converged=False, epochs=0)
        while result.epochs < max_epochs and not result.converged:
            result.mistakes.append(self.train_epoch(x, targets, lr))
            result.epochs += 1
            result.converged = result.mistakes[-1] == 0
        return result


__all__ = ["Perceptron", "PerceptronFit"]
