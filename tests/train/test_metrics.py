"""Metrics against hand-worked values and scikit-learn."""
import numpy as np
import pytest
from sklearn import metrics as skm

from gpunet.train import metrics as M

# Hand-worked example: 3 classes, 8 samples.
Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 1, 0, 1, 1, 2, 0, 1])
# confusion: class 0 -> [2,1,0]; class 1 -> [0,2,0]; class 2 -> [1,1,1]
# precision per class: 2/3, 2/4, 1/1 ; recall: 2/3, 2/2, 1/3
# f1: 2/3, 2*(.5*1)/(1.5)=2/3, 2*(1*1/3)/(4/3)=1/2


def test_accuracy_hand_worked():
    assert M.accuracy(Y_TRUE, Y_PRED) == 5 / 8


def test_accuracy_takes_argmax_of_scores():
    scores = np.array([[0.1, 0.9], [2.0, -1.0], [0.3, 0.2]])
    assert M.accuracy([1, 0, 1], scores) == pytest.approx(2 / 3)


def test_binary_scores_are_thresholded():
    probabilities = np.array([0.9, 0.2, 0.6, 0.4], dtype=np.float32)
    assert M.accuracy([1, 0, 0, 0], probabilities) == 0.75
    logits = np.array([[1.5], [-0.1], [0.2], [-3.0]])
    assert M.accuracy([1, 1, 1, 0], logits, threshold=0.0) == 0.75


def test_confusion_matrix_hand_worked_and_sklearn():
    expected = np.array([[2, 1, 0], [0, 2, 0], [1, 1, 1]])
    np.testing.assert_array_equal(M.confusion_matrix(Y_TRUE, Y_PRED), expected)
    np.testing.assert_array_equal(M.confusion_matrix(Y_TRUE, Y_PRED, num_classes=4)[:3, :3], expected)
    np.testing.assert_array_equal(M.confusion_matrix(Y_TRUE, Y_PRED), skm.confusion_matrix(Y_TRUE, Y_PRED))


def test_macro_precision_recall_f1_hand_worked():
    result = M.precision_recall_f1(Y_TRUE, Y_PRED)
    assert result["precision"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert result["recall"] == pytest.approx((2 / 3 + 1 + 1 / 3) / 3)
    assert result["f1"] == pytest.approx((2 / 3 + 2 / 3 + 1 / 2) / 3)


@pytest.mark.parametrize("seed", range(5))
def test_macro_scores_match_sklearn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 5, 60)
    y_pred = rng.integers(0, 6, 60)  # class 5 is predicted but never true; some classes may never be predicted
    assert M.precision_score(y_true, y_pred) == pytest.approx(
        skm.precision_score(y_true, y_pred, average="macro", zero_division=0))
    assert M.recall_score(y_true, y_pred) == pytest.approx(
        skm.recall_score(y_true, y_pred, average="macro", zero_division=0))
    assert M.f1_score(y_true, y_pred) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


def test_top_k_accuracy_hand_worked_and_sklearn():
    scores = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3], [0.6, 0.1, 0.3]])
    y = np.array([1, 0, 2, 1])
    # top-2 sets: {0,1}, {2,1}, {1, 0 (tie with 2, lower index wins)}, {0,2} -> hits: yes, no, no, no
    assert M.top_k_accuracy(y, scores, k=2) == 0.25
    assert M.top_k_accuracy(y, scores, k=1) == M.accuracy(y, scores)
    assert M.top_k_accuracy(y, scores, k=3) == 1.0
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(50, 6)), rng.integers(0, 6, 50)
    assert M.top_k_accuracy(t, s, k=3) == pytest.approx(skm.top_k_accuracy_score(t, s, k=3, labels=range(6)))


def test_regression_metrics_hand_worked_and_sklearn():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.5, 2.0, 2.0, 6.0])
    assert M.mse(t, p) == pytest.approx((0.25 + 0 + 1 + 4) / 4)
    assert M.rmse(t, p) == pytest.approx(np.sqrt(5.25 / 4))
    assert M.mae(t, p) == pytest.approx((0.5 + 0 + 1 + 2) / 4)
    assert M.mse(t, p[:, None]) == M.mse(t, p)  # (N,) vs (N, 1) is the same data
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    assert M.mse(a, b) == pytest.approx(skm.mean_squared_error(a, b))
    assert M.mae(a, b) == pytest.approx(skm.mean_absolute_error(a, b))


def test_get_metric_by_name():
    scores = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert M.get_metric("accuracy")([1, 1], scores) == 0.5
    assert M.get_metric("top1_accuracy")([1, 1], scores) == 0.5
    assert M.get_metric("accuracy", threshold=0.0)([1, 0], np.array([0.1, -0.1])) == 1.0
    assert M.get_metric("rmse")([0.0, 0.0], [3.0, 4.0]) == pytest.approx(np.sqrt(12.5))


def test_unknown_metric_names_a_near_miss():
    with pytest.raises(ValueError, match=r"unknown metric 'acuracy'.*Did you mean 'accuracy'"):
        M.get_metric("acuracy")


@pytest.mark.parametrize("call, message", [
    (lambda: M.accuracy([0, 1], [0]), "2 samples but y_pred has 1"),
    (lambda: M.accuracy([], []), "at least one sample"),
    (lambda: M.accuracy([0.5, 1.0], [0, 1]), "whole class labels"),
    (lambda: M.top_k_accuracy([0, 1], np.zeros((2, 3)), k=0), "k must be a positive integer"),
    (lambda: M.confusion_matrix([0, 3], [0, 1], num_classes=2), "out of range"),
    (lambda: M.mse(np.zeros(3), np.zeros(4)), "shape"),
])
def test_bad_inputs_give_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
