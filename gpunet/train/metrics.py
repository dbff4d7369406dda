"""Evaluation metrics on host NumPy arrays, and ``EpochCollector``, which gathers a pass's losses and outputs from
any device: classification (accuracy, top-k, macro precision/recall/F1, confusion matrix), regression (MSE, RMSE,
MAE) and language models (perplexity and bits per character, from the mean negative log-likelihood).

Classification metrics take ``y_true`` (integer labels, shape (N,)) and ``y_pred``: integer labels (N,), class
scores (N, C) whose argmax is the prediction (logits or probabilities alike), or one float score per sample
(N,) / (N, 1) for a binary problem, thresholded at ``threshold`` (0.5 for probabilities; 0 for logits).
"""
from __future__ import annotations

import math
import re

import numpy as np

from ..autograd.tensor import Tensor

__all__ = [
    "METRIC_NAMES", "EpochCollector", "accuracy", "bits_per_character", "confusion_matrix", "f1_score", "get_metric",
    "mae", "mse", "perplexity", "precision_recall_f1", "precision_score", "recall_score", "rmse", "to_labels", "top_k_accuracy",
]


def _labels_1d(y_true, what: str = "y_true") -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"{what} must be integer class labels of shape (N,), got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            raise ValueError(f"{what} must hold whole class labels, got non-integer values")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"{what} must be integer class labels, got dtype {y.dtype}")
    return y.astype(np.int64)


def to_labels(y_pred, threshold: float = 0.5) -> np.ndarray:
    """Predicted labels from integer labels (N,), class scores (N, C) (argmax) or float binary scores (N,)/(N, 1)
    (1 where the score is > threshold)."""
    p = np.asarray(y_pred)
    if p.ndim == 2 and p.shape[1] > 1:
        return np.argmax(p, axis=1).astype(np.int64)
    if p.ndim == 2:
        p = p[:, 0]
    if p.ndim != 1:
        raise ValueError(f"predictions must have shape (N,), (N, 1) or (N, classes), got shape {p.shape}")
    if p.dtype.kind == "f":
        return (p > threshold).astype(np.int64)
    return _labels_1d(p, "predicted labels")


def _pair(y_true, y_pred, threshold):
    t = _labels_1d(y_true)
    p = to_labels(y_pred, threshold)
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} samples but y_pred has {len(p)}")
    if len(t) == 0:
        raise ValueError("metrics need at least one sample, got none")
    return t, p


def accuracy(y_true, y_pred, threshold: float = 0.5) -> float:
    """Fraction of samples whose predicted label equals the true one."""
    t, p = _pair(y_true, y_pred, threshold)
    return float(np.mean(t == p))


def top_k_accuracy(y_true, scores, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest scores (ties broken by lower class index)."""
    t = _labels_1d(y_true)
    s = np.asarray(scores)
    if s.ndim != 2 or len(s) != len(t):
        raise ValueError(f"top_k_accuracy needs scores of shape ({len(t)}, classes), got shape {s.shape}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"top_k_accuracy: k must be a positive integer, got {k!r}")
    if k >= s.shape[1]:
        return 1.0
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == t[:, None], axis=1)))


def confusion_matrix(y_true, y_pred, num_classes: int | None = None, threshold: float = 0.5) -> np.ndarray:
    """``C[i, j]``: number of samples of true class i predicted as class j (int64, num_classes x num_classes)."""
    t, p = _pair(y_true, y_pred, threshold)
    if t.min() < 0 or p.min() < 0:
        raise ValueError("class labels must be >= 0")
    n = int(max(t.max(), p.max())) + 1 if num_classes is None else int(num_classes)
    if max(t.max(), p.max()) >= n:
        raise ValueError(f"a label ({int(max(t.max(), p.max()))}) is out of range for num_classes={n}")
    return np.bincount(t * n + p, minlength=n * n).reshape(n, n).astype(np.int64)


def precision_recall_f1(y_true, y_pred, threshold: float = 0.5) -> dict:
    """Macro-averaged precision, recall and F1 over the classes that occur in ``y_true`` or the predictions.

    A class with no predicted (or no true) samples has precision (or recall) 0, as in scikit-learn with
    ``zero_division=0``; F1 of a class is 0 when precision + recall is 0.
    """
    t, p = _pair(y_true, y_pred, threshold)
    classes = np.union1d(t, p)
    cm = confusion_matrix(t, p, int(classes.max()) + 1)[np.ix_(classes, classes)].astype(np.float64)
    tp = np.diag(cm)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return {"precision": float(precision.mean()), "recall": float(recall.mean()), "f1": float(f1.mean())}


def precision_score(y_true, y_pred, threshold: float = 0.5) -> float:
    """Macro-averaged precision (see ``precision_recall_f1``)."""
    return precision_recall_f1(y_true, y_pred, threshold)["precision"]


def recall_score(y_true, y_pred, threshold: float = 0.5) -> float:
    """Macro-averaged recall (see ``precision_recall_f1``)."""
    return precision_recall_f1(y_true, y_pred, threshold)["recall"]


def f1_score(y_true, y_pred, threshold: float = 0.5) -> float:
    """Macro-averaged F1 (see ``precision_recall_f1``)."""
    return precision_recall_f1(y_true, y_pred, threshold)["f1"]


def _regression_pair(y_true, y_pred):
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        if t.size == p.size and t.size and np.squeeze(t).shape == np.squeeze(p).shape:
            t, p = np.squeeze(t), np.squeeze(p)
        else:
            raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}")
    if t.size == 0:
        raise ValueError("metrics need at least one sample, got none")
    return t, p


def mse(y_true, y_pred) -> float:
    """Mean squared error over all elements, in float64."""
    t, p = _regression_pair(y_true, y_pred)
    return float(np.mean((p - t) ** 2))


def rmse(y_true, y_pred) -> float:
    """Square root of the mean squared error."""
    return float(np.sqrt(mse(y_true, y_pred)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error over all elements, in float64."""
    t, p = _regression_pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def perplexity(mean_nll: float) -> float:
    """``exp(mean_nll)``: the perplexity of a model whose mean negative log-likelihood per token is ``mean_nll`` (nats)."""
    return float(np.exp(mean_nll))


def bits_per_character(mean_nll: float) -> float:
    """``mean_nll / ln 2``: the mean negative log-likelihood per character (nats) in bits."""
    return float(mean_nll / np.log(2.0))


_BY_NAME = {
    "accuracy": accuracy,
    "precision": precision_score,
    "recall": recall_score,
    "f1": f1_score,
    "mse": mse,
    "rmse": rmse,
    "mae": mae,
}
_CLASSIFICATION = {"accuracy", "precision", "recall", "f1"}
_TOP_K = re.compile(r"top(\d+)_accuracy")
METRIC_NAMES = (*_BY_NAME, "top<k>_accuracy")


def get_metric(name: str, threshold: float = 0.5):
    """The metric called ``name`` as ``f(y_true, outputs) -> float``; ``top<k>_accuracy`` (e.g. ``top5_accuracy``)
    gives top-k accuracy. Classification metrics threshold single-score outputs at ``threshold``."""
    match = _TOP_K.fullmatch(name) if isinstance(name, str) else None
    if match:
        k = int(match.group(1))
        if k < 1:
            raise ValueError(f"unknown metric {name!r}: k in top<k>_accuracy must be at least 1")
        return lambda y_true, outputs: top_k_accuracy(y_true, outputs, k)
    if name not in _BY_NAME:
        import difflib

        close = difflib.get_close_matches(str(name), list(_BY_NAME), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown metric {name!r}.{hint} Known metrics: {', '.join(METRIC_NAMES)}")
    function = _BY_NAME[name]
    if name in _CLASSIFICATION:
        return lambda y_true, outputs: function(y_true, outputs, threshold)
    return function


class EpochCollector:
    """Gathers one pass over a data split, batch by batch: the named losses (``loss``, or a task's several, each the
    mean over the samples of the batches that reported it) and, when metrics are wanted, the outputs and host
    targets. ``results`` turns them into a metrics dict.

    On a CUDA device nothing waits for the device while batches arrive: ``add`` takes the batch's losses and outputs
    as Tensors and keeps them on the device, and ``sync`` brings everything pending to the host in one copy (the
    Trainer calls it at its log points; ``results`` and ``state_dict`` sync first). Host values (and
    CPU tensors) are taken at once. Either way the figures are those of a host-side computation, batch by batch in
    order; after a sync, ``last_losses`` holds each name's latest value and ``first_nonfinite`` the (batch number,
    value) of the pass's first NaN or infinite ``loss``, if any.

    Its ``state_dict`` lets a checkpoint taken mid-epoch carry the partial pass, so the epoch's figures after a
    resume equal those of an uninterrupted run.
    """

    def __init__(self, metric_names=(), threshold: float = 0.5, keep_outputs: bool | None = None):
        self.metric_names = list(metric_names)
        self.threshold = threshold
        self.keep_outputs = bool(self.metric_names) if keep_outputs is None else keep_outputs
        self.sums: dict[str, float] = {}  # name -> sum over batches of mean loss times its sample count
        self.counts: dict[str, int] = {}  # name -> samples behind it
        self.count = 0
        self.batches = 0
        self.last_losses: dict[str, float] = {}
        self.first_nonfinite: tuple[int, float] | None = None
        self._outputs: list = []
        self._targets: list = []
        self._pending: list = []  # (batch number, losses, counts, outputs, device arrays), waiting for a sync
        self._device = None  # the backend of the pending arrays

    def add(self, batch_size: int, loss=None, outputs=None, targets=None, counts: dict | None = None) -> None:
        """Record one batch: ``loss`` its mean loss (a number or a 0-d Tensor) or ``{name: mean loss}``, each over
        ``counts[name]`` samples (default ``batch_size``); ``outputs`` the model's outputs (a Tensor or host array,
        kept if needed), ``targets`` host targets."""
        self.count += batch_size
        self.batches += 1
        losses = {} if loss is None else dict(loss) if isinstance(loss, dict) else {"loss": loss}
        counts = {name: (counts or {}).get(name, batch_size) for name in losses}
        keep = self.keep_outputs and outputs is not None  # None: an empty share of a data-parallel batch
        if keep and targets is not None:
            self._targets.append(np.asarray(targets))
        outputs = outputs if keep else None
        values = {**losses, None: outputs}  # None: the outputs' key
        arrays = {key: _device_array(value) for key, value in values.items()}
        for key, array in arrays.items():
            if array is not None:
                if self._device is not None and values[key].backend is not self._device:
                    raise ValueError(f"EpochCollector: batches from {self._device.device} and {values[key].device} "
                                     "in one pass")
                self._device = values[key].backend
        if not any(a is not None for a in arrays.values()) and not self._pending:
            self._record(self.batches, {k: _host_value(v) for k, v in values.items()}, counts)
            return
        kept = {key: _host_value(values[key]) if array is None else array for key, array in arrays.items()}
        self._pending.append((self.batches, kept, counts, [a for a in arrays.values() if a is not None]))

    def sync(self) -> None:
        """Bring the pending batches' losses and outputs to the host in one copy (integer outputs in one more)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        backend = self._device
        device_parts = [a for *_, arrays in pending for a in arrays]
        packed = [a for a in device_parts if a.dtype.kind == "f"]  # float32/16 -> float64 and back is exact
        copies = {}
        if packed:
            with backend.activate():
                flat = backend.xp.concatenate([a.astype(np.float64).reshape(-1) for a in packed])
            host, offset = backend.to_numpy(flat), 0
            for a in packed:
                copies[id(a)] = host[offset:offset + a.size].reshape(a.shape).astype(a.dtype)
                offset += a.size
        for a in device_parts:
            if id(a) not in copies:  # integer outputs: their own copy, exact
                copies[id(a)] = backend.to_numpy(a)
        for number, values, counts, _ in pending:
            self._record(number, {key: copies.get(id(value), value) for key, value in values.items()}, counts)

    def _record(self, number: int, values: dict, counts: dict) -> None:
        """Add one batch's host values: ``values[name]`` per loss, ``values[None]`` the outputs."""
        for name, value in values.items():
            if name is None:
                if value is not None:
                    self._outputs.append(np.asarray(value))
                continue
            value = float(value)
            self.sums[name] = self.sums.get(name, 0.0) + value * counts[name]
            self.counts[name] = self.counts.get(name, 0) + counts[name]
            self.last_losses[name] = value
            if name == "loss" and self.first_nonfinite is None and not math.isfinite(value):
                self.first_nonfinite = (number, value)

    def outputs(self) -> np.ndarray:
        """All recorded outputs, concatenated along the batch axis."""
        self.sync()
        if not self._outputs:
            raise ValueError("no outputs were recorded (empty data?)")
        return np.concatenate(self._outputs)

    def targets(self) -> np.ndarray:
        return np.concatenate(self._targets)

    def results(self, prefix: str = "", with_loss: bool = True, confusion: bool = False) -> dict:
        """``{prefix + name: mean, ...}`` for each named loss (``loss`` first; none unless ``with_loss``) and each
        metric; the confusion matrix (a nested list) is included only when ``confusion`` is true and it is among the
        metric names."""
        if self.count == 0:
            raise ValueError("no batches were seen: the data split is empty")
        self.sync()
        results = {}
        if with_loss:
            for name in sorted(self.sums, key=lambda name: name != "loss"):
                results[prefix + name] = self.sums[name] / self.counts[name]
        if self.metric_names:
            outputs, targets = self.outputs(), self.targets()
            for name in self.metric_names:
                if name == "confusion_matrix":
                    if confusion:
                        results[prefix + name] = confusion_matrix(targets, outputs, threshold=self.threshold).tolist()
                else:
                    results[prefix + name] = get_metric(name, self.threshold)(targets, outputs)
        return results

    def state_dict(self) -> dict:
        self.sync()
        state = {"sums": dict(self.sums), "counts": dict(self.counts), "count": self.count, "batches": self.batches}
        if self._outputs:
            state.update(outputs=self.outputs(), targets=self.targets())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict``'s (or, from an older checkpoint, ``loss_sum`` over ``count`` samples)."""
        self._pending, self._device = [], None
        self.count, self.batches = int(state["count"]), int(state["batches"])
        if "sums" in state:
            self.sums = {k: float(v) for k, v in state["sums"].items()}
            self.counts = {k: int(v) for k, v in state["counts"].items()}
        else:
            self.sums, self.counts = {"loss": float(state["loss_sum"])}, {"loss": self.count}
        self._outputs = [state["outputs"]] if "outputs" in state else []
        self._targets = [state["targets"]] if "targets" in state else []

    @classmethod
    def combined(cls, like: "EpochCollector", states: list) -> "EpochCollector":
        """One collector of several ``state_dict``s (data-parallel ranks' shares, in rank order): losses and counts
        added, outputs and targets concatenated; metric names and ``batches`` are ``like``'s."""
        combined = cls(like.metric_names, like.threshold, like.keep_outputs)
        for state in states:
            for name, value in state["sums"].items():
                combined.sums[name] = combined.sums.get(name, 0.0) + float(value)
                combined.counts[name] = combined.counts.get(name, 0) + int(state["counts"][name])
            combined.count += int(state["count"])
            if "outputs" in state and len(state["outputs"]):
                combined._outputs.append(state["outputs"])
                combined._targets.append(state["targets"])
        combined.batches = like.batches
        return combined


def _device_array(value):
    """The array of a Tensor on a CUDA device (kept until the next sync), else None."""
    return value.data if isinstance(value, Tensor) and value.device.kind != "cpu" else None


def _host_value(value):
    """A number, host array or None as it is; a (CPU) Tensor as its host data."""
    if isinstance(value, Tensor):
        return value.item() if value.ndim == 0 else value.numpy()
    return value

