"""DeepBeliefNet: the RBM stack feeds each RBM the layer below's hidden probabilities, unrolling copies the RBMs
into the classifier, and greedy pre-training then fine-tuning classifies digits."""
import numpy as np
import pytest
from scipy.special import expit

import gpunet as gn
from gpunet.models.dbn import DeepBeliefNet
from gpunet.nn import Dropout, Linear, ReLU, Sigmoid


def _randomise(net, seed=0):
    rng = np.random.default_rng(seed)
    for rbm in net.rbms:
        rbm.load_state_dict({k: rng.normal(0, 0.5, v.shape) for k, v in rbm.state_dict().items()})


def test_classifier_layout():
    net = DeepBeliefNet(64, [256, 128], 10, activation="relu", dropout=0.2)
    kinds = [type(m) for m in net.classifier]
    assert kinds == [Linear, ReLU, Dropout, Linear, ReLU, Dropout, Linear]
    assert [tuple(l.weight.shape) for l in net.hidden_layers()] == [(256, 64), (128, 256)]
    assert tuple(net(gn.zeros(3, 64)).shape) == (3, 10)


def test_rbm_input_is_the_stack_of_hidden_probabilities(device):
    net = DeepBeliefNet(6, [5, 4], 3)
    _randomise(net)
    x = np.random.default_rng(1).random((7, 6))
    expected = x
    for rbm in net.rbms:
        expected = expit(expected @ rbm.weight.numpy().T.astype(np.float64) + rbm.h_bias.numpy())
    np.testing.assert_allclose(net.rbm_input(2, gn.tensor(x, dtype=np.float32)).numpy(), expected, rtol=1e-5)
    np.testing.assert_array_equal(net.rbm_input(0, gn.tensor(x)).numpy(), x)


def test_unroll_copies_the_rbms_into_the_classifier(device):
    """With sigmoid units and no dropout, the unrolled hidden layers compute exactly the RBMs' P(h=1|v)."""
    net = DeepBeliefNet(6, [5, 4], 3, activation="sigmoid", dropout=0.0)
    _randomise(net)
    net.unroll()
    for rbm, linear in zip(net.rbms, net.hidden_layers()):
        np.testing.assert_array_equal(linear.weight.numpy(), rbm.weight.numpy())
        np.testing.assert_array_equal(linear.bias.numpy(), rbm.h_bias.numpy())
    x = gn.tensor(np.random.default_rng(2).random((7, 6)), dtype=np.float32)
    assert [type(m) for m in net.classifier[:-1]] == [Linear, Sigmoid, Linear, Sigmoid]
    np.testing.assert_allclose(net.classifier[:-1](x).numpy(), net.rbm_input(2, x).numpy(), rtol=1e-6)


def test_pretrain_step_trains_only_its_layer():
    net = DeepBeliefNet(6, [5, 4], 3)
    net.pretrain_step(1, gn.tensor(np.random.default_rng(0).random((8, 6)), dtype=np.float32))
    assert all(p.grad is None for p in net.rbms[0].parameters())
    assert all(p.grad is not None for p in net.rbms[1].parameters())
    assert all(p.grad is None for p in net.classifier.parameters())


def test_greedy_pretraining_then_fine_tuning_classifies_digits():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16.0).astype(np.float32), digits.target
    train, test = slice(0, 600), slice(600, 900)
    gn.manual_seed(0)
    net = DeepBeliefNet(64, [48, 32], 10, activation="tanh", dropout=0.1)
    error0 = float(net.rbms[0].reconstruction_error(gn.tensor(x[train])))
    for layer in range(2):
        opt = gn.optim.SGD(net.rbms[layer].parameters(), lr=0.1)
        for _ in range(4):
            for start in range(0, 600, 20):
                net.pretrain_step(layer, gn.tensor(x[start:start + 20]))
                opt.step()
    error1 = float(net.rbms[0].reconstruction_error(gn.tensor(x[train])))
    assert error1 < 0.8 * error0, (error0, error1)
    net.unroll()
    opt = gn.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    for _ in range(15):
        for start in range(0, 600, 20):
            loss = gn.nn.functional.cross_entropy(net(gn.tensor(x[start:start + 20])), gn.tensor(y[start:start + 20]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    accuracy = (net(gn.tensor(x[test])).numpy().argmax(1) == y[test]).mean()
    assert accuracy > 0.8, accuracy  # 0.88 measured; chance is 0.1


def test_bad_arguments_name_the_fault():
    with pytest.raises(ValueError, match="hidden_sizes must be a non-empty list of positive integers"):
        DeepBeliefNet(64, [], 10)
    with pytest.raises(ValueError, match="activation must be one of relu, sigmoid, tanh"):
        DeepBeliefNet(64, [8], 10, activation="elu")
    with pytest.raises(ValueError, match="dropout must be a probability"):
        DeepBeliefNet(64, [8], 10, dropout=1.0)
