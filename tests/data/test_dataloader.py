"""DataLoader: batching, drop_last, order fixed by (seed, epoch), exact mid-epoch resume."""
import numpy as np
import pytest

from gpunet.data import ArrayDataset, DataLoader


def make(n=10, **kwargs):
    x = np.arange(n, dtype=np.float32)[:, None] * np.array([1, -1], dtype=np.float32)
    y = np.arange(n, dtype=np.int64)
    return DataLoader(ArrayDataset(x, y), **kwargs)


def epoch_ids(loader):
    return [batch[1].tolist() for batch in loader]


def test_len_and_batch_sizes():
    assert len(make(10, batch_size=3)) == 4
    assert len(make(10, batch_size=3, drop_last=True)) == 3
    assert len(make(9, batch_size=3, drop_last=True)) == 3
    assert len(make(2, batch_size=3, drop_last=True)) == 0
    assert [len(b) for b in epoch_ids(make(10, batch_size=3))] == [3, 3, 3, 1]
    assert [len(b) for b in epoch_ids(make(10, batch_size=3, drop_last=True))] == [3, 3, 3]


def test_unshuffled_order_and_features_follow_labels():
    loader = make(7, batch_size=4)
    batches = list(loader)
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6]]
    x, y = batches[1]
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, np.stack([y, -y], axis=1))


def test_shuffled_epoch_is_a_permutation_fixed_by_seed_and_epoch():
    a, b, other_seed = make(50, batch_size=8, shuffle=True, seed=3), make(50, batch_size=8, shuffle=True, seed=3), \
        make(50, batch_size=8, shuffle=True, seed=4)
    epochs_a = [epoch_ids(a) for _ in range(3)]
    epochs_b = [epoch_ids(b) for _ in range(3)]
    assert epochs_a == epochs_b
    for ids in epochs_a:
        assert sorted(sum(ids, [])) == list(range(50))
    assert epochs_a[0] != epochs_a[1] != epochs_a[2]
    assert epoch_ids(other_seed) != epochs_a[0]
    # the order of epoch 2 does not depend on having iterated epochs 0 and 1
    fresh = make(50, batch_size=8, shuffle=True, seed=3)
    fresh.set_epoch(2)
    assert epoch_ids(fresh) == epochs_a[2]
    expected = np.random.default_rng([3, 2]).permutation(50)
    np.testing.assert_array_equal(fresh.order(2), expected)


def test_drop_last_with_shuffle_drops_different_samples_each_epoch():
    loader = make(10, batch_size=4, shuffle=True, drop_last=True, seed=0)
    dropped = []
    for _ in range(4):
        seen = sum(epoch_ids(loader), [])
        assert len(seen) == 8 and len(set(seen)) == 8
        dropped.append(frozenset(range(10)) - set(seen))
    assert len(set(dropped)) > 1


def test_resume_mid_epoch_gives_the_same_remaining_batches():
    reference = make(23, batch_size=4, shuffle=True, seed=11)
    full = [epoch_ids(reference) for _ in range(3)]

    interrupted = make(23, batch_size=4, shuffle=True, seed=11)
    epoch_ids(interrupted)
    seen = []
    for batch in interrupted:
        seen.append(batch[1].tolist())
        if len(seen) == 2:
            break
    state = interrupted.state_dict()
    assert state["epoch"] == 1 and state["batch"] == 2

    resumed = make(23, batch_size=4, shuffle=True, seed=11)
    resumed.load_state_dict(state)
    assert seen + epoch_ids(resumed) == full[1]
    assert epoch_ids(resumed) == full[2]


def test_set_epoch_with_start_batch():
    loader = make(20, batch_size=3, shuffle=True, seed=5)
    loader.set_epoch(4)
    whole = epoch_ids(loader)
    loader.set_epoch(4, batch=5)
    assert epoch_ids(loader) == whole[5:]
    with pytest.raises(ValueError, match="batch 8 is past the end of an epoch of 7 batches"):
        loader.set_epoch(4, batch=8)


def test_state_taken_after_the_last_batch_resumes_at_the_next_epoch():
    loader = make(6, batch_size=3, shuffle=True, seed=1)
    iterator = iter(loader)
    next(iterator), next(iterator)
    state = loader.state_dict()  # both batches handed out, generator not yet exhausted
    assert (state["epoch"], state["batch"]) == (0, 2)
    resumed = make(6, batch_size=3, shuffle=True, seed=1)
    resumed.load_state_dict(state)
    reference = make(6, batch_size=3, shuffle=True, seed=1)
    reference.set_epoch(1)
    assert epoch_ids(resumed) == epoch_ids(reference)


def test_state_from_a_different_loader_is_refused():
    state = make(10, batch_size=2, shuffle=True, seed=1).state_dict()
    with pytest.raises(ValueError, match="saved state has batch_size=2 but this loader has batch_size=5"):
        make(10, batch_size=5, shuffle=True, seed=1).load_state_dict(state)


def test_single_array_and_tuples():
    x = np.arange(12).reshape(6, 2)
    assert [b.tolist() for b in DataLoader(x, batch_size=4)] == [x[:4].tolist(), x[4:].tolist()]
    a, b, c = next(iter(DataLoader((x, x[:, 0], -x), batch_size=2)))
    np.testing.assert_array_equal(c, -a)


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        make(batch_size=0)
    with pytest.raises(ValueError, match=r"arrays differ in length along axis 0: \[3, 2\]"):
        DataLoader((np.zeros(3), np.zeros(2)))
    with pytest.raises(TypeError, match="needs an ArrayDataset, a NumPy array or a tuple"):
        DataLoader([1, 2, 3])
