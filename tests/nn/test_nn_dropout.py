"""Dropout: the Philox-4x32-10 mask kernel (known answers, reproducibility, statistics) and the layer's behaviour."""
import numpy as np
import pytest

import gpunet as gn
import gpunet.nn.functional as F
from gpunet.backend.references import dropout as kernel


@pytest.mark.parametrize("counter, key, expected", [
    # Random123's published known-answer vectors for Philox-4x32-10 (counter words, key words, output)
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
])
def test_philox_matches_random123_known_answers(counter, key, expected):
    words = kernel.philox4x32_10(np, tuple(np.array([c], dtype=np.uint32) for c in counter), key)
    assert tuple(int(w[0]) for w in words) == expected


def test_stream_layout_is_counter_block_then_lane_and_offsets_are_consistent():
    seed = 0x1234_5678_9ABC_DEF0
    stream = kernel.random_words(np, 40, seed, 0)
    blocks = kernel.philox4x32_10(np, (np.arange(10, dtype=np.uint32), np.zeros(10, np.uint32),
                                       np.zeros(10, np.uint32), np.zeros(10, np.uint32)),
                                  (seed & 0xFFFFFFFF, seed >> 32))
    np.testing.assert_array_equal(stream, np.stack(blocks, axis=1).ravel())
    for offset in (1, 3, 4, 7):
        np.testing.assert_array_equal(kernel.random_words(np, 20, seed, offset), stream[offset:offset + 20])


def test_mask_values_scale_and_reproducibility():
    backend = gn.backend.current()
    a, b, c = (backend.to_numpy(backend.dropout_mask((64, 33), 0.3, seed, 0, np.float32)) for seed in (99, 99, 100))
    assert a.dtype == np.float32 and a.shape == (64, 33)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert set(np.unique(a)) == {np.float32(0), np.float32(1 / 0.7)}
    # the decision is an integer comparison of the stream words with round(p * 2**32)
    words = kernel.random_words(np, 64 * 33, 99, 0).reshape(64, 33)
    np.testing.assert_array_equal(a == 0, words < round(0.3 * 2**32))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_mask_statistics(p):
    mask = gn.backend.current().dropout_mask((200_000,), p, 7, 0, np.float64)
    dropped = mask == 0
    n = dropped.size
    # the fraction dropped is within 5 standard deviations of p
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    # the mean of the mask is 1 (inverted dropout keeps expectations), within 5 standard deviations
    assert abs(mask.mean() - 1) < 5 * np.sqrt(p / (1 - p) / n)
    # neighbouring elements are uncorrelated
    d = dropped.astype(float)
    corr = np.corrcoef(d[:-1], d[1:])[0, 1]
    assert abs(corr) < 5 / np.sqrt(n)


def test_dropout_layer_train_and_eval():
    gn.manual_seed(3)
    layer = gn.nn.Dropout(0.25)
    x = gn.ones(50, 40, requires_grad=True)
    y = layer(x)
    kept = y.numpy() != 0
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.75, rtol=1e-6)
    assert 0.15 < 1 - kept.mean() < 0.35
    y.sum().backward()  # gradient flows through kept elements only, scaled
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 1 / 0.75, 0), rtol=1e-6)
    layer.eval()
    assert layer(x) is x
    assert layer.train() is layer and layer.training


def test_same_seed_same_mask_and_successive_calls_differ():
    x = gn.ones(30, 30)
    gn.manual_seed(11)
    first, second = F.dropout(x, 0.5).numpy(), F.dropout(x, 0.5).numpy()
    gn.manual_seed(11)
    again = F.dropout(x, 0.5).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)


def test_p_zero_is_identity_and_bad_p_is_rejected():
    x = gn.randn(4, 5)
    assert F.dropout(x, 0.0) is x
    assert gn.nn.Dropout(0.0)(x) is x
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            gn.nn.Dropout(p)
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            F.dropout(x, p)


def test_dropout_keeps_dtype_and_repr():
    x = gn.ones(3, 3, dtype=gn.float64)
    assert F.dropout(x, 0.5).dtype == np.float64
    assert repr(gn.nn.Dropout(0.2)) == "Dropout(p=0.2, inplace=False)"


def test_eval_mode_of_a_network_turns_dropout_off():
    gn.manual_seed(0)
    net = gn.nn.Sequential(gn.nn.Linear(8, 8), gn.nn.Dropout(0.5), gn.nn.Linear(8, 2))
    x = gn.randn(16, 8)
    net.eval()
    np.testing.assert_array_equal(net(x).numpy(), net(x).numpy())
    net.train()
    assert not np.array_equal(net(x).numpy(), net(x).numpy())
