"""The model's dry run: one forward pass on a zero batch of the data's input shape, before any training work.

Config checking sees each value, and the Linear chain, but not the shapes that Conv, Pool and Flatten layers
produce. The dry run does: it feeds 2 zero samples through the built model (evaluation mode, no gradients, the
random state left as it was), layer by layer for ``layers:`` models, and turns the first failure into a
ConfigError naming the layer's config path, where it was written, the shape that arrived, what the layer expects
and how to fix it. For classification losses it also checks that the model gives a score per class, and for every
loss that the loss can be computed on the output and a zero target of the data's kind.
"""
from __future__ import annotations

from math import prod

from .. import random
from ..autograd import no_grad
from ..kinds import Problem, format_path
from ..nn import Flatten
from ..nn.losses import loss_target
from ..ops import zeros
from ..train.tasks.classify import Classify
from .builders import build_loss
from .errors import ConfigError
from .layers import LAYERS
from .load import where
from .schema import LOSSES, TASK_TYPES

BATCH = 2


def input_dtype(model) -> str:
    """``"int64"`` for a model whose first layer declares ``input_kind = "index"`` (an Embedding), else
    ``"float32"``."""
    first = next((m for m in model.modules() if not any(True for _ in m.children())), None)
    return "int64" if getattr(first, "input_kind", "float") == "index" else "float32"


def _shape(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


def _problem(config: dict, path: tuple, message: str, hint: str, at: tuple | None = None,
             label: str | None = None) -> ConfigError:
    source, line = where(config, at or path)
    return ConfigError([Problem(source, line, path, f"{message}; hint: {hint}", label=label)])


def _section(config: dict, where_: tuple) -> dict:
    """The model section at ``where_``: ``("model",)`` or ``("models", name)``."""
    return config["model"] if where_ == ("model",) else config["models"][where_[1]]


def _previous(layers: list, index: int, where_: tuple) -> str:
    return f"the previous layer, {format_path(where_ + ('layers', index - 1))} ({layers[index - 1]['type']}),"


def _gives(layers: list, index: int, shape: tuple, input_from: str, what: str, where_: tuple) -> str:
    """'<what reaches layer index> outputs <what>', e.g. 'the previous layer, model.layers[3] (Flatten), outputs
    160 features' or 'the data (digits) gives samples of shape (1, 8, 8), that is 1 channel(s)'."""
    if index == 0:
        return f"{input_from} gives samples of shape {_shape(shape[1:])}, that is {what}"
    return f"{_previous(layers, index, where_)} outputs {what}"


def _layer_hint(config: dict, layers: list, index: int, shape: tuple, input_from: str, where_: tuple) -> str:
    """How to fix layer ``index`` of ``model.layers`` given the ``shape`` (batch axis first) that reaches it."""
    layer, spec = layers[index], LAYERS[layers[index]["type"]]
    if spec.input_dims and len(shape) not in spec.input_dims:
        wanted = " or ".join(f"{d}-D" for d in spec.input_dims)
        if index == 0 and config["data"].get("flatten") and len(shape) < min(spec.input_dims):
            return f"{layer['type']} takes {wanted} input but the data is flattened: set data.flatten: false"
        if index > 0 and LAYERS[layers[index - 1]["type"]].cls is Flatten:
            return f"{layer['type']} takes {wanted} input: remove the Flatten before it or move it after this layer"
        given = _gives(layers, index, shape, input_from, f"{len(shape)}-D", where_)
        return f"{layer['type']} takes {wanted} input but {given}"
    if spec.input_size is not None and spec.input_size[1] == -1 and not spec.input_dims and len(shape) > 2:
        given = _gives(layers, index, shape, input_from, _shape(shape), where_)
        return (f"{given}; {layer['type']} works on the last axis: add {{type: Flatten}} before it and set "
                f"{spec.input_size[0]}: {prod(shape[1:])}")
    if spec.input_size is not None:
        key, axis = spec.input_size
        if -len(shape) <= axis < len(shape) and shape[axis] != layer[key]:
            what = "features" if axis == -1 or len(shape) == 2 else "channels"
            given = _gives(layers, index, shape, input_from, f"{shape[axis]} {what}", where_)
            return f"{given}: set {key}: {shape[axis]}"
    return (f"{_gives(layers, index, shape, input_from, _shape(shape), where_)}; compare it with this layer's "
            "arguments (gpunet summary shows every layer's output shape)")


def _expects(layer: dict, shape: tuple) -> str:
    spec = LAYERS[layer["type"]]
    parts = []
    if spec.input_size is not None:
        key, axis = spec.input_size
        parts.append(f"{key} = {layer[key]} along {'the last axis' if axis == -1 else f'axis {axis}'}")
    if spec.input_dims and len(shape) not in spec.input_dims:
        parts.append(" or ".join(f"{d}-D" for d in spec.input_dims) + " input")
    return f" and expects {', '.join(parts)}" if parts else ""


def _run_layers(config: dict, model, x, input_from: str, where_: tuple = ("model",)):
    layers = _section(config, where_)["layers"]
    for index, module in enumerate(model):
        try:
            x = module(x)
        except Exception as exc:  # any failure of a layer on the shape it is given is the config's to fix
            layer, path = layers[index], where_ + ("layers", index)
            key = (LAYERS[layer["type"]].input_size or (None,))[0]
            shape = tuple(x.shape)
            raise _problem(config, path, f"the dry run failed: the layer receives input of shape {_shape(shape)}"
                           f"{_expects(layer, shape)} ({_error_text(exc)})",
                           _layer_hint(config, layers, index, shape, input_from, where_),
                           at=path + (key,) if key else None, label=layer["type"]) from exc
    return x


def _check_scores(config: dict, output, num_classes: int | None) -> None:
    """A classification loss needs (batch, classes) scores with a column per class of the data, or for the binary
    losses one score per sample and two classes."""
    loss = config["loss"]["name"]
    target_kind = LOSSES[loss].cls.target_kind
    if num_classes is None or target_kind not in ("index", "binary"):
        return
    shape = tuple(getattr(output, "shape", ()))
    binary = target_kind == "binary"
    if (binary and shape in ((BATCH,), (BATCH, 1)) and num_classes <= 2) or \
            (not binary and len(shape) == 2 and shape[1] >= num_classes):
        return
    model, last = config["model"], None
    if "layers" in model:
        last = next((i for i in range(len(model["layers"]) - 1, -1, -1)
                     if LAYERS[model["layers"][i]["type"]].out_key), None)
    size = 1 if binary else num_classes
    if binary and num_classes > 2:
        path, label, key, fix = ("loss", "name"), None, None, f"for {num_classes} classes use cross_entropy"
    elif last is not None:
        layer = model["layers"][last]
        key = LAYERS[layer["type"]].out_key
        path, label, fix = ("model", "layers", last), layer["type"], f"set {key}: {size}"
    else:
        path, label, key, fix = ("model",), None, None, f"make the model output {size} score(s) per sample"
    needs = f"one score per sample, ({BATCH},) or ({BATCH}, 1), and data with 2 classes" if binary else \
        f"({BATCH}, C) class scores with C >= {num_classes}"
    got = f"shape {_shape(shape)}" if shape else type(output).__name__
    raise _problem(config, path, f"the model's output ({got} for a batch of {BATCH}) does not fit loss {loss}, "
                   f"which needs {needs}; the data has {num_classes} classes", fix,
                   at=path + (key,) if key else None, label=label)


def zero_targets(batch: int, target_shape: tuple | None = None, device=None, num_classes: int | None = 0):
    """Zero targets of a batch as a dataset gives them: class indices (batch,) int64, or with ``target_shape``
    (``DatasetInfo.target_shape``) targets (batch, *target_shape): int64 class indices per position when the data
    has classes (a character model's next characters), else float32 values."""
    if target_shape is None:
        return zeros(batch, dtype="int64", device=device)
    return zeros(batch, *target_shape, dtype="int64" if num_classes else "float32", device=device)


def _check_loss(config: dict, output, num_classes: int | None, input_from: str, target_shape=None) -> None:
    """Compute the configured loss on the dry run's output and zero targets of the data's kind (``zero_targets``),
    passed as the Trainer passes them. Skipped when the data is unknown (``num_classes`` None, e.g. ``gpunet summary
    --input-shape``), its targets are not classes and their shape is not given (0 classes, no ``target_shape``) or
    the model returns several tensors."""
    if num_classes is None or (not num_classes and target_shape is None) or not hasattr(output, "shape"):
        return
    loss_fn, name, shape = build_loss(config), config["loss"]["name"], tuple(output.shape)
    labels = zero_targets(BATCH, target_shape, output.device, num_classes)
    kind = "class indices" if target_shape is None else "targets"
    targets = f"the {kind} of shape {_shape(tuple(labels.shape))} that {input_from} gives"
    try:
        loss_fn(output, loss_target(loss_fn, labels, output))
    except Exception as exc:  # the loss cannot pair this output with these targets: the config's to fix
        failed = f"the dry run failed: loss {name} on the model's output of shape {_shape(shape)} and {targets}"
        if target_shape is None and len(shape) >= 2 and prod(shape[1:]) > 1:  # labels, a loss wanting rows
            raise _problem(config, ("loss", "name"), failed, f"{name} expects targets shaped like the model output, "
                           f"{_shape(shape)}; {input_from} gives one class index per sample ({num_classes} classes), "
                           f"not one-hot rows: use loss: {{name: cross_entropy}} (or nll after a LogSoftmax), or "
                           f"make the model output one value per sample") from exc
        fix = f"choose a loss that takes the model's output {_shape(shape)} and {targets}" if target_shape is None \
            else f"make the model's output {_shape(tuple(labels.shape))} like the targets, or choose another loss"
        raise _problem(config, ("loss", "name"), f"{failed} ({_error_text(exc)})", fix) from exc


def check_model(config: dict, model, input_shape, num_classes: int | None = None,
                input_from: str = "the data", name: str = "model", target_shape: tuple | None = None):
    """Run ``model`` (built from ``config``: its model ``name``) on a zero batch of ``BATCH`` samples of
    ``input_shape``; returns the output's shape without the batch axis (None when the model returns no tensor).

    Raises ConfigError: for ``layers:`` models naming the first failing layer (``model.layers[i] (Type)``), the
    file and line or override, the shape it received, what it expects and a hint; for ``arch:``/``import:`` models
    naming ``model`` and the error; naming ``loss.name`` when the loss cannot take the output and a target of the
    data's kind (for supervised tasks, whose loss compares ``model:``'s output with the labels).
    ``num_classes``: the data's classes (None: data unknown), for the checks of the output; ``target_shape``: the
    per-sample shape of value targets (``DatasetInfo.target_shape``; None: class indices).
    ``input_from`` says where ``input_shape`` came from (shown in hints). The model is left in the mode it was in,
    and gpunet's random state is restored, so a run with the dry run trains exactly as one without.
    """
    from .builders import model_path

    where_ = model_path(config, name) or ("task",)  # None: the task builds this model from its keys
    section = _section(config, where_) if where_ != ("task",) else {}
    input_shape = tuple(input_shape)
    params = list(model.parameters())
    x = zeros(BATCH, *input_shape, dtype=input_dtype(model), device=params[0].device if params else None)
    was_training, state = model.training, random.get_rng_state()
    model.eval()
    try:
        with no_grad():
            if section and "layers" in section:  # None: a model the task built itself
                output = _run_layers(config, model, x, input_from, where_)
            else:
                try:
                    output = model(x)
                except Exception as exc:  # the model's own code failed on this input: show its message
                    what = f"{format_path(where_ + ('args',))}" if "arch" in section else \
                        f"{section['import']} and its args" if "import" in section else "the task's keys"
                    raise _problem(config, where_, f"the dry run on a zero batch of shape "
                                   f"{_shape((BATCH, *input_shape))} failed: {_error_text(exc)}",
                                   f"check {what} against the samples of shape {_shape(input_shape)} from "
                                   f"{input_from}") from exc
            if where_ == ("model",) and config.get("loss") is not None and _supervised(config):
                if target_shape is None:
                    _check_scores(config, output, num_classes)
                _check_loss(config, output, num_classes, input_from, target_shape)
    finally:
        model.train(was_training)
        random.set_rng_state(state)
    return tuple(output.shape[1:]) if hasattr(output, "shape") else None


def _supervised(config: dict) -> bool:
    """Whether the task's loss compares the model's output with the data's labels (classify and its kin)."""
    return issubclass(TASK_TYPES[config.get("task", {"type": "classify"})["type"]].cls, Classify)
