"""The GAN/VAE quality figure (gpunet.train.sample_quality): the figures against hand-worked values, the judge on the
real digits, mode collapse and noise told apart from the data, the global generator left untouched."""
from __future__ import annotations

import numpy as np
import pytest

import gpunet as gn
from gpunet.data import load_dataset
from gpunet.train import sample_quality as sq


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0, normalize="scale", flatten=True)


@pytest.fixture(scope="module")
def judge(digits):
    return sq.train_judge(digits.train.x, digits.train.y, 10, steps=300)


def test_figures_of_worked_probabilities():
    p = np.array([[0.95, 0.05], [0.5, 0.5], [0.2, 0.8], [0.05, 0.95]])
    figures = sq.judge_images(p)
    assert figures["class_histogram"] == [2, 2]  # the tie goes to the first class, as argmax
    assert figures["confidence"] == pytest.approx((0.95 + 0.5 + 0.8 + 0.95) / 4)
    assert figures["confident_fraction"] == 0.5
    assert figures["class_entropy"] == pytest.approx(1.0)
    marginal = p.mean(0)
    kl = [np.sum(row * np.log(row / marginal)) for row in p]
    assert figures["classifier_score"] == pytest.approx(np.exp(np.mean(kl)))
    collapsed = sq.judge_images(np.tile([[0.0, 1.0, 0.0]], (5, 1)))
    assert collapsed["class_histogram"] == [0, 5, 0]
    assert collapsed["class_entropy"] == 0.0 and collapsed["classifier_score"] == pytest.approx(1.0)


def test_judge_tells_digits_from_collapse_and_noise(digits, judge):
    test = digits.test
    train = digits.train.x
    quality = sq.sample_quality(judge, test.x, test.x, test.y, train)
    assert quality["judge_test_accuracy"] > 0.93
    real = quality["real_test"]
    assert quality["samples"] == real
    assert real["class_histogram"] == [int(c) for c in np.bincount(
        sq.class_probabilities(judge, test.x).argmax(1), minlength=10)]
    assert real["class_entropy"] > 0.98 and real["classifier_score"] > 7 and real["confident_fraction"] > 0.8

    sevens = np.repeat(test.x[test.y == 7][:1], 200, axis=0)  # a generator that found one good digit
    collapsed = sq.sample_quality(judge, sevens, test.x, test.y, train)["samples"]
    assert collapsed["class_histogram"][7] == 200 and collapsed["class_entropy"] == 0.0
    assert collapsed["classifier_score"] == pytest.approx(1.0)

    noise = sq.sample_quality(judge, np.random.default_rng(0).random((200, 64)), test.x, test.y, train)["samples"]
    assert noise["confident_fraction"] < real["confident_fraction"] - 0.3
    assert noise["classifier_score"] < real["classifier_score"] / 2
    grey = sq.sample_quality(judge, 0.3 + 0.1 * np.random.default_rng(1).random((200, 64)), test.x, test.y, train)
    assert grey["samples"]["nearest_train_distance"] > 1.5 * real["nearest_train_distance"]  # far from any digit
    copies = sq.sample_quality(judge, train[:200], test.x, test.y, train)["samples"]
    assert copies["nearest_train_distance"] == pytest.approx(0.0, abs=1e-6)  # memorised digits sit on the data


def test_nearest_distance_matches_brute_force():
    rng = np.random.default_rng(0)
    a, b = rng.random((7, 5)), rng.random((300, 5))
    expected = np.mean([min(np.linalg.norm(x - y) for y in b) for x in a])
    assert sq.nearest_distance(a, b, chunk=3) == pytest.approx(expected, rel=1e-9)


def test_judge_is_reproducible_and_leaves_the_global_generator_alone(digits):
    gn.manual_seed(11)
    state = gn.random.get_rng_state()
    first = sq.train_judge(digits.train.x[:200], digits.train.y[:200], 10, steps=5, seed=3)
    assert gn.random.get_rng_state() == state
    with gn.no_grad():  # as the runner calls Task.summary
        second = sq.train_judge(digits.train.x[:200], digits.train.y[:200], 10, steps=5, seed=3)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_judge_refuses_unlabelled_data():
    with pytest.raises(ValueError, match=r"train_judge: needs labelled images, one class index in \[0, 10\)"):
        sq.train_judge(np.zeros((4, 64)), np.array([0, 1, 2, 10]), 10)



def test_distances_look_at_a_fixed_draw_of_a_large_training_set(digits, judge, monkeypatch):
    monkeypatch.setattr(sq, "DISTANCE_REFERENCE", 50)
    train, test = digits.train.x, digits.test
    drawn = train[np.random.default_rng(0).choice(len(train), 50, replace=False)]
    quality = sq.sample_quality(judge, test.x[:20], test.x[:20], test.y[:20], train)
    assert quality["samples"]["nearest_train_distance"] == pytest.approx(sq.nearest_distance(test.x[:20], drawn))
