"""Evaluation metrics on host NumPy arrays: classification (accuracy, top-k, macro precision/recall/F1, confusion
matrix), regression (MSE, RMSE, MAE) and language models (perplexity and bits per character, from the mean
negative log-likelihood).

Classification metrics take ``y_true`` (integer labels, shape (N,)) and ``y_pred``: integer labels (N,), class
scores (N, C) whose argmax is the prediction (logits or probabilities alike), or one float score per sample
(N,) / (N, 1) for a binary problem, thresholded at ``threshold`` (0.5 for probabilities; 0 for logits).
"""
from __future__ import annotations

import re

import numpy as np

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
    """Gathers one pass over a data split, batch by batch: the loss weighted by batch size and, when metrics are
    wanted, the host copies of outputs and targets. ``results`` turns them into a metrics dict.

    Its ``state_dict`` lets a checkpoint taken mid-epoch carry the partial pass, so the epoch's figures after a
    resume equal those of an uninterrupted run.
    """

    def __init__(self, metric_names=(), threshold: float = 0.5, keep_outputs: bool | None = None):
        self.metric_names = list(metric_names)
        self.threshold = threshold
        self.keep_outputs = bool(self.metric_names) if keep_outputs is None else keep_outputs
        self.loss_sum = 0.0
        self.count = 0
        self.batches = 0
        self._outputs: list = []
        self._targets: list = []

    def add(self, batch_size: int, loss: float | None = None, outputs=None, targets=None) -> None:
        """Record one batch: ``loss`` is its mean loss; ``outputs``/``targets`` host arrays (kept if needed)."""
        if loss is not None:
            self.loss_sum += loss * batch_size
        self.count += batch_size
        self.batches += 1
        if self.keep_outputs and outputs is not None:  # None: an empty share of a data-parallel batch
            self._outputs.append(np.asarray(outputs))
            if targets is not None:
                self._targets.append(np.asarray(targets))

    def outputs(self) -> np.ndarray:
        """All recorded outputs, concatenated along the batch axis."""
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
        self.loss_sum, self.count, self.batches = float(state["loss_sum"]), int(state["count"]), int(state["batches"])
        self._outputs = [state["outputs"]] if "outputs" in state else []
        self._targets = [state["targets"]] if "targets" in state else []
