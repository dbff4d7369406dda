"""Loss functions and loss modules with PyTorch's names, arguments and reductions.

``reduction`` is 'mean' (the default), 'sum' or 'none' (per-element losses); ``kl_div`` also takes 'batchmean'.
Shapes are checked up front and errors say which loss, which shapes, and how to fix the call.

Each loss module declares what the Trainer and the config need to know about it: ``target_kind`` ("index": class
indices; "binary": one 0/1 value per score; "float": values shaped like the output) and ``decision_threshold``
(the score above which a binary prediction is class 1). ``loss_target`` prepares a batch's labels accordingly.

Checks that read values (class indices in range, probabilities in [0, 1]) would make a CUDA device wait for the host
on every call, so they raise only on the CPU. On a CUDA device the bad rows are kept out of every gather and the
loss becomes NaN (the Trainer then stops, naming the step); the Trainer checks a batch's labels on the host, before
they are uploaded (``loss_target``), so it names the bad label there too. Each loss works on its input's device
(``backend.activate()``), whichever device is current.
"""
from __future__ import annotations

import functools
import math

import numpy

from .. import ops
from ..autograd.function import DeviceMismatchError
from ..autograd.tensor import Tensor
from ..kinds import Arguments, Bool, Choice, Float, Int, checked
from ..ops.activation import softplus
from ..ops.loss import binary_cross_entropy as _bce_node, pick_class, softmax_cross_entropy
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "KLDivLoss"]

_REDUCTIONS = ("mean", "sum", "none")


# ----- argument checks ------------------------------------------------------------------------------------------
# The kinds of the losses' arguments: the loss modules declare them (``arguments``), the functions check through them
# (``_check``, on every call: the Arguments are built once, here).
_REDUCTION = Choice(_REDUCTIONS, "reduction")
_KL_REDUCTION = Choice(_REDUCTIONS + ("batchmean",), "reduction")
_KINDS = {"label_smoothing": Float(ge=0, le=1), "beta": Float(ge=0), "delta": Float(gt=0), "ignore_index": Int()}
_FUNCTION_ARGUMENTS = Arguments(reduction=_REDUCTION, **_KINDS)
_KL_FUNCTION_ARGUMENTS = Arguments(reduction=_KL_REDUCTION)


def _check(loss, **args):
    """Raise ValueError naming ``loss`` for the first of ``args`` (reduction, label_smoothing, beta, delta) refused."""
    _FUNCTION_ARGUMENTS.check(loss, args)


def _check_tensor(loss, name, value):
    if not isinstance(value, Tensor):
        raise TypeError(f"{loss}: {name} must be a gpunet Tensor, got {type(value).__name__}; wrap it with gpunet.tensor(...)")


def _check_float(loss, name, t):
    if t.dtype.kind != "f":
        raise TypeError(f"{loss}: {name} must be floating point, got dtype {t.dtype}; convert it with .float()")


def _same_shape(loss, input, target, target_name="target"):
    _check_tensor(loss, "input", input)
    _check_tensor(loss, target_name, target)
    if input.shape != target.shape:
        raise ValueError(
            f"{loss}: input has shape {tuple(input.shape)} but {target_name} has shape {tuple(target.shape)}; they must "
            f"match (broadcasting them is almost always a bug): e.g. target.reshape({tuple(input.shape)}) or "
            f"input.squeeze(-1)"
        )


def _check_weight(loss, weight, num_classes, like, name="weight"):
    """The class-weight array of ``weight`` (None, or a 1-D float tensor of length C on ``like``'s device)."""
    if weight is None:
        return None
    _check_tensor(loss, name, weight)
    if weight.shape != (num_classes,):
        raise ValueError(f"{loss}: {name} must have shape ({num_classes},), one value per class; got {tuple(weight.shape)}")
    if weight.backend is not like.backend:
        raise DeviceMismatchError(f"{loss}: {name} is on {weight.device} but input is on {like.device}; move it with "
                                  f".to(device)")
    return weight.data.astype(like.dtype, copy=False)


def _reduce(loss, reduction):
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    return loss


def _check_class_scores(loss, input, target, reduction):
    """The checks cross_entropy and nll_loss share: tensors, ``reduction``, and a floating-point ``input`` with a
    class dimension, (C,), (N, C) or (N, C, d1, ...)."""
    _check_tensor(loss, "input", input)
    _check_tensor(loss, "target", target)
    _check(loss, reduction=reduction)
    _check_float(loss, "input", input)
    if input.ndim == 0:
        raise ValueError(f"{loss}: input must have a class dimension: shape (C,), (N, C) or (N, C, d1, ...), got ()")


def _on_input_device(loss_function):
    """``loss_function(input, ...)`` run on its input's device, whichever device is current."""

    @functools.wraps(loss_function)
    def on_device(input, *args, **kwargs):
        if not isinstance(input, Tensor) or not input.backend.activates_device:  # the CPU's activate() does nothing
            return loss_function(input, *args, **kwargs)
        with input.backend.activate():
            return loss_function(input, *args, **kwargs)

    return on_device


def check_class_indices(loss, labels, num_classes, ignore_index=None):
    """Raise IndexError naming ``loss`` when host integer ``labels`` hold a class index outside [0, num_classes)
    (``ignore_index`` entries excepted)."""
    labels = numpy.asarray(labels)
    if not labels.size or (labels.min() >= 0 and labels.max() < num_classes):  # the usual case, two reductions
        return
    outside = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        outside &= labels != ignore_index
    if outside.any():
        raise IndexError(
            f"{loss}: target holds class index {int(labels[outside].reshape(-1)[0])}, outside [0, {num_classes}) for "
            f"an input with {num_classes} classes (class dimension 1); labels must run from 0 to {num_classes - 1}"
        )


def _poisoned(loss, bad, reduction):
    """``loss`` made NaN where ``bad`` (a device mask shaped like the unreduced loss) holds, everywhere when reduced:
    how a value check shows on a CUDA device without waiting for it."""
    xp = loss.backend.xp
    flag = bad.reshape(loss.shape) if reduction == "none" else bad.any()
    return ops.add(loss, Tensor(xp.where(flag, numpy.nan, 0.0).astype(loss.dtype), loss.backend))


def _class_targets(loss, input, target, ignore_index):
    """Validate integer class-index ``target`` for ``input`` of shape (C,), (N, C) or (N, C, d1, ...); return the
    target to use and, on a CUDA device, the mask of out-of-range entries (made ``ignore_index`` in the target, so
    no gather reads outside the classes; the caller poisons the loss with ``_poisoned``), else None."""
    if target.dtype.kind not in "iu":
        raise TypeError(
            f"{loss}: target must hold integer class indices, got dtype {target.dtype}; convert it with .long(), or "
            f"for class probabilities use cross_entropy with a float target of the input's shape"
        )
    expected = input.shape[:1] + input.shape[2:] if input.ndim >= 2 else ()
    if target.shape != expected:
        layout = "(C,)" if input.ndim == 1 else "(N, C)" if input.ndim == 2 else "(N, C, d1, ...)"
        raise ValueError(
            f"{loss}: input of shape {tuple(input.shape)} {layout} needs a target of shape {expected} "
            f"(one class index per {'sample' if input.ndim < 3 else 'position'}), got {tuple(target.shape)}"
        )
    if target.backend is not input.backend:
        raise DeviceMismatchError(f"{loss}: target is on {target.device} but input is on {input.device}; move it "
                                  f"with .to(device)")
    num_classes = input.shape[1 if input.ndim >= 2 else 0]
    t = target.data
    if target.device.kind == "cpu":
        check_class_indices(loss, t, num_classes, ignore_index)
        return target, None
    bad = ((t < 0) | (t >= num_classes)) & (t != ignore_index)
    return Tensor(target.backend.xp.where(bad, ignore_index, t), target.backend), bad


def _as_rows(input, target):
    """``input`` as (M, C) rows with the class dimension last, and ``target`` flattened to (M,)."""
    if input.ndim == 1:
        return ops.unsqueeze(input, 0), target.data.reshape(1)
    if input.ndim > 2:
        input = ops.permute(input, (0,) + tuple(range(2, input.ndim)) + (1,))
        input = ops.reshape(input, (-1, input.shape[-1]))
    return input, target.data.reshape(-1)


def _weighted_mean_denominator(weight, target, keep, like):
    """What PyTorch's 'mean' divides by: the number of kept rows, or their summed class weights."""
    xp = like.backend.xp
    if weight is None:
        return Tensor(xp.asarray(keep.sum(), dtype=like.dtype), like.backend)
    return Tensor(xp.asarray((weight[xp.where(keep, target, 0)] * keep).sum()), like.backend)


# ----- classification -------------------------------------------------------------------------------------------
@_on_input_device
def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """Cross-entropy between logits ``input`` and ``target``, PyTorch's ``F.cross_entropy``.

    ``input`` is (C,), (N, C) or (N, C, d1, ...) raw scores (logits). ``target`` holds integer class indices of shape
    (), (N,) or (N, d1, ...) (entries equal to ``ignore_index`` are skipped), or class probabilities of the input's
    shape (a float tensor). ``weight`` (C,) rescales each class; ``label_smoothing`` in [0, 1] mixes the target with
    the uniform distribution. Computed stably from log-softmax, for logits of any magnitude. A class index out of
    range raises IndexError on the CPU and makes the loss NaN on a CUDA device (see the module docstring).
    """
    name = "cross_entropy"
    _check_class_scores(name, input, target, reduction)
    _check(name, label_smoothing=label_smoothing)
    class_dim = 1 if input.ndim >= 2 else 0
    num_classes = input.shape[class_dim]
    w = _check_weight(name, weight, num_classes, input)
    if target.dtype.kind == "f" and target.shape == input.shape:
        return _cross_entropy_probabilities(input, target, w, reduction, label_smoothing, class_dim)
    target, bad = _class_targets(name, input, target, ignore_index)
    rows, flat_target = _as_rows(input, target)
    loss = softmax_cross_entropy(rows, flat_target, ignore_index, w, reduction)
    if label_smoothing > 0:
        loss = ops.add(ops.mul(loss, 1.0 - label_smoothing),
                       ops.mul(_uniform_smoothing_term(rows, flat_target, w, ignore_index, reduction),
                               label_smoothing / num_classes))
    if reduction == "none":
        loss = ops.reshape(loss, target.shape)
    return loss if bad is None else _poisoned(loss, bad, reduction)


def _uniform_smoothing_term(rows, target, weight, ignore_index, reduction):
    """PyTorch's label-smoothing part: -sum_c weight_c log p_c per kept row, reduced like the NLL term."""
    log_probs = ops.log_softmax(rows, 1)
    if weight is not None:
        log_probs = ops.mul(log_probs, Tensor(weight, rows.backend))
    keep = target != ignore_index
    per_row = ops.mul(ops.neg(ops.sum(log_probs, 1)), Tensor(keep.astype(rows.dtype), rows.backend))
    if reduction == "mean":
        return ops.div(ops.sum(per_row), _weighted_mean_denominator(weight, target, keep, rows))
    return _reduce(per_row, reduction)


def _cross_entropy_probabilities(input, target, weight, reduction, label_smoothing, class_dim):
    num_classes = input.shape[class_dim]
    if label_smoothing > 0:
        target = ops.add(ops.mul(target, 1.0 - label_smoothing), label_smoothing / num_classes)
    terms = ops.mul(ops.log_softmax(input, class_dim), target)
    if weight is not None:
        shape = tuple(num_classes if i == class_dim else 1 for i in range(input.ndim))
        terms = ops.mul(terms, Tensor(weight.reshape(shape), input.backend))
    if reduction == "none":
        return ops.neg(ops.sum(terms, class_dim))
    total = ops.neg(ops.sum(terms))
    if reduction == "sum":
        return total
    return ops.div(total, float(input.data.size // num_classes))


@_on_input_device
def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):
    """Negative log-likelihood of log-probabilities ``input`` (C,), (N, C) or (N, C, d1, ...) at the integer class
    indices ``target``; 'mean' divides by the summed weights of the non-ignored targets, as PyTorch does."""
    name = "nll_loss"
    _check_class_scores(name, input, target, reduction)
    num_classes = input.shape[1 if input.ndim >= 2 else 0]
    w = _check_weight(name, weight, num_classes, input)
    target, bad = _class_targets(name, input, target, ignore_index)
    rows, flat_target = _as_rows(input, target)
    xp = input.backend.xp
    keep = flat_target != ignore_index
    safe_target = xp.where(keep, flat_target, 0)
    row_weight = keep.astype(input.dtype) if w is None else w[safe_target] * keep
    losses = ops.mul(ops.neg(pick_class(rows, safe_target)), Tensor(row_weight, input.backend))
    if reduction == "none":
        loss = ops.reshape(losses, target.shape)
    elif reduction == "sum":
        loss = ops.sum(losses)
    else:
        loss = ops.div(ops.sum(losses), _weighted_mean_denominator(w, flat_target, keep, input))
    return loss if bad is None else _poisoned(loss, bad, reduction)


@_on_input_device
def binary_cross_entropy(input, target, weight=None, reduction="mean"):
    """Binary cross-entropy of probabilities ``input`` in [0, 1] against ``target`` of the same shape; each log is
    clamped to >= -100 as in PyTorch, so the loss stays finite at 0 and 1. ``weight`` broadcasts to the input. An
    input outside [0, 1] raises ValueError on the CPU and makes the loss NaN on a CUDA device."""
    name = "binary_cross_entropy"
    _same_shape(name, input, target)
    _check(name, reduction=reduction)
    _check_float(name, "input", input)
    _check_float(name, "target", target)
    x = input.data
    outside = ~((x >= 0) & (x <= 1))
    if input.device.kind == "cpu" and outside.any():
        raise ValueError(
            f"{name}: all elements of input must be probabilities in [0, 1]; got values outside (or NaN). Apply "
            f"sigmoid first, or pass the raw scores to binary_cross_entropy_with_logits (more stable)"
        )
    loss = _bce_node(input, target)
    if weight is not None:
        loss = ops.mul(loss, _broadcast_weight(name, "weight", weight, input))
    loss = _reduce(loss, reduction)
    return loss if input.device.kind == "cpu" else _poisoned(loss, outside, reduction)


def _broadcast_weight(loss, name, weight, input):
    _check_tensor(loss, name, weight)
    try:
        input.backend.xp.broadcast_shapes(weight.shape, input.shape)
    except ValueError:
        raise ValueError(f"{loss}: {name} of shape {tuple(weight.shape)} does not broadcast to the input's shape "
                         f"{tuple(input.shape)}") from None
    return weight


@_on_input_device
def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean", pos_weight=None):
    """Binary cross-entropy of ``sigmoid(input)`` against ``target``, computed from the logits in the stable form
    ``(1 - y) x + (1 + (pos_weight - 1) y) softplus(-x)``. ``pos_weight`` (broadcast along the last dimension, one per
    class) weighs the positive examples; ``weight`` broadcasts to the input."""
    name = "binary_cross_entropy_with_logits"
    _same_shape(name, input, target)
    _check(name, reduction=reduction)
    _check_float(name, "input", input)
    _check_float(name, "target", target)
    soft = softplus(ops.neg(input), 1.0, math.inf)
    if pos_weight is not None:
        pos_weight = _broadcast_weight(name, "pos_weight", pos_weight, input)
        soft = ops.mul(soft, ops.add(ops.mul(ops.sub(pos_weight, 1.0), target), 1.0))
    loss = ops.add(ops.mul(ops.sub(1.0, target), input), soft)
    if weight is not None:
        loss = ops.mul(loss, _broadcast_weight(name, "weight", weight, input))
    return _reduce(loss, reduction)


@_on_input_device
def kl_div(input, target, reduction="mean", log_target=False):
    """Kullback-Leibler divergence ``target * (log(target) - input)`` for log-probabilities ``input`` (PyTorch's
    argument order). 'batchmean' divides the sum by the batch size (the true KL per sample); 'mean' divides by the
    number of elements. With ``log_target`` the target is given as log-probabilities too."""
    name = "kl_div"
    _same_shape(name, input, target)
    _KL_FUNCTION_ARGUMENTS.check(name, {"reduction": reduction})
    _check_float(name, "input", input)
    _check_float(name, "target", target)
    if log_target:
        loss = ops.mul(ops.exp(target), ops.sub(target, input))
    else:
        positive = target.data > 0
        safe = ops.where(positive, target, 1.0)
        loss = ops.sub(ops.where(positive, ops.mul(target, ops.log(safe)), 0.0), ops.mul(target, input))
    if reduction == "batchmean":
        return ops.div(ops.sum(loss), float(input.shape[0] if input.ndim else 1))
    return _reduce(loss, reduction)


# ----- regression -----------------------------------------------------------------------------------------------
@_on_input_device
def mse_loss(input, target, reduction="mean"):
    """Squared error ``(input - target)^2``, averaged (or summed, or per element)."""
    _same_shape("mse_loss", input, target)
    _check("mse_loss", reduction=reduction)
    diff = ops.sub(input, target)
    return _reduce(ops.mul(diff, diff), reduction)


@_on_input_device
def l1_loss(input, target, reduction="mean"):
    """Absolute error ``|input - target|``, averaged (or summed, or per element)."""
    _same_shape("l1_loss", input, target)
    _check("l1_loss", reduction=reduction)
    return _reduce(ops.abs(ops.sub(input, target)), reduction)


def _piecewise_quadratic(input, target, width, quadratic_scale, linear_scale):
    """``quadratic_scale * d^2 / 2`` where |d| < width, else ``linear_scale * (|d| - width / 2)``."""
    diff = ops.sub(input, target)
    size = ops.abs(diff)
    if width == 0:
        return ops.mul(size, linear_scale)
    near = size.data < width
    quadratic = ops.mul(ops.mul(diff, diff), 0.5 * quadratic_scale)
    linear = ops.mul(ops.sub(size, 0.5 * width), linear_scale)
    return ops.where(near, quadratic, linear)


@_on_input_device
def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """``0.5 d^2 / beta`` where |d| < beta, else ``|d| - beta / 2`` (d = input - target); L1 when beta = 0."""
    _same_shape("smooth_l1_loss", input, target)
    _check("smooth_l1_loss", reduction=reduction, beta=beta)
    return _reduce(_piecewise_quadratic(input, target, beta, 1.0 / beta if beta else 0.0, 1.0), reduction)


@_on_input_device
def huber_loss(input, target, reduction="mean", delta=1.0):
    """``0.5 d^2`` where |d| < delta, else ``delta (|d| - delta / 2)`` (d = input - target)."""
    _same_shape("huber_loss", input, target)
    _check("huber_loss", reduction=reduction, delta=delta)
    return _reduce(_piecewise_quadratic(input, target, delta, 1.0, delta), reduction)


# ----- modules --------------------------------------------------------------------------------------------------
class _Loss(Module):
    target_kind = "float"  # "index" (class indices), "binary" (0/1 per score) or "float" (shaped like the output)
    decision_threshold = 0.5  # a binary score above this predicts class 1
    probability_targets = False  # True: also takes class probabilities shaped like the output (MixUp's labels)

    arguments = Arguments(reduction=_REDUCTION)

    @checked
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """Module form of :func:`cross_entropy` (logits and class indices or class probabilities)."""

    target_kind = "index"
    probability_targets = True

    arguments = Arguments(ignore_index=_KINDS["ignore_index"], reduction=_REDUCTION,
                          label_smoothing=_KINDS["label_smoothing"])

    @checked
    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return cross_entropy(input, target, self.weight, self.ignore_index, self.reduction, self.label_smoothing)


class NLLLoss(_Loss):
    """Module form of :func:`nll_loss` (log-probabilities and class indices)."""

    target_kind = "index"

    arguments = Arguments(ignore_index=_KINDS["ignore_index"], reduction=_REDUCTION)

    @checked
    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return nll_loss(input, target, self.weight, self.ignore_index, self.reduction)


class MSELoss(_Loss):
    """Module form of :func:`mse_loss`."""

    def forward(self, input, target):
        return mse_loss(input, target, self.reduction)


class L1Loss(_Loss):
    """Module form of :func:`l1_loss`."""

    def forward(self, input, target):
        return l1_loss(input, target, self.reduction)


class SmoothL1Loss(_Loss):
    """Module form of :func:`smooth_l1_loss`."""

    arguments = Arguments(reduction=_REDUCTION, beta=_KINDS["beta"])

    @checked
    def __init__(self, reduction="mean", beta=1.0):
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input, target):
        return smooth_l1_loss(input, target, self.reduction, self.beta)


class HuberLoss(_Loss):
    """Module form of :func:`huber_loss`."""

    arguments = Arguments(reduction=_REDUCTION, delta=_KINDS["delta"])

    @checked
    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input, target):
        return huber_loss(input, target, self.reduction, self.delta)


class BCELoss(_Loss):
    """Module form of :func:`binary_cross_entropy` (probabilities)."""

    target_kind = "binary"

    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)

    def forward(self, input, target):
        return binary_cross_entropy(input, target, self.weight, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Module form of :func:`binary_cross_entropy_with_logits` (logits; the stable choice)."""

    target_kind = "binary"
    decision_threshold = 0.0  # logit 0 is probability 0.5

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(input, target, self.weight, self.reduction, self.pos_weight)


class KLDivLoss(_Loss):
    """Module form of :func:`kl_div`; use reduction='batchmean' for the KL divergence per sample."""

    arguments = Arguments(reduction=_KL_REDUCTION, log_target=Bool())

    @checked
    def __init__(self, reduction="mean", log_target=False):
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return kl_div(input, target, self.reduction, self.log_target)


def loss_target(loss_fn, target, output: Tensor) -> Tensor:
    """The batch's ``target`` (a Tensor, or host labels from a loader) as ``loss_fn`` takes it, moved to the output's
    device: class indices unchanged for an "index" loss (host ones checked against the output's classes on the host
    before they are uploaded, so no check waits for a CUDA device); otherwise in the output's dtype and, when the
    sizes agree, reshaped to the output's shape ((N,) labels for (N, 1) scores). A loss that declares no
    ``target_kind`` (a user's function) gets float targets."""
    index = getattr(loss_fn, "target_kind", "float") == "index"
    if isinstance(target, Tensor) and target.device != output.device:
        target = target.numpy() if target.device.kind == "cpu" else target.to(output.device)
    if not isinstance(target, Tensor):
        labels = numpy.asarray(target)
        if index and labels.dtype.kind in "iu" and output.ndim >= 1:
            check_class_indices(type(loss_fn).__name__, labels, output.shape[1 if output.ndim >= 2 else 0],
                                getattr(loss_fn, "ignore_index", None))
        target = ops.tensor(labels, device=output.device)
    if index:
        return target
    if target.dtype != output.dtype:
        target = target.to(dtype=output.dtype)
    if target.shape != output.shape and target.numel() == output.numel():
        target = target.reshape(*output.shape)
    return target
