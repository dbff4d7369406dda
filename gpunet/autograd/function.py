"""The graph node: a differentiable operation with a forward on arrays and a backward on tensors.

A subclass defines ``forward(self, backend, *arrays)`` returning an array (or a tuple of arrays) and
``backward(self, *grad_outputs)`` returning one Tensor (or None) per input, built from differentiable ops so
that derivatives of any order work. ``self.inputs`` are the input tensors; ``self.output(i)`` rebuilds output
``i`` as a tensor of the graph.
"""
from __future__ import annotations

import itertools
import re

from .grad_mode import state as _grad_state


class DeviceMismatchError(RuntimeError):
    """An operation was given tensors that live on two different devices."""


_SEQUENCE = itertools.count()  # creation order of the recorded nodes: backward's deterministic tie-break


class Function:
    output_backend = None  # set by ops whose output lives on another device than their input (transfer)
    released = False  # set once a backward pass without retain_graph has run this node

    @classmethod
    def op_name(cls) -> str:
        """The op's name as errors print it: ``SoftmaxCrossEntropy`` -> ``softmax_cross_entropy``."""
        return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cls.__name__).lower()

    def forward(self, backend, *arrays):
        raise NotImplementedError

    def backward(self, *grad_outputs):
        raise NotImplementedError

    def apply(self, *inputs):
        """Run forward on the inputs' arrays; record this node when a gradient may be needed."""
        # Every op of every training step passes here, so one plain loop over the inputs gathers the arrays, checks
        # the device and collects what the node records: on small arrays, separate comprehensions (a function
        # call each in Python 3.11) cost about as much as the op's NumPy call.
        backend = inputs[0].backend
        arrays, needs, generation = [], [], 0
        for t in inputs:
            if t.backend is not backend:
                raise DeviceMismatchError(
                    f"{self.op_name()}: tensors on two devices, {backend.device} and {t.backend.device}; "
                    f"move them to one device with .to(device)"
                )
            arrays.append(t.data)
            needs.append(t.requires_grad)
            if t.generation > generation:
                generation = t.generation
        if backend.activates_device:
            with backend.activate():  # on a CUDA device N, CuPy allocates and launches on device N
                raw = self.forward(backend, *arrays)
        else:  # the CPU's activate() does nothing, and entering even a null context costs ~1 us, a small op's time
            raw = self.forward(backend, *arrays)
        if self.output_backend is not None:
            backend = self.output_backend
        if not (_grad_state.enabled and any(needs)):
            if type(raw) is tuple:
                return tuple(Tensor(a, backend) for a in raw)
            return Tensor(raw, backend)
        self.inputs = inputs
        self.needs_input_grad = tuple(needs)
        self.generation = generation
        self.sequence = next(_SEQUENCE)
        self.outputs_data = raw
        self.backend = backend
        if type(raw) is tuple:
            return tuple(Tensor(a, backend, True, self, i) for i, a in enumerate(raw))
        return Tensor(raw, backend, True, self, 0)

    def output(self, index: int = 0):
        """Output ``index`` of this node as a tensor of the graph (for backward formulas that use outputs)."""
        raw = self.outputs_data
        data = raw[index] if type(raw) is tuple else raw
        return Tensor(data, self.backend, True, self, index)


from .tensor import Tensor  # noqa: E402  (Tensor needs Function's module loaded first)
