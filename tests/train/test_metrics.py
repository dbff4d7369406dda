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


# ----- EpochCollector: device batches, one copy to the host per sync ---------------------------------------------
def _batches(seed=0, sizes=(4, 3, 5, 2)):
    rng = np.random.default_rng(seed)
    return [(n, np.float32(rng.uniform(0.1, 2)), rng.standard_normal((n, 3)).astype(np.float32),
             rng.integers(0, 3, n)) for n in sizes]


def _host_reference(batches, names):
    """The figures computed on the host, batch by batch, as the collector did before it took device tensors."""
    loss_sum = 0.0
    for n, loss, _, _ in batches:
        loss_sum += float(loss) * n
    outputs, targets = np.concatenate([b[2] for b in batches]), np.concatenate([b[3] for b in batches])
    return {"loss": loss_sum / sum(b[0] for b in batches),
            **{name: M.get_metric(name)(targets, outputs) for name in names}}


@pytest.mark.parametrize("where_name", ["cpu", "cuda-emu", "cuda-emu:1"])
def test_collector_of_device_tensors_equals_the_host_computation_with_one_copy_per_sync(where_name):
    import gpunet as gn
    from gpunet import backend

    names = ["accuracy", "f1", "top2_accuracy"]
    batches = _batches()
    collector = M.EpochCollector(names)
    where = backend.get_backend(where_name)
    before = where.host_syncs() if where_name != "cpu" else 0
    for n, loss, outputs, targets in batches[:2]:
        collector.add(n, gn.tensor(loss, device=where_name), gn.tensor(outputs, device=where_name), targets)
    if where_name != "cpu":
        assert where.host_syncs() == before and not collector.last_losses  # nothing came to the host yet
    collector.sync()
    assert collector.last_losses == {"loss": float(batches[1][1])}
    for n, loss, outputs, targets in batches[2:]:
        collector.add(n, gn.tensor(loss, device=where_name), gn.tensor(outputs, device=where_name), targets)
    results = collector.results()
    if where_name != "cpu":
        assert where.host_syncs() - before == 2  # the sync above and the one results() made
    assert results == _host_reference(batches, names)
    assert collector.first_nonfinite is None


def test_collector_names_the_first_nonfinite_batch_and_copies_integer_outputs_exactly():
    import gpunet as gn

    collector = M.EpochCollector(["accuracy"])
    labels = np.array([2**60 + 1, 1])  # not exact in float64: integer outputs travel on their own
    for n, loss in ((2, 1.0), (2, float("inf")), (2, float("nan"))):
        collector.add(n, gn.tensor(np.float32(loss), device="cuda-emu"), gn.tensor(labels, device="cuda-emu"),
                      np.array([1, 1]))
    collector.sync()
    assert collector.first_nonfinite == (2, float("inf")) and np.isnan(collector.last_losses["loss"])
    np.testing.assert_array_equal(collector.outputs(), np.tile(labels, 3))


def test_collector_state_dict_brings_pending_batches_along():
    import gpunet as gn

    batches = _batches(1)
    collector = M.EpochCollector(["accuracy"])
    for n, loss, outputs, targets in batches[:3]:
        collector.add(n, gn.tensor(loss, device="cuda-emu:1"), gn.tensor(outputs, device="cuda-emu:1"), targets)
    resumed = M.EpochCollector(["accuracy"])
    resumed.load_state_dict(collector.state_dict())
    n, loss, outputs, targets = batches[3]
    resumed.add(n, float(loss), outputs, targets)
    assert resumed.results() == _host_reference(batches, ["accuracy"]) and resumed.batches == 4


def test_collector_of_named_losses_reported_by_some_batches_and_combined_shares():
    """A task's losses (a GAN's generator loss every other batch): each the mean over the samples of the batches
    that reported it; ``combined`` adds ranks' shares; an older checkpoint's state (loss_sum) still loads."""
    import gpunet as gn

    collector = M.EpochCollector()
    collector.add(4, {"loss": gn.tensor(np.float32(1.0), device="cuda-emu"), "g_loss": 3.0})
    collector.add(2, {"loss": gn.tensor(np.float32(4.0), device="cuda-emu")})
    collector.add(6, {"loss": 0.5, "g_loss": gn.tensor(np.float32(2.0), device="cuda-emu")}, counts={"g_loss": 3})
    assert collector.results("train_") == {"train_loss": (4 + 8 + 3) / 12, "train_g_loss": (12 + 6) / 7}
    assert collector.last_losses == {"loss": 0.5, "g_loss": 2.0}
    other = M.EpochCollector()
    other.add(3, {"loss": 2.0})
    both = M.EpochCollector.combined(collector, [collector.state_dict(), other.state_dict()])
    assert both.results() == {"loss": (15 + 6) / 15, "g_loss": 18 / 7} and both.batches == 3
    old = M.EpochCollector()
    old.load_state_dict({"loss_sum": 6.0, "count": 4, "batches": 2})
    assert old.results() == {"loss": 1.5}
