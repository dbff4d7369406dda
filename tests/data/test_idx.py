"""The IDX reader against files written byte by byte here, following the published MNIST layout."""
import gzip
import struct

import numpy as np
import pytest

from gpunet.data import DatasetError, load_dataset, read_idx


def idx_bytes(code: int, shape, payload: bytes) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + payload


def write(path, data: bytes):
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


IMAGES = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4) * 10


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_reads_uint8_images_plain_and_gzip(tmp_path, name):
    path = write(tmp_path / name, idx_bytes(0x08, (2, 3, 4), IMAGES.tobytes()))
    got = read_idx(path)
    assert got.dtype == np.uint8 and got.shape == (2, 3, 4)
    np.testing.assert_array_equal(got, IMAGES)


def test_reads_labels_and_big_endian_types(tmp_path):
    labels = read_idx(write(tmp_path / "l", idx_bytes(0x08, (5,), bytes([3, 1, 4, 1, 5]))))
    np.testing.assert_array_equal(labels, [3, 1, 4, 1, 5])
    shorts = read_idx(write(tmp_path / "s", idx_bytes(0x0B, (2,), struct.pack(">hh", -2, 300))))
    assert shorts.dtype == np.int16 and shorts.dtype.isnative
    np.testing.assert_array_equal(shorts, [-2, 300])
    floats = read_idx(write(tmp_path / "f", idx_bytes(0x0D, (1, 2), struct.pack(">ff", 1.5, -0.25))))
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(floats, [[1.5, -0.25]])
    doubles = read_idx(write(tmp_path / "d", idx_bytes(0x0E, (1,), struct.pack(">d", 1 / 3))))
    assert doubles[0] == 1 / 3


def test_bad_magic_names_the_file(tmp_path):
    path = write(tmp_path / "bad", b"\x12\x34" + idx_bytes(0x08, (1,), b"\x00")[2:])
    with pytest.raises(DatasetError, match="bad magic number") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_unknown_type_code(tmp_path):
    path = write(tmp_path / "code", idx_bytes(0x07, (1,), b"\x00"))
    with pytest.raises(DatasetError, match="unknown type code 0x07"):
        read_idx(path)


@pytest.mark.parametrize("name", ["cut", "cut.gz"])
def test_truncated_data(tmp_path, name):
    data = idx_bytes(0x08, (2, 3, 4), IMAGES.tobytes())[:-5]
    path = write(tmp_path / name, data)
    with pytest.raises(DatasetError, match=r"truncated: shape \(2, 3, 4\) of uint8 needs 40 bytes, found 35") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_header_trailing_bytes_and_zero_dimensions(tmp_path):
    with pytest.raises(DatasetError, match="truncated inside its header"):
        read_idx(write(tmp_path / "h", idx_bytes(0x08, (2, 3, 4), b"")[:10]))
    with pytest.raises(DatasetError, match="longer than its header says"):
        read_idx(write(tmp_path / "t", idx_bytes(0x08, (2,), b"\x01\x02\x03")))
    with pytest.raises(DatasetError, match="0 dimensions"):
        read_idx(write(tmp_path / "z", b"\x00\x00\x08\x00"))
    with pytest.raises(DatasetError, match="too short"):
        read_idx(write(tmp_path / "s", b"\x00\x00"))


def test_corrupt_gzip_and_missing_file(tmp_path):
    good = gzip.compress(idx_bytes(0x08, (2, 3, 4), IMAGES.tobytes()))
    path = tmp_path / "broken.gz"
    path.write_bytes(good[:20])
    with pytest.raises(DatasetError, match="not a readable gzip file") as info:
        read_idx(path)
    assert str(path) in str(info.value)
    with pytest.raises(DatasetError, match="IDX file not found: .*nowhere"):
        read_idx(tmp_path / "nowhere")


def mnist_dir(tmp_path, n_train=30, n_test=10, gz=True, test=True):
    """A directory of MNIST-named IDX files with 4x5 images whose first pixel is the label."""
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    parts = [("train", n_train)] + ([("t10k", n_test)] if test else [])
    arrays = {}
    for prefix, n in parts:
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 256, (n, 4, 5), dtype=np.uint8)
        images[:, 0, 0] = labels
        write(tmp_path / f"{prefix}-images-idx3-ubyte{ext}", idx_bytes(0x08, images.shape, images.tobytes()))
        write(tmp_path / f"{prefix}-labels-idx1-ubyte{ext}", idx_bytes(0x08, labels.shape, labels.tobytes()))
        arrays[prefix] = (images, labels)
    return arrays


def test_fashion_mnist_from_any_directory(tmp_path):
    arrays = mnist_dir(tmp_path)
    ds = load_dataset("fashion_mnist", path=str(tmp_path), validation_split=0, normalize="scale")
    assert ds.info.input_shape == (1, 4, 5) and ds.info.num_classes == 10
    assert ds.info.class_names[0] == "T-shirt/top" and ds.info.class_names[9] == "Ankle boot"
    images, labels = arrays["t10k"]
    np.testing.assert_array_equal(ds.test.y, labels)
    np.testing.assert_allclose(ds.test.x[:, 0], images / 255.0, rtol=1e-6)
    assert ds.train.x.dtype == np.float32 and ds.train.y.dtype == np.int64 and len(ds.train) == 30


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.*not found.*apt-get install dataset-fashion-mnist"):
        load_dataset("fashion_mnist", path=str(tmp_path))


def test_idx_dataset_plain_files_without_test_set(tmp_path):
    arrays = mnist_dir(tmp_path, n_train=50, gz=False, test=False)
    ds = load_dataset("idx", path=str(tmp_path), validation_split=0, test_split=0.2, seed=3)
    assert len(ds.train) == 40 and len(ds.test) == 10
    # the first pixel encodes the label, so each sample kept its own label through the split
    for split in (ds.train, ds.test):
        np.testing.assert_array_equal(split.x[:, 0, 0, 0], split.y)
    assert sorted(np.concatenate([ds.train.y, ds.test.y])) == sorted(arrays["train"][1])
    assert ds.info.num_classes == 10 and ds.info.class_names is None


def test_idx_dataset_named_files_and_mismatched_counts(tmp_path):
    mnist_dir(tmp_path)
    short = write(tmp_path / "short-labels", idx_bytes(0x08, (3,), bytes([0, 1, 2])))
    with pytest.raises(DatasetError, match="holds 30 images but .*short-labels holds 3 labels"):
        load_dataset("idx", train_images=str(tmp_path / "train-images-idx3-ubyte.gz"), train_labels=str(short))
    with pytest.raises(DatasetError, match="train-images-idx3-ubyte.gz should hold labels .* swapped"):
        load_dataset("idx", train_images=str(tmp_path / "train-labels-idx1-ubyte.gz"),
                     train_labels=str(tmp_path / "train-images-idx3-ubyte.gz"))
    with pytest.raises(DatasetError, match="give both test_images and test_labels"):
        load_dataset("idx", train_images=str(tmp_path / "train-images-idx3-ubyte.gz"),
                     train_labels=str(tmp_path / "train-labels-idx1-ubyte.gz"),
                     test_images=str(tmp_path / "t10k-images-idx3-ubyte.gz"))


@pytest.mark.skipif(not __import__("os").path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_package():
    ds = load_dataset("fashion_mnist", validation_split=0, normalize="scale")
    assert ds.train.x.shape == (60000, 1, 28, 28) and ds.test.x.shape == (10000, 1, 28, 28)
    np.testing.assert_array_equal(np.bincount(ds.train.y), [6000] * 10)
    np.testing.assert_array_equal(np.bincount(ds.test.y), [1000] * 10)
    assert ds.train.x.min() == 0.0 and ds.train.x.max() == 1.0
