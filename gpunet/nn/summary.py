"""Keras-style model summary (``Module.summary``): one row per layer with its output shape, parameter count and the
implementation that runs it (NumPy on the CPU; gpunet's CUDA kernels or CuPy on a GPU), plus trainable and
non-trainable totals.

The shapes come from one forward pass on zeros in evaluation mode, without gradients; every module call is
recorded while it runs, so any model (not only ``Sequential``) is summarised. As in Keras, a layer's count includes
its floating-point buffers (BatchNorm's running mean and variance), which are non-trainable; integer counters
such as ``num_batches_tracked`` are not weights and are not counted.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ..autograd import Tensor, no_grad
from ..backend.registry import observe
from ..random import get_rng_state, set_rng_state
from ..ops import zeros
from .module import Module

__all__ = ["LayerRow", "ModelSummary", "summary"]


@dataclass(frozen=True)
class LayerRow:
    name: str  # qualified name, e.g. "0" or "encoder.fc1"
    type: str
    output_shape: str
    params: int  # parameters and floating-point buffers
    implementation: str


@dataclass(frozen=True)
class ModelSummary:
    model_type: str
    input_shape: tuple
    rows: tuple
    trainable: int
    non_trainable: int
    device: str

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    def to_dict(self) -> dict:
        return {"model": self.model_type, "input_shape": list(self.input_shape), "device": self.device,
                "layers": [row.__dict__.copy() for row in self.rows], "total_params": self.total,
                "trainable_params": self.trainable, "non_trainable_params": self.non_trainable}

    def __str__(self) -> str:
        """The table as Keras prints it: one line per layer, then the totals."""
        header = ("Layer (type)", "Output shape", "Param #", "Implementation")
        cells = [(f"{r.name} ({r.type})", r.output_shape, f"{r.params:,}", r.implementation) for r in self.rows]
        widths = [max(len(row[i]) for row in [header, *cells]) for i in range(4)]
        line = "  ".join("{:<%d}" % w for w in widths[:2]) + "  {:>%d}  {:<%d}" % (widths[2], widths[3])
        rule = "=" * (sum(widths) + 6)
        body = [line.format(*c).rstrip() for c in cells]
        return "\n".join([
            f'Model: "{self.model_type}"  input {_shape(self.input_shape)}  device {self.device}', rule,
            line.format(*header).rstrip(), "-" * len(rule), *body, rule,
            f"Total params: {self.total:,}", f"Trainable params: {self.trainable:,}",
            f"Non-trainable params: {self.non_trainable:,}",
        ])


def _shape(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _output_shape(output, batch_size) -> str:
    if isinstance(output, Tensor):
        return _shape((batch_size, *output.shape[1:]))
    if isinstance(output, (tuple, list)):
        return "[" + ", ".join(_output_shape(o, batch_size) for o in output) + "]"
    return type(output).__name__


@contextlib.contextmanager
def _recording_calls(module_class, calls: dict):
    """Record the first output of every module call while the block runs."""
    original = module_class.__call__

    def recording_call(self, *args, **kwargs):
        output = original(self, *args, **kwargs)
        calls.setdefault(id(self), output)
        return output

    module_class.__call__ = recording_call
    try:
        yield
    finally:
        module_class.__call__ = original


class _KernelsByModule(list):
    """An ``observe`` sink that files each fused-kernel call under the innermost module running (``stack[-1]``)."""

    def __init__(self):
        super().__init__()
        self.stack, self.found = [], {}

    def append(self, name):
        if self.stack:
            self.found.setdefault(self.stack[-1], []).append(name)


def _forward_kernels(model, input_shape, dtype, device) -> dict:
    """``id(module) -> fused kernels its own forward calls`` (not its children's), seen in one training-mode
    forward pass on a zero batch of 2 without gradients; buffers (running statistics) and the random state are
    restored afterwards."""
    sink = _KernelsByModule()
    original = Module.__call__

    def observed_call(self, *args, **kwargs):
        sink.stack.append(id(self))
        try:
            return original(self, *args, **kwargs)
        finally:
            sink.stack.pop()

    buffers = [(b, b.data.copy()) for b in model.buffers()]
    state, was_training = get_rng_state(), model.training
    Module.__call__ = observed_call
    try:
        with no_grad(), observe(sink):
            model.train()(zeros(2, *input_shape, dtype=dtype, device=device))
    finally:
        Module.__call__ = original
        model.train(was_training)
        set_rng_state(state)
        for buffer, saved in buffers:
            buffer.data[...] = saved
    return sink.found


def _implementation(kernels, backend) -> str:
    """"NumPy" on the CPU; on a CUDA backend the first fused kernel the layer's forward calls and where it runs (a
    kernels/*.cu file or the CuPy reference), or the backend's own description for layers made of plain array ops."""
    if backend.name == "numpy" or not kernels:
        return backend.implementation
    where = backend.kernel_implementation(kernels[0])
    if where.startswith("kernels/"):
        return f"CUDA kernel: {kernels[0]} ({where})"
    return f"CuPy reference: {kernels[0]}"


def _count(tensors) -> int:
    return sum(t.numel() for t in tensors)


def _weights(module, recurse):
    """``(parameters, floating-point buffers)`` of ``module``, each tensor once."""
    buffers = [b for b in module.buffers(recurse=recurse) if b.dtype.kind in "fc"]
    return list(module.parameters(recurse=recurse)), buffers


def summary(model, input_shape, batch_size=None, dtype="float32", device=None) -> ModelSummary:
    """The summary of ``model`` for inputs of ``input_shape`` (one sample, without the batch axis).

    ``batch_size``: the batch of the forward pass and the first axis of the output shapes (default: a batch of one,
    shown as ``None``). ``dtype``: of the zeros fed in (``"int64"`` for models that start with an Embedding).
    ``device``: where to run the pass (default: the model's parameters' device, or gpunet's current device).
    """
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    input_shape = tuple(input_shape)
    if not input_shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in input_shape):
        raise ValueError(f"summary: input_shape must be positive integers (one sample, no batch axis), "
                         f"got {input_shape!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1):
        raise ValueError(f"summary: batch_size must be a positive integer or None (shown as None), got {batch_size!r}")
    params, buffers = _weights(model, recurse=True)
    if device is None and (params or buffers):
        device = (params or buffers)[0].device
    x = zeros(batch_size or 1, *input_shape, dtype=dtype, device=device)
    calls: dict = {}
    was_training = model.training
    model.eval()
    try:
        with no_grad(), _recording_calls(Module, calls):
            model(x)
    except Exception as exc:
        raise ValueError(f"summary: a forward pass of {type(model).__name__} on an input of shape "
                         f"{_shape((batch_size, *input_shape))} failed: {type(exc).__name__}: {exc}") from exc
    finally:
        model.train(was_training)
    kernels = {} if x.backend.name == "numpy" else _forward_kernels(model, input_shape, dtype, x.device)
    rows = []
    for name, module in model.named_modules():
        own = _weights(module, recurse=False)
        leaf = not any(True for _ in module.children())
        if leaf or any(own):
            shape = _output_shape(calls[id(module)], batch_size) if id(module) in calls else "(not called)"
            rows.append(LayerRow(name or type(module).__name__, type(module).__name__, shape,
                                 _count(own[0] + own[1]), _implementation(kernels.get(id(module)), x.backend)))
    trainable = _count(p for p in params if p.requires_grad)
    return ModelSummary(type(model).__name__, input_shape, tuple(rows), trainable,
                        _count(params) + _count(buffers) - trainable, str(x.device))
