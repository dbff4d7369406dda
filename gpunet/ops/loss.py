"""Graph nodes of the losses whose forward or gradient needs care: fused softmax cross-entropy, the class pick
of NLL, and binary cross-entropy on probabilities. Backward formulas use differentiable ops, so second
derivatives work. The PyTorch-style loss functions built on them live in ``gpunet.nn.losses``.
"""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.grad_mode import state as _grad_state
from ..autograd.tensor import Tensor
from .arithmetic import div, mul, sub
from .elementwise import clamp, log
from .reduction import softmax
from .shape import reshape

_BCE_EPSILON = 9.99999996004197e-13  # PyTorch's floor on x (1 - x) in the BCE gradient: 1e-12 rounded to float32


def _onehot(backend, target, num_classes, dtype):
    xp = backend.xp
    return (target[:, None] == xp.arange(num_classes)[None, :]).astype(dtype)


class SoftmaxCrossEntropy(Function):
    """Cross-entropy of logits (M, C) against class indices (M,), weighted and reduced, as one node.

    Forward is the backend's fused ``softmax_cross_entropy`` kernel. The gradient is
    ``(softmax(logits) - onehot(target)) * row_scale * upstream``, where row_scale is the class weight of the row's
    target (0 for ignored rows) divided by the mean's denominator.
    """

    def __init__(self, target, ignore_index, weight, reduction):
        self.target, self.ignore_index, self.weight, self.reduction = target, ignore_index, weight, reduction

    def forward(self, backend, logits):
        xp = backend.xp
        losses, self.log_probs = backend.softmax_cross_entropy(logits, self.target, self.ignore_index)
        keep = self.target != self.ignore_index
        if self.weight is None:
            row_weight = keep.astype(logits.dtype)
        else:
            row_weight = self.weight[xp.where(keep, self.target, 0)] * keep
            losses = losses * row_weight
        if self.reduction == "none":
            self.row_scale = row_weight
            return losses
        if self.reduction == "sum":
            self.row_scale = row_weight
            return xp.asarray(losses.sum())
        denominator = row_weight.sum()
        self.row_scale = row_weight / denominator
        return xp.asarray(losses.sum() / denominator)

    def backward(self, gy):
        logits = self.inputs[0]
        backend = logits.backend
        rows, classes = logits.shape
        if not _grad_state.enabled:  # first-order gradient: the backend's fused kernel, one pass
            return Tensor(backend.softmax_cross_entropy_backward(self.log_probs, self.target,
                                                                 self.row_scale * gy.data, self.ignore_index), backend)
        safe_target = backend.xp.where(self.target != self.ignore_index, self.target, 0)
        scale = mul(gy, Tensor(self.row_scale, backend))
        onehot = Tensor(_onehot(backend, safe_target, classes, logits.dtype), backend)
        return mul(sub(softmax(logits, 1), onehot), reshape(scale, (rows, 1)))


def softmax_cross_entropy(logits, target, ignore_index=-100, weight=None, reduction="mean"):
    """Cross-entropy of ``logits`` (M, C) against integer ``target`` (M,) (backend arrays ``target``/``weight``);
    ``reduction`` 'mean' divides by the summed weights of non-ignored rows, as PyTorch does."""
    return SoftmaxCrossEntropy(target, ignore_index, weight, reduction).apply(logits)


class ClassPick(Function):
    """``x[i, target[i]]`` for x of shape (M, C): the gather of NLL loss; its adjoint scatters into a one-hot."""

    def __init__(self, target):
        self.target = target

    def forward(self, backend, x):
        return backend.xp.take_along_axis(x, self.target[:, None], axis=1)[:, 0]

    def backward(self, gy):
        x = self.inputs[0]
        onehot = Tensor(_onehot(x.backend, self.target, x.shape[1], x.dtype), x.backend)
        return mul(onehot, reshape(gy, (x.shape[0], 1)))


def pick_class(x, target):
    """Entries ``x[i, target[i]]`` of a (M, C) tensor, for an integer backend array ``target`` in [0, C)."""
    return ClassPick(target).apply(x)


class BinaryCrossEntropy(Function):
    """Element-wise ``-(y log x + (1 - y) log(1 - x))`` for probabilities x, with each log clamped to >= -100 and
    PyTorch's gradient ``(x - y) / max(x (1 - x), 1e-12)`` for x (and ``log(1 - x) - log(x)`` for y)."""

    def forward(self, backend, x, y):
        xp = backend.xp
        # log(0) is -inf, clamped to -100; the inner where keeps NumPy from warning about it
        log_x = xp.where(x > 0, xp.maximum(xp.log(xp.where(x > 0, x, 1)), -100), -100)
        log_1mx = xp.where(x < 1, xp.maximum(xp.log1p(-xp.where(x < 1, x, 0)), -100), -100)
        return -(y * log_x + (1 - y) * log_1mx)

    def backward(self, gy):
        x, y = self.inputs
        gx = gt = None
        if self.needs_input_grad[0]:
            gx = div(mul(gy, sub(x, y)), clamp(mul(x, sub(1.0, x)), min=_BCE_EPSILON))
        if self.needs_input_grad[1]:
            gt = mul(gy, sub(log(sub(1.0, x)), log(x)))
        return gx, gt


def binary_cross_entropy(x, y):
    """Unreduced binary cross-entropy of probabilities ``x`` against targets ``y`` of the same shape."""
    return BinaryCrossEntropy().apply(x, y)

