"""Evaluation metrics on host NumPy arrays, and ``EpochCollector``, which gathers a pass's losses and outputs from
any device: classification (accuracy, top-k, macro precision/recall/F1, confusion
matrix) and regression (MSE, RMSE, MAE).

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
    "METRIC_NAMES", "EpochCollector", "accuracy", "confusion_matrix", "f1_score", "get_metric", "mae", "mse",
    "precision_recall_f1", "precision_score", "recall_score", "rmse", "to_labels", "top_k_accuracy",
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
    """Gathers one pass over a data split, batch by batch: the losses weighted by batch size and, when metrics are
    wanted, the outputs and host targets. ``results`` turns them into a metrics dict.

    On a CUDA device nothing waits for the device while batches arrive: ``add`` takes the batch's loss and outputs
    as Tensors and keeps them on the device, and ``sync`` brings everything pending to the host in one copy (the
    Trainer calls it at its log points; ``results``, ``state_dict`` and ``loss_sum`` sync first). Host values (and
    CPU tensors) are taken at once. Either way the figures are those of a host-side computation, batch by batch in
    order; after a sync, ``last_loss`` is the latest batch's loss and ``first_nonfinite`` the (batch number, loss)
    of the epoch's first NaN or infinite batch loss, if any.

    Its ``state_dict`` lets a checkpoint taken mid-epoch carry the partial pass, so the epoch's figures after a
    resume equal those of an uninterrupted run.
    """

    def __init__(self, metric_names=(), threshold: float = 0.5, keep_outputs: bool | None = None):
        self.metric_names = list(metric_names)
        self.threshold = threshold
        self.keep_outputs = bool(self.metric_names) if keep_outputs is None else keep_outputs
        self._loss_sum = 0.0
        self.count = 0
        self.batches = 0
        self.last_loss: float | None = None
        self.first_nonfinite: tuple[int, float] | None = None
        self._outputs: list = []
        self._targets: list = []
        self._pending: list = []  # (batch number, batch size, loss array or None, outputs array or None) on a device
        self._device = None  # the backend of the pending arrays

    def add(self, batch_size: int, loss=None, outputs=None, targets=None) -> None:
        """Record one batch: ``loss`` its mean loss (a number or a 0-d Tensor), ``outputs`` the model's outputs (a
        Tensor or host array, kept if needed), ``targets`` host targets."""
        self.count += batch_size
        self.batches += 1
        keep = self.keep_outputs and outputs is not None  # None: an empty share of a data-parallel batch
        if keep and targets is not None:
            self._targets.append(np.asarray(targets))
        outputs = outputs if keep else None
        device_loss, device_outputs = _device_array(loss), _device_array(outputs)
        arrays = [a for a in (device_loss, device_outputs) if a is not None]
        if not arrays and not self._pending:
            self._record(self.batches, batch_size, _host_value(loss), _host_value(outputs))
            return
        for value in (loss, outputs):
            if _device_array(value) is not None:
                if self._device is not None and value.backend is not self._device:
                    raise ValueError(f"EpochCollector: batches from {self._device.device} and {value.device} in one "
                                     "pass")
                self._device = value.backend
        self._pending.append((self.batches, batch_size, _host_value(loss) if device_loss is None else device_loss,
                              _host_value(outputs) if device_outputs is None else device_outputs, arrays))

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
        for number, size, loss, outputs, _ in pending:
            self._record(number, size, _host_value(copies.get(id(loss), loss)),
                         _host_value(copies.get(id(outputs), outputs)))

    def _record(self, number: int, batch_size: int, loss, outputs) -> None:
        if loss is not None:
            loss = float(loss)
            self._loss_sum += loss * batch_size
            self.last_loss = loss
            if self.first_nonfinite is None and not math.isfinite(loss):
                self.first_nonfinite = (number, loss)
        if outputs is not None:
            self._outputs.append(np.asarray(outputs))

    @property
    def loss_sum(self) -> float:
        """The losses times their batch sizes, summed (after a sync)."""
        self.sync()
        return self._loss_sum

    @loss_sum.setter
    def loss_sum(self, value: float) -> None:
        self._loss_sum = float(value)

    def outputs(self) -> np.ndarray:
        """All recorded outputs, concatenated along the batch axis."""
        self.sync()
        if not self._outputs:
            raise ValueError("no outputs were recorded (empty data?)")
        return np.concatenate(self._outputs)

    def targets(self) -> np.ndarray:
        return np.concatenate(self._targets)

    def results(self, prefix: str = "", with_loss: bool = True, confusion: bool = False) -> dict:
        """``{prefix + "loss": mean loss, prefix + name: value, ...}``; the confusion matrix (a nested list) is
        included only when ``confusion`` is true and it is among the metric names."""
        if self.count == 0:
            raise ValueError("no batches were seen: the data split is empty")
        results = {f"{prefix}loss": self.loss_sum / self.count} if with_loss else {}
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
        state = {"loss_sum": self.loss_sum, "count": self.count, "batches": self.batches}
        if self._outputs:
            state.update(outputs=self.outputs(), targets=self.targets())
        return state

    def load_state_dict(self, state: dict) -> None:
        self._pending, self._device = [], None
        self.loss_sum, self.count, self.batches = float(state["loss_sum"]), int(state["count"]), int(state["batches"])
        self._outputs = [state["outputs"]] if "outputs" in state else []
        self._targets = [state["targets"]] if "targets" in state else []


def _device_array(value):
    """The array of a Tensor on a CUDA device (kept until the next sync), else None."""
    return value.data if isinstance(value, Tensor) and value.device.kind != "cpu" else None


def _host_value(value):
    """A number, host array or None as it is; a (CPU) Tensor as its host data."""
    if isinstance(value, Tensor):
        return value.item() if value.ndim == 0 else value.numpy()
    return value

