"""The dataset registry: named sources of arrays, and ``load_dataset`` which splits and normalises them.

A source is a function registered with ``@register_dataset("name")``. It takes its own keyword options
(a path, column names, sample counts; ``seed`` if it draws random numbers) and returns ``RawData``.
``load_dataset`` adds what every dataset shares: seeded train/validation/test splits, flattening and
normalisation fitted on the training split only.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import DatasetError
from .normalize import NORMALIZATIONS, Normalizer
from .splits import ordered_split_indices, split_indices

__all__ = [
    "ArrayDataset", "Dataset", "DatasetError", "DatasetInfo", "RawData", "dataset_names", "dataset_options",
    "load_dataset", "register_dataset", "require",
]


@dataclass(frozen=True)
class RawData:
    """What a source returns: all samples, an optional predefined test set, and what is known about them.

    ``value_range`` is the range raw feature values can take (e.g. ``(0, 255)`` for 8-bit images), used by
    ``normalize="scale"``. ``vocabulary``: x holds its token ids (kept int64, saved with the run). ``targets``:
    ``"classes"`` (1-D class indices) or ``"values"`` (any numbers of any shape per sample: regression, next steps;
    never stratified). ``ordered``: samples are in time order, so test and validation are the last ones.
    ``persistence``: for forecasts, the function of raw inputs x giving the "nothing changes" forecast in the shape
    of y (the last observed step); ``load_dataset`` scores it as the dataset's ``baselines``.
    """
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None
    value_range: tuple[float, float] | None = None
    vocabulary: object | None = None
    targets: str = "classes"
    ordered: bool = False
    persistence: Callable | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """Metadata of a loaded dataset: per-sample input shape, number of classes, class names if known, the number
    of training samples, and for value targets (regression, forecasts) their per-sample shape (None: class
    indices)."""
    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...] | None = None
    train_size: int | None = None
    target_shape: tuple[int, ...] | None = None


class ArrayDataset:
    """Features (float32) and integer labels (int64) of one split; indexable like a PyTorch dataset."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        if len(x) != len(y):
            raise DatasetError(f"features and labels differ in length: {len(x)} samples but {len(y)} labels")
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index):
        return self.x[index], self.y[index]

    def __repr__(self) -> str:
        return f"ArrayDataset(x={self.x.shape} {self.x.dtype}, y={self.y.shape} {self.y.dtype})"


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: the three splits (validation/test None when empty), metadata and the fitted normaliser;
    ``vocabulary`` (token datasets) maps text to the ids in x, and its ``state_dict()`` belongs in the run.
    ``baselines``: scores of a forecast that needs no model on the held-out splits, for forecasting datasets:
    ``val_persistence_mse``, ``test_persistence_mse`` and their ``_rmse``, in the units of y (the model's test_loss
    under the MSE loss compares with them)."""
    train: ArrayDataset
    validation: ArrayDataset | None
    test: ArrayDataset | None
    info: DatasetInfo
    normalizer: Normalizer
    vocabulary: object | None = None
    baselines: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Source:
    name: str
    function: Callable[..., RawData]
    parameters: dict  # option name -> default (inspect.Parameter.empty when required)


_REGISTRY: dict[str, _Source] = {}

# Options every dataset accepts, handled by load_dataset itself, with their defaults.
COMMON_OPTIONS = {
    "seed": 0,
    "validation_split": 0.1,
    "test_split": None,  # 0.2 for sources without a test set of their own
    "stratify": True,
    "normalize": "none",
    "flatten": False,
    "classes": None,
    "train_per_class": None,
}
DEFAULT_TEST_SPLIT = 0.2


def register_dataset(name: str):
    """Decorator registering ``function(**options) -> RawData`` as dataset ``name``."""
    def decorate(function):
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is already registered (by {_REGISTRY[name].function.__module__})")
        params = {}
        for p in inspect.signature(function).parameters.values():
            if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
                raise TypeError(f"dataset source {name!r} must take named options only, not {p}")
            if p.name in COMMON_OPTIONS and p.name != "seed":
                raise TypeError(f"dataset source {name!r}: option {p.name!r} is handled by load_dataset")
            params[p.name] = p.default
        _REGISTRY[name] = _Source(name, function, params)
        return function
    return decorate


def dataset_names() -> list[str]:
    """Names of all registered datasets, sorted."""
    return sorted(_REGISTRY)


def dataset_options(name: str) -> dict:
    """Options dataset ``name`` accepts, with defaults (``inspect.Parameter.empty`` marks a required one)."""
    source = _lookup(name)
    return {**COMMON_OPTIONS, **source.parameters}


def require(module: str, dataset: str, install: str):
    """Import ``module`` for ``dataset``, or raise DatasetError naming the ``install`` command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DatasetError(f"dataset {dataset!r} needs the package {module!r} ({exc}); install it with: {install}") \
            from None


def _lookup(name: str) -> _Source:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DatasetError(f"unknown dataset {name!r}.{hint} Known datasets: {', '.join(dataset_names())}")
    return _REGISTRY[name]


def _check_fraction(option: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise DatasetError(f"{option} must be a number in [0, 1), got {value!r}")
    return float(value)


def _as_labels(y, dataset: str, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise DatasetError(f"dataset {dataset!r}: {what} labels must be one-dimensional, got shape {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise DatasetError(f"dataset {dataset!r}: {what} labels must be whole class indices, got non-integers")
    elif y.dtype.kind not in "iub":
        raise DatasetError(f"dataset {dataset!r}: {what} labels must be integers, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise DatasetError(f"dataset {dataset!r}: {what} labels must be >= 0, found {int(y.min())}")
    return y


def _as_targets(y, dataset: str, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "iufb" or y.ndim < 1:
        raise DatasetError(f"dataset {dataset!r}: {what} targets must be numbers, one entry per sample; got dtype "
                           f"{y.dtype}, shape {y.shape}")
    return y.astype(np.int64 if y.dtype.kind in "iub" else np.float32)


def _as_features(x, n_labels: int, dataset: str, what: str, token_ids: bool = False) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "iufb":
        raise DatasetError(f"dataset {dataset!r}: {what} features must be numbers, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DatasetError(f"dataset {dataset!r}: {what} features need shape (samples, ...), got {x.shape}")
    if len(x) != n_labels:
        raise DatasetError(f"dataset {dataset!r}: {what} has {len(x)} samples but {n_labels} labels")
    return x.astype(np.int64 if token_ids else np.float32)


def _keep_classes(x: np.ndarray, y: np.ndarray, subset) -> tuple[np.ndarray, np.ndarray]:
    """The samples of the labels in ``subset``, relabelled by their position in it."""
    new = np.full(max(max(subset), int(y.max(initial=-1))) + 1, -1, dtype=np.int64)
    new[list(subset)] = np.arange(len(subset))
    kept = new[y] >= 0
    return x[kept], new[y[kept]]


def _few_per_class(x, y, count: int, rng: np.random.Generator, dataset: str):
    """``count`` samples of each class (seeded choice), in their original order."""
    chosen = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if len(members) < count:
            raise DatasetError(f"dataset {dataset!r}: train_per_class is {count}, but class {int(label)} has only "
                               f"{len(members)} training samples after the splits")
        chosen.append(rng.permutation(members)[:count])
    kept = np.sort(np.concatenate(chosen))
    return x[kept], y[kept]


def load_dataset(name: str, **options) -> Dataset:
    """Load dataset ``name`` split into train/validation/test and normalised.

    Common options: ``seed`` (splits, and data of synthetic sets), ``validation_split`` (fraction of the
    training data held out for validation, default 0.1), ``test_split`` (fraction of all data held out for
    testing, default 0.2, only for datasets without a test set of their own), ``stratify`` (keep class
    proportions in every split, default True), ``normalize`` (``"none"``, ``"standard"``, ``"minmax"`` or
    ``"scale"``; statistics from the training split only), ``flatten`` (images to vectors), ``classes`` (keep only
    these labels, renumbered 0, 1, ... in the order given, e.g. digits 5-9 for a transfer-learning task) and
    ``train_per_class`` (keep that many seeded-random training samples of each class, after the test and validation
    splits: few labels, full evaluation sets).
    Other options go to the source; ``dataset_options(name)`` lists them.
    """
    source = _lookup(name)
    allowed = {**COMMON_OPTIONS, **source.parameters}
    for key in options:
        if key not in allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise DatasetError(f"dataset {name!r} has no option {key!r}.{hint} Options: {', '.join(sorted(allowed))}")
    missing = [k for k, v in source.parameters.items() if v is inspect.Parameter.empty and k not in options]
    if missing:
        raise DatasetError(f"dataset {name!r} needs the option(s) {', '.join(missing)}")
    common = {k: options.pop(k, default) for k, default in COMMON_OPTIONS.items()}
    seed = common["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"seed must be a non-negative integer, got {seed!r}")
    validation_split = _check_fraction("validation_split", common["validation_split"])
    test_split = common["test_split"]
    if test_split is not None:
        _check_fraction("test_split", test_split)
    for flag in ("stratify", "flatten"):
        if not isinstance(common[flag], bool):
            raise DatasetError(f"{flag} must be true or false, got {common[flag]!r}")
    subset, per_class = common["classes"], common["train_per_class"]
    if subset is not None and (not isinstance(subset, (list, tuple)) or not subset or len(set(subset)) != len(subset)
                               or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in subset)):
        raise DatasetError(f"classes must be a list of distinct labels (integers >= 0), got {subset!r}")
    if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
        raise DatasetError(f"train_per_class must be an integer >= 1, got {per_class!r}")
    normalize = common["normalize"]
    if normalize not in NORMALIZATIONS:
        raise DatasetError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    if "seed" in source.parameters:
        options["seed"] = seed

    raw = source.function(**options)
    classes = raw.targets == "classes"
    as_targets = _as_labels if classes else _as_targets
    token_ids = raw.vocabulary is not None
    if token_ids and normalize != "none":
        raise DatasetError(f"dataset {name!r} holds token ids: remove the option normalize ({normalize!r})")
    y = as_targets(raw.y, name, "training")
    x = _as_features(raw.x, len(y), name, "training", token_ids)
    if (subset is not None or per_class is not None) and not classes:
        raise DatasetError(f"dataset {name!r} has no classes: remove the options classes and train_per_class")
    rng = np.random.default_rng([seed, 0x5EED])  # splits draw from their own stream, apart from the source's
    stratify = common["stratify"] and classes

    def hold_out(y, fraction):
        return ordered_split_indices(len(y), fraction) if raw.ordered else split_indices(y, fraction, rng, stratify)
    if raw.x_test is not None:
        if test_split is not None:
            raise DatasetError(f"dataset {name!r} has a test set of its own: remove the option test_split")
        y_test = as_targets(raw.y_test, name, "test")
        x_test = _as_features(raw.x_test, len(y_test), name, "test", token_ids)
        if x_test.shape[1:] != x.shape[1:]:
            raise DatasetError(f"dataset {name!r}: test samples have shape {x_test.shape[1:]}, "
                               f"training samples {x.shape[1:]}")
    else:
        test_fraction = DEFAULT_TEST_SPLIT if test_split is None else float(test_split)
        keep, held = hold_out(y, test_fraction)
        x, y, x_test, y_test = x[keep], y[keep], x[held], y[held]
    keep, held = hold_out(y, validation_split)
    x, y, x_val, y_val = x[keep], y[keep], x[held], y[held]
    class_names, num_classes = raw.class_names, raw.num_classes
    if subset is not None:
        known = num_classes if num_classes is not None else 1 + max(int(a.max(initial=-1)) for a in (y, y_val, y_test))
        unknown = [c for c in subset if c >= known]
        if unknown:
            raise DatasetError(f"dataset {name!r}: classes {unknown} do not exist (its labels are 0..{known - 1})")
        (x, y), (x_val, y_val), (x_test, y_test) = (_keep_classes(a, b, subset)
                                                     for a, b in ((x, y), (x_val, y_val), (x_test, y_test)))
        class_names = tuple(class_names[c] if class_names else str(c) for c in subset)
        num_classes = len(subset)
    if per_class is not None:
        x, y = _few_per_class(x, y, per_class, np.random.default_rng([seed, 0xFE11]), name)
    if len(x) == 0:
        raise DatasetError(f"dataset {name!r}: no training samples left after the splits")
    baselines = {} if raw.persistence is None else _persistence_scores(raw.persistence, {"val": (x_val, y_val),
                                                                                         "test": (x_test, y_test)})

    if common["flatten"]:
        x, x_val, x_test = (a.reshape(len(a), int(np.prod(a.shape[1:]))) for a in (x, x_val, x_test))
    normalizer = Normalizer.fit(normalize, x, raw.value_range, name)
    x, x_val, x_test = (normalizer(a) for a in (x, x_val, x_test))

    labels_max = max(int(a.max()) for a in (y, y_val, y_test) if a.size) if classes else -1
    num_classes = num_classes if num_classes is not None else labels_max + 1
    if class_names is not None and len(class_names) != num_classes:
        raise DatasetError(f"dataset {name!r}: {len(class_names)} class names for {num_classes} classes")
    if classes and labels_max >= num_classes:
        raise DatasetError(f"dataset {name!r}: label {labels_max} out of range for {num_classes} classes")
    info = DatasetInfo(name, tuple(x.shape[1:]), num_classes, class_names, len(x),
                       None if classes else tuple(y.shape[1:]))

    def split(a, b):
        return ArrayDataset(a, b) if len(a) else None
    return Dataset(ArrayDataset(x, y), split(x_val, y_val), split(x_test, y_test), info, normalizer, raw.vocabulary,
                   baselines)


def _persistence_scores(forecast, splits: dict) -> dict:
    """``<split>_persistence_mse`` and ``_rmse`` of ``forecast(x)`` against y on each non-empty split (float64)."""
    scores = {}
    for split, (x, y) in splits.items():
        if len(y):
            mse = float(np.mean((np.asarray(forecast(x), dtype=np.float64) - y) ** 2))
            scores.update({f"{split}_persistence_mse": mse, f"{split}_persistence_rmse": float(np.sqrt(mse))})
    return scores
