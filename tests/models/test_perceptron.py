"""The perceptron rule on AND, OR and XOR, against values worked by hand (zero initial weights, lr 1, theta 0)."""
import numpy as np
import pytest

import gpunet as gn
from gpunet.models.perceptron import Perceptron

BIPOLAR_X = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float32)
BINARY_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)


def test_bipolar_and_converges_in_two_epochs(device):
    # Epoch 1: (1,1) t=1: y_in 0 -> y 0 != 1, w=(1,1) b=1; (1,-1) t=-1: y_in 1 -> y 1, w=(0,2) b=0;
    # (-1,1) t=-1: y_in 2 -> y 1, w=(1,1) b=-1; (-1,-1) t=-1: y_in -3, right. Epoch 2: all right, stop.
    p = Perceptron(2, kind="bipolar")
    fit = p.fit(gn.tensor(BIPOLAR_X), [1, -1, -1, -1])
    assert (fit.converged, fit.epochs, fit.mistakes) == (True, 2, [3, 0])
    np.testing.assert_array_equal(p.weight.numpy(), [[1, 1]])
    np.testing.assert_array_equal(p.bias.numpy(), [-1])
    np.testing.assert_array_equal(p(gn.tensor(BIPOLAR_X)).numpy()[:, 0], [1, -1, -1, -1])
    assert str(fit) == "converged after 2 epochs (the last changed nothing)"


def test_bipolar_or_converges_in_two_epochs(device):
    # Epoch 1: (1,1) t=1: y_in 0 -> 0, w=(1,1) b=1; then y_in 1, 1, -1: all right. Epoch 2 changes nothing.
    p = Perceptron(2, kind="bipolar")
    fit = p.fit(BIPOLAR_X, [1, 1, 1, -1])
    assert (fit.converged, fit.epochs, fit.mistakes) == (True, 2, [1, 0])
    np.testing.assert_array_equal(p.weight.numpy(), [[1, 1]])
    np.testing.assert_array_equal(p.bias.numpy(), [1])


def test_binary_and_converges_in_six_epochs(device):
    # Rule w += lr (t - y) x with y = 1 where y_in > 0. Weights after each epoch (w1, w2, b):
    # 1: (1,1,1)  2: (2,1,0)  3: (2,1,-1)  4: (2,2,-1)  5: (2,1,-2)  6: no change.
    p = Perceptron(2, kind="binary")
    fit = p.fit(gn.tensor(BINARY_X), [0, 0, 0, 1])
    assert (fit.converged, fit.epochs) == (True, 6)
    assert fit.mistakes == [1, 3, 3, 2, 1, 0]
    np.testing.assert_array_equal(p.weight.numpy(), [[2, 1]])
    np.testing.assert_array_equal(p.bias.numpy(), [-2])
    np.testing.assert_array_equal(p(BINARY_X).numpy()[:, 0], [0, 0, 0, 1])


def test_binary_or_learns_the_truth_table(device):
    p = Perceptron(2, kind="binary")
    fit = p.fit(BINARY_X, [0, 1, 1, 1])
    assert fit.converged and fit.mistakes[-1] == 0
    np.testing.assert_array_equal(p(BINARY_X).numpy()[:, 0], [0, 1, 1, 1])


def test_multi_output_units_learn_independently(device):
    """AND and OR as two outputs of one layer: the weights are the two single-output runs stacked."""
    p = Perceptron(2, out_features=2, kind="bipolar")
    fit = p.fit(BIPOLAR_X, np.array([[1, 1], [-1, 1], [-1, 1], [-1, -1]]))
    assert (fit.converged, fit.epochs) == (True, 2)
    np.testing.assert_array_equal(p.weight.numpy(), [[1, 1], [1, 1]])
    np.testing.assert_array_equal(p.bias.numpy(), [-1, 1])


def test_threshold_and_learning_rate():
    # theta 0.2, lr 0.5: epoch 1 of bipolar AND: (1,1): y_in 0 in [-0.2, 0.2] -> 0 != 1, w=(.5,.5) b=.5;
    # (1,-1): y_in .5 -> 1, w=(0,1) b=0; (-1,1): y_in 1 -> 1, w=(.5,.5) b=-.5; (-1,-1): -1.5 -> -1. Epoch 2 clean.
    p = Perceptron(2, kind="bipolar", threshold=0.2)
    fit = p.fit(BIPOLAR_X, [1, -1, -1, -1], lr=0.5)
    assert (fit.converged, fit.epochs) == (True, 2)
    np.testing.assert_array_equal(p.weight.numpy(), [[0.5, 0.5]])
    np.testing.assert_array_equal(p.bias.numpy(), [-0.5])
    # The undecided band: y_in = 0 lies in [-theta, theta] and gives 0.
    p.bias.data[...] = 0 * p.bias.data
    np.testing.assert_array_equal(p(np.array([[1.0, -1.0]])).numpy(), [[0]])


@pytest.mark.parametrize("kind, targets", [("bipolar", [-1, 1, 1, -1]), ("binary", [0, 1, 1, 0])])
def test_xor_reports_that_it_did_not_converge(kind, targets):
    x = BIPOLAR_X if kind == "bipolar" else BINARY_X
    p = Perceptron(2, kind=kind)
    fit = p.fit(x, targets, max_epochs=50)
    assert not fit.converged and fit.epochs == 50 and min(fit.mistakes) > 0
    assert str(fit).startswith("did not converge in 50 epochs") and "linearly separable" in str(fit)


def test_bad_input_names_the_fault():
    p = Perceptron(2, kind="binary")
    with pytest.raises(ValueError, match=r"binary targets must be .* holding only 0 and 1"):
        p.fit(BINARY_X, [0, 1, -1, 1])
    with pytest.raises(ValueError, match=r"inputs must have shape \(4, 2\)"):
        p.fit(BINARY_X[:, :1], [0, 1, 1, 1])
    with pytest.raises(ValueError, match="lr .* must be a number > 0"):
        p.fit(BINARY_X, [0, 1, 1, 1], lr=0)
    with pytest.raises(ValueError, match="kind must be 'binary'"):
        Perceptron(2, kind="sigmoid")
    with pytest.raises(ValueError, match="threshold"):
        Perceptron(2, threshold=-1)


def test_rule_gradient_is_minus_the_summed_update_so_sgd_applies_the_rule(device):
    # Zero weights: every bipolar output is 0, all four samples are wrong and each adds lr t x:
    # sum t x = (1-1+1+1, 1+1-1+1) = (2, 2), sum t = -2.
    p = Perceptron(2, kind="bipolar")
    wrong = p.rule_gradient(BIPOLAR_X, [1, -1, -1, -1])
    assert int(float(wrong)) == 4
    np.testing.assert_array_equal(p.weight.grad.numpy(), [[-2, -2]])
    np.testing.assert_array_equal(p.bias.grad.numpy(), [2])
    gn.optim.SGD(p.parameters(), lr=0.5).step()
    np.testing.assert_array_equal(p.weight.numpy(), [[1, 1]])
    np.testing.assert_array_equal(p.bias.numpy(), [-1])
