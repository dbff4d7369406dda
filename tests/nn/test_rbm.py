"""BernoulliRBM against scikit-learn's BernoulliRBM (same update on the same batch with the same random draws),
brute-force enumeration (free energy) and float64 NumPy (CD-k)."""
import itertools

import numpy as np
import pytest
from scipy.special import expit
from sklearn.neural_network import BernoulliRBM as SkRBM

import gpunet as gn
from gpunet.nn import BernoulliRBM


class Draws:
    """A generator that hands out prepared uniform draws (gpunet side: ``random``; scikit-learn side: ``uniform``)."""

    def __init__(self, arrays):
        self.arrays = list(arrays)

    def random(self, shape):
        out = self.arrays.pop(0)
        assert out.shape == tuple(shape)
        return out

    def uniform(self, size):
        return self.random(size)


def _setup(n=10, n_visible=12, n_hidden=5, seed=0, digits=False):
    rng = np.random.default_rng(seed)
    v = (rng.random((n, n_visible)) < 0.4).astype(np.float64)
    if digits:  # scikit-learn's digits scaled to [0, 1], as in its BernoulliRBM example
        from sklearn.datasets import load_digits
        v = load_digits().data[:n, :n_visible] / 16.0
    w = rng.normal(0, 0.3, (n_hidden, n_visible))
    b_h, b_v = rng.normal(0, 0.2, n_hidden), rng.normal(0, 0.2, n_visible)
    rbm = BernoulliRBM(n_visible, n_hidden, dtype=np.float64)
    rbm.load_state_dict({"weight": w, "h_bias": b_h, "v_bias": b_v})
    sk = SkRBM(n_components=n_hidden, learning_rate=0.05, batch_size=n, random_state=0)
    sk.components_, sk.intercept_hidden_, sk.intercept_visible_ = w.copy(), b_h.copy(), b_v.copy()
    return rng, v, rbm, sk


def _assert_same_parameters(rbm, sk):
    np.testing.assert_allclose(rbm.weight.numpy(), sk.components_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rbm.h_bias.numpy(), sk.intercept_hidden_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(rbm.v_bias.numpy(), sk.intercept_visible_, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("digits", [False, True], ids=["binary", "digits"])
def test_cd1_update_matches_scikit_learn(device, digits):
    """CD-1 is scikit-learn's _fit with its chain started at a sample of h given the batch."""
    rng, v, rbm, sk = _setup(n_visible=64 if digits else 12, digits=digits)
    u_h, u_v, u_chain = rng.random((10, 5)), rng.random(v.shape), rng.random((10, 5))
    before = rbm.weight.numpy().copy()
    assert rbm.contrastive_divergence(gn.tensor(v, dtype=np.float64), k=1, generator=Draws([u_h, u_v])) is None
    gn.optim.SGD(rbm.parameters(), lr=0.05).step()

    sk.h_samples_ = (u_h < expit(v @ sk.components_.T + sk.intercept_hidden_)).astype(np.float64)
    sk._fit(v, Draws([u_v, u_chain]))
    _assert_same_parameters(rbm, sk)
    assert np.abs(rbm.weight.numpy() - before).max() > 1e-3  # the step moved the weights


def test_persistent_cd_matches_scikit_learn_over_several_batches(device):
    """scikit-learn's BernoulliRBM is PCD-1: three steps with the same chain and draws give the same numbers."""
    rng, v, rbm, sk = _setup(seed=1)
    chain0 = (rng.random((10, 5)) < 0.5).astype(np.float64)
    sk.h_samples_ = chain0.copy()
    chain = gn.tensor(chain0, dtype=np.float64)
    opt = gn.optim.SGD(rbm.parameters(), lr=0.05)
    for _ in range(3):
        u_v, u_chain = rng.random((10, 12)), rng.random((10, 5))
        chain = rbm.contrastive_divergence(gn.tensor(v, dtype=np.float64), chain=chain, generator=Draws([u_v, u_chain]))
        opt.step()
        sk._fit(v, Draws([u_v, u_chain]))
        _assert_same_parameters(rbm, sk)
        np.testing.assert_array_equal(chain.numpy(), sk.h_samples_)


def test_pseudo_likelihood_matches_score_samples(device):
    rng, v, rbm, sk = _setup(n=7)
    index = np.random.RandomState(0).randint(0, 12, 7)  # what score_samples draws with random_state=0
    ours = rbm.pseudo_likelihood(gn.tensor(v, dtype=np.float64), index=index).numpy()
    np.testing.assert_allclose(ours, sk.score_samples(v), rtol=1e-12)


def test_free_energy_is_minus_log_of_the_sum_over_hidden_states():
    rng, v, rbm, _ = _setup(n=4, n_visible=3, n_hidden=4)
    w, b_h, b_v = rbm.weight.numpy(), rbm.h_bias.numpy(), rbm.v_bias.numpy()
    states = np.array(list(itertools.product([0.0, 1.0], repeat=4)))
    expected = [-np.log(np.exp(x @ b_v + states @ b_h + states @ w @ x).sum()) for x in v]
    np.testing.assert_allclose(rbm.free_energy(gn.tensor(v, dtype=np.float64)).numpy(), expected, rtol=1e-12)


def test_cd_k_against_numpy():
    """CD-3 (Hinton's recipe, scikit-learn's statistics) written out in float64 NumPy with the same draws."""
    rng, v, rbm, _ = _setup(seed=2)
    w, b_h, b_v = rbm.weight.numpy().copy(), rbm.h_bias.numpy().copy(), rbm.v_bias.numpy().copy()
    draws = [rng.random((10, 5))] + [rng.random((10, 12)) if i % 2 == 0 else rng.random((10, 5)) for i in range(5)]
    rbm.contrastive_divergence(gn.tensor(v, dtype=np.float64), k=3, generator=Draws(draws))

    h_pos = expit(v @ w.T + b_h)
    h = (draws[0] < h_pos) * 1.0
    for step in range(3):
        v_neg = (draws[1 + 2 * step] < expit(h @ w + b_v)) * 1.0
        h_neg = expit(v_neg @ w.T + b_h)
        if step < 2:
            h = (draws[2 + 2 * step] < h_neg) * 1.0
    np.testing.assert_allclose(rbm.weight.grad.numpy(), -(h_pos.T @ v - h_neg.T @ v_neg) / 10, rtol=1e-12)
    np.testing.assert_allclose(rbm.h_bias.grad.numpy(), -(h_pos - h_neg).mean(0), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(rbm.v_bias.grad.numpy(), -(v - v_neg).mean(0), rtol=1e-12, atol=1e-15)


def test_reconstruction_error_is_the_mean_field_mse():
    _, v, rbm, _ = _setup()
    w, b_h, b_v = rbm.weight.numpy(), rbm.h_bias.numpy(), rbm.v_bias.numpy()
    expected = ((v - expit(expit(v @ w.T + b_h) @ w + b_v)) ** 2).mean()
    assert float(rbm.reconstruction_error(gn.tensor(v, dtype=np.float64))) == pytest.approx(expected, rel=1e-12)


def test_training_on_digits_lowers_reconstruction_error_and_raises_pseudo_likelihood(device):
    from sklearn.datasets import load_digits

    gn.manual_seed(0)
    x = gn.tensor((load_digits().data[:400] > 7).astype(np.float32))
    rbm = BernoulliRBM(64, 32)
    opt = gn.optim.SGD(rbm.parameters(), lr=0.1)
    index = np.random.default_rng(0).integers(0, 64, 400)
    error0, pl0 = float(rbm.reconstruction_error(x)), float(rbm.pseudo_likelihood(x, index=index).mean())
    for _ in range(10):
        for start in range(0, 400, 20):
            rbm.contrastive_divergence(x[start:start + 20])
            opt.step()
    error1, pl1 = float(rbm.reconstruction_error(x)), float(rbm.pseudo_likelihood(x, index=index).mean())
    assert error1 < 0.6 * error0, (error0, error1)
    assert pl1 > pl0 + 5, (pl0, pl1)


def test_same_seed_same_training():
    def run():
        gn.manual_seed(3)
        rbm = BernoulliRBM(6, 4)
        x = gn.tensor((np.arange(24).reshape(4, 6) % 3 == 0).astype(np.float32))
        rbm.contrastive_divergence(x, k=2)
        return rbm.weight.grad.numpy()

    np.testing.assert_array_equal(run(), run())


def test_bad_arguments_name_the_fault():
    rbm = BernoulliRBM(6, 4)
    with pytest.raises(ValueError, match=r"contrastive_divergence: expected visible units of shape \(batch, 6\)"):
        rbm.contrastive_divergence(gn.zeros(3, 5))
    with pytest.raises(ValueError, match="k \\(Gibbs steps\\) must be an integer >= 1"):
        rbm.contrastive_divergence(gn.zeros(3, 6), k=0)
    with pytest.raises(ValueError, match="persistent chain must have shape \\(chains, 4\\)"):
        rbm.contrastive_divergence(gn.zeros(3, 6), chain=gn.zeros(3, 5))
    with pytest.raises(ValueError, match="n_hidden must be a positive integer"):
        BernoulliRBM(6, 0)
    with pytest.raises(ValueError, match="index must hold one visible unit"):
        rbm.pseudo_likelihood(gn.zeros(2, 6), index=[0, 6])
