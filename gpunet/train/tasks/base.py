"""The contract of a training task: what one training step does, on which data, with which models, optimizers and
losses, what it measures and what it draws. The ``Trainer`` is one loop for every task; a ``Task`` fills it in.

A task is a class registered under a name (``@register_task("gan")``); ``task: {type: gan, <keys>}`` in a config
picks it. Adding a task is its module in ``gpunet/train/tasks/`` (found and imported by the package, no table to
edit), its tests and its configs.

Lifecycle (the same from a config and from Python)::

    task = TaskClass(**keys)                       # the config's task keys (its __init__ parameters)
    models = {name: ... for name in task.models}   # config model:/models:, else task.build_model(name, info)
    params = task.param_groups(name, models[name]) # one optimizer per model over these (finetune: frozen layers,
    optimizers = {name: Optimizer(params, ...)}    #   per-group learning rates)
    trainer = Trainer(models, loss_fn, optimizers, task=task, ...)   # binds: task.trainer, .models, .optimizers
    trainer.fit(train_loader, val_loader, epochs)  # per batch: task.train_step(x, y); per epoch: task.end_epoch
    task.summary(splits); task.final_artifacts(directory, splits)   # the runner, at the end of a run

Config keys. Each key of the ``task:`` section is a parameter of the task's ``__init__``: its default is the
signature's, its kind the annotation's (``int``, ``float``, ``bool``, ``str``, ``X | None``, ``list[X]``,
``dict[str, X]`` whose values ``__init__`` checks), and the class states the rest in ``keys`` as ``Key(doc,
ge=..., gt=..., le=..., lt=..., choices=...)``.
``gpunet.config.schema`` turns that into the checked, documented ``task:`` section (``register_task`` checks that
``keys`` and the signature agree), so ``docs/config.md`` documents every task with no second table. ``__init__`` only
stores its keys, each as an attribute of the same name (no models, no data yet), and may raise ValueError (naming the
key) for a value or combination of keys it refuses.

Models, optimizers, losses. ``models`` names the task's networks (``("model",)``, or e.g. ``("generator",
"discriminator")``). A config gives a one-model task's network as ``model:`` and the networks of a task with several
as ``models: {<name>: <model form>}``; the names in ``own_models`` may be left out, and ``build_model(name, info)``
then builds them from the task's keys and the data (an RBM from ``n_hidden``, ODE trial networks, ...). ``models``
and ``own_models`` may be set per instance in ``__init__`` when the keys decide them (one RBM per hidden layer of a
DBN). In the Trainer, ``trainer.model`` is the one model, or a ``gpunet.nn.ModuleDict`` of the named models (so
``state_dict`` keys are ``<name>.<key>``). Every model has its own optimizer: the config's ``optimizer:`` section
builds one per model, and ``optimizers: {<name>: <optimizer section>}`` overrides it per model; a ``scheduler:``
section gives every optimizer a scheduler of its own. ``loss_fn`` is the config's ``loss:`` (``uses_loss``;
``default_loss`` when the config has none); any other term (a KL divergence, a penalty, a critic's loss) is the
task's own business and is reported by name.

Steps. ``train_step(x, y)`` gets one batch of the training loader as NumPy arrays (``y`` as the dataset gives it;
``data`` says what the task reads from it) and returns its named scalar losses as gpunet ``Tensor``s -- the mean
over the batch's samples, still on the device (the Trainer's ``EpochCollector`` brings them to the host at its log
points, so a step never waits for a GPU).
``"loss"`` is required: it is the objective logged as ``train_loss``, shown by the progress display and checked
for NaN/infinity; other names (``mse``, ``kl``, ``d_loss``, ``g_loss``, ...) are logged as ``train_<name>``.
``loss_names`` lists every name a step returns, so a config's ``monitor: val_<name>`` is checked before training.
(A value may also be a plain number, e.g. a perceptron's count of mistakes.)
The step updates the weights itself through ``self.update(name, loss)`` (zero the model's gradients, backward,
average over data-parallel ranks, clip to ``trainer.grad_clip``, step its optimizer), or, for a rule that is not
gradient descent (CD-k, the perceptron rule), by setting the parameters' ``.grad`` and calling
``self.apply_gradients(name)``. A step may update several models and one model several times. Randomness inside a
step (noise, latent codes, Gibbs sampling) must come from ``gpunet.random`` / ``gpunet.ops.randn`` & co., whose
state every checkpoint saves, so resume is exact. A step may read ``self.trainer.epoch`` (completed epochs),
``self.trainer.global_step`` (batches trained so far) and ``self.trainer.device``, and may end training after this
epoch with ``self.trainer.stop(reason)`` (the perceptron rule converged). ``eval_step(x, y)`` returns the same names for a batch of an
evaluation split; it runs in evaluation mode under ``no_grad`` (use ``gpunet.enable_grad()`` inside it for a
quantity that needs derivatives, such as a contractive penalty or an ODE residual). A task whose outputs feed the
config's ``trainer.metrics`` (accuracy, mse, ...) returns ``Step(losses, outputs, targets)`` instead of the dict
and sets ``supports_metrics``.

Data parallel: every rank calls ``train_step`` on its share of each batch, possibly an empty one (``len(x) == 0``)
for the last batch; a step must then still make the same ``update``/``apply_gradients`` calls in the same order (each
is an all-reduce), passing ``None`` as the loss, and return ``{}``. Gradients are averaged weighted by each rank's
share; the logged losses are those of the whole batch.

Epochs, artifacts, summary. ``end_epoch(epoch)`` runs after each epoch's validation, before the callbacks (so a
checkpoint taken then includes its effects), and returns extra figures for the epoch's logs (e.g. a DBN's stage).
``epoch_artifacts(directory, epoch, splits)`` draws the per-epoch pictures of a run (reconstruction or sample grids,
filter grids) into the run directory; ``final_artifacts(directory, splits)`` those drawn once at the end (a 2-D code
plot, solution vs exact); ``summary(splits)`` returns the task's figures for ``summary.json`` besides the loss and
metrics of every split that the runner adds anyway (``test_mse`` of an autoencoder is its ``test_`` eval figure;
``elbo``, ``max_abs_error``, a GAN's quality figure come from here). These three run on rank 0 only, with the models
in evaluation mode under ``no_grad`` (``gpunet.enable_grad()`` where derivatives are needed), on whole (unsharded,
unshuffled, unaugmented) loaders, and must not draw from ``gpunet.random`` (use a ``numpy.random.default_rng(seed)``
of their own), so a run with pictures trains the same numbers as one without. Pictures are PNG files written
atomically (``gpunet.train.plots`` / ``gpunet.train.atomic``); without matplotlib they are skipped with the one-line
hint.

State. ``state_dict()`` / ``load_state_dict(state)`` carry the task's own state (the DBN stage, a step counter) in
every checkpoint, so resume is exact, also mid-epoch: plain Python values and NumPy arrays only
(``gpunet.train.checkpoint`` stores them without pickle). State that differs between data-parallel ranks (persistent
CD chains) goes in ``rank_state_dict()`` / ``load_rank_state_dict(state)`` instead: the checkpoint keeps every
rank's, and on resume rank r gets saved rank r's (None, to start afresh, when the run was saved by fewer ranks), or
what ``saved_rank_state`` makes of them (the language model re-splits its carried states by rows).
Models, optimizers and the RNG are saved by the Trainer.
Multi-model checkpoints keep one model ``state_dict`` with keys prefixed ``<name>.`` and one optimizer entry holding
``{<name>: state}``; a one-model task's checkpoint is exactly the classic format.
"""
from __future__ import annotations

import inspect
import numbers
import operator
import re
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["DATA_KINDS", "Key", "ModelShapeError", "Step", "TASKS", "Task", "register_task"]

DATA_KINDS = {
    "labelled": "(inputs, targets) pairs; the step learns targets from inputs",
    "inputs": "inputs alone (the labels, if the data has them, serve only its plots)",
    "generated": "points generated by the data (a dataset registered in gpunet.data, e.g. ODE collocation points)",
}


@dataclass(frozen=True)
class Key:
    """What a config needs to know about one task key besides its type and default (both read from ``__init__``):
    a one-line ``doc`` and the allowed values (bounds for numbers, list items too; ``choices`` for strings)."""

    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None


@dataclass
class Step:
    """A step's result when its outputs feed ``trainer.metrics``: the named ``losses`` (as a plain dict return) and
    the batch's ``outputs`` (a Tensor) and host ``targets`` the metrics compare them with."""

    losses: dict
    outputs: Any = None
    targets: Any = None


class ModelShapeError(ValueError):
    """Raised by ``Task.dry_run`` when model ``model`` does not fit the task (a decoder whose output is not an
    input's shape); the runner reports it as a config error at that model's section."""

    def __init__(self, model: str, message: str):
        super().__init__(message)
        self.model = model


_BOUNDS = (("ge", operator.ge, ">="), ("gt", operator.gt, ">"), ("le", operator.le, "<="), ("lt", operator.lt, "<"))


def _annotation(annotation) -> tuple[bool, str | None, bool]:
    """(a list?, the item type's name: bool, int, float or str, None allowed?) of a task key's annotation, e.g.
    ``list[int]``, ``float | None``."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    is_list = text.startswith(("list[", "tuple["))
    inner = text[text.index("[") + 1:-1] if is_list else text
    kind = next((t for t in ("bool", "int", "float", "str") if re.search(rf"\b{t}\b", inner)), None)
    return is_list, kind, "None" in text.split("[")[0] or text.endswith("| None")


def check_keys(task: "Task", **values) -> None:
    """Refuse from Python what the config refuses from YAML: each value checked against its annotation in
    ``__init__`` (true/false, an integer, a number, a string, a list of them; None where the annotation allows it)
    and its ``Key``'s bounds or choices (each item of a list), with a ValueError naming the task and the key. Every
    task's ``__init__`` calls it with its keys."""
    cls = type(task)
    parameters = inspect.signature(cls.__init__).parameters
    for name, value in values.items():
        key = cls.keys[name]
        is_list, kind, optional = _annotation(parameters[name].annotation)

        def refuse(allowed: str):
            raise ValueError(f"task {cls.name}: {name} must be {allowed}, got {value!r}")
        if value is None and optional:
            continue
        if is_list and not isinstance(value, (list, tuple)):
            refuse("a list")
        for item in value if is_list else [value]:
            if key.choices is not None:
                if item not in key.choices:
                    refuse(f"one of {', '.join(map(str, key.choices))}")
            elif kind == "bool":
                if not isinstance(item, bool):
                    refuse("true or false")
            elif kind == "str":
                if not isinstance(item, str):
                    refuse("a string" if not is_list else "a list of strings")
            elif kind in ("int", "float"):
                if isinstance(item, bool) or not isinstance(item, numbers.Real):
                    refuse("a number" if kind == "float" else "an integer")
                if kind == "int" and not isinstance(item, numbers.Integral):
                    refuse("an integer")
                for attribute, holds, sign in _BOUNDS:
                    bound = getattr(key, attribute)
                    if bound is not None and not holds(item, bound):
                        refuse(f"{sign} {bound:g}")


TASKS: dict[str, type["Task"]] = {}


def register_task(name: str):
    """Class decorator: make ``task: {type: name}`` choose this Task subclass. Checks that every entry of ``keys``
    is a keyword parameter of ``__init__`` and every parameter has a ``Key``, so the config cannot drift from the
    class."""
    def register(cls):
        if not (inspect.isclass(cls) and issubclass(cls, Task)):
            raise TypeError(f"register_task({name!r}): {cls!r} is not a Task subclass")
        if name in TASKS and TASKS[name] is not cls:
            raise ValueError(f"register_task: the name {name!r} is taken by {TASKS[name].__qualname__}")
        parameters = set() if cls.__init__ is object.__init__ else \
            set(list(inspect.signature(cls.__init__).parameters)[1:])
        missing, extra = parameters - set(cls.keys), set(cls.keys) - parameters
        if missing or extra:
            raise TypeError(f"task {name!r} ({cls.__qualname__}): keys and __init__ must name the same parameters; "
                            f"without a Key: {sorted(missing)}, not parameters: {sorted(extra)}")
        for attribute in ("models", "own_models", "loss_names"):
            if not isinstance(getattr(cls, attribute), tuple):
                raise TypeError(f"task {name!r}: {attribute} must be a tuple")
        if "loss" not in cls.loss_names or not set(cls.own_models) <= set(cls.models) or cls.data not in DATA_KINDS:
            raise TypeError(f"task {name!r}: loss_names must include 'loss', own_models be among models and data one "
                            f"of {', '.join(DATA_KINDS)}")
        cls.name = name
        TASKS[name] = cls
        return cls
    return register


class Task:
    """One kind of training run (see the module docstring for the whole contract). Subclasses set the class
    attributes, take their config keys in ``__init__`` and implement ``train_step`` and ``eval_step``."""

    name: ClassVar[str] = ""  # set by register_task
    #: names of the task's networks; one optimizer each. ("model",) is given as the config's ``model:``.
    #: Once bound to a Trainer, ``self.models`` is the dict name -> Module (``tuple(self.models)``: the names).
    models: ClassVar[tuple] = ("model",)
    #: models the task can build itself (``build_model``) when the config leaves them out
    own_models: ClassVar[tuple] = ()
    #: what the task reads from the batches: a key of DATA_KINDS
    data: ClassVar[str] = "labelled"
    #: whether the step uses ``loss_fn`` (the config's ``loss:``); a config ``loss:`` is refused when it does not
    uses_loss: ClassVar[bool] = True
    #: the loss name (gpunet.config.schema.LOSSES) used when the config has no ``loss:``; None: ``loss:`` required
    default_loss: ClassVar[str | None] = None
    #: every name ``train_step`` / ``eval_step`` return ("loss" first); the config may monitor ``val_<name>``
    loss_names: ClassVar[tuple] = ("loss",)
    #: whether steps return ``Step(losses, outputs, targets)`` so that ``trainer.metrics`` apply
    supports_metrics: ClassVar[bool] = False
    #: the config's ``trainer.metrics`` when it gives none (None: accuracy for a classification loss, else none)
    default_metrics: ClassVar[tuple | None] = None
    #: whether the training batches are parallel streams (``gpunet.data.StreamLoader``: row b of a batch continues
    #: row b of the previous one, never shuffled) instead of the shuffled ``DataLoader``'s
    stateful_batches: ClassVar[bool] = False
    #: the config keys (each an ``__init__`` parameter): name -> Key
    keys: ClassVar[dict] = {}

    # set by Trainer (bind)
    trainer: Any = None
    loss_fn: Any = None

    def bind(self, trainer, models: dict, optimizers: dict, loss_fn) -> None:
        """Called by the Trainer: give the task its trainer, its models and optimizers (dicts by name, on the
        trainer's device) and its loss. A task that needs to prepare more (buffers on the device) extends this."""
        self.trainer, self.models, self.optimizers, self.loss_fn = trainer, models, optimizers, loss_fn

    @property
    def model(self):
        """The task's one model (a one-model task's ``models['model']``)."""
        if len(self.models) != 1:
            raise AttributeError(f"task {self.name!r} has several models ({', '.join(self.models)}); use "
                                 "self.models[name]")
        return next(iter(self.models.values()))

    # ----- building (before the Trainer) -------------------------------------------------------------------------
    def build_model(self, name: str, info):
        """The model ``name`` (one of ``own_models``) built from the task's keys and the data's ``info``
        (a ``gpunet.data.DatasetInfo``: input_shape, num_classes, ...), when the config does not give it."""
        raise NotImplementedError(f"task {self.name!r} cannot build its model {name!r}; give it in the config")

    def dry_run(self, check, info) -> None:
        """Before training, run each model once on zero inputs, so a shape mistake is a config error naming the
        layer: ``check(name, input_shape, input_from=None)`` runs model ``name`` on a zero batch of that sample
        shape and returns the output's sample shape (``input_from`` names where the input comes from in messages,
        e.g. "the encoder"; default: the data). Default: the one model on the data's ``info.input_shape``; a task
        with several models chains them (the decoder on the encoder's output shape) or gives each its input (a
        generator its latent size), raising ``ModelShapeError`` for a model that does not fit."""
        if len(tuple(self.models)) == 1:
            check(tuple(self.models)[0], info.input_shape)

    def param_groups(self, name: str, model):
        """What model ``name``'s optimizer optimizes: ``model.parameters()``, or a list of parameter-group dicts
        (``{"params": [...], "lr": ...}``, PyTorch's form) for per-group learning rates or frozen layers."""
        return model.parameters()

    # ----- steps (inside fit / evaluate) ---------------------------------------------------------------------------
    def train_step(self, x, y) -> dict | Step:
        """Train on one batch (NumPy arrays) and return its named scalar losses (Tensors), ``"loss"`` among them."""
        raise NotImplementedError

    def eval_step(self, x, y) -> dict | Step:
        """The same named losses for one batch of an evaluation split (eval mode, no_grad)."""
        raise NotImplementedError

    def predict_step(self, x):
        """The outputs ``Trainer.predict`` returns for a batch of inputs (default: the one model's outputs)."""
        return self.model(self.input(x))

    def derived(self, means: dict) -> dict:
        """Figures computed from one pass's results (``means``: its mean losses and metrics by name, no prefix),
        logged beside them with the same prefix (a language model's perplexity from its mean NLL); default none."""
        return {}

    def end_epoch(self, epoch: int) -> dict:
        """After epoch ``epoch`` (1-based) and its validation: extra figures for the epoch's logs (default none)."""
        return {}

    # ----- helpers for steps ---------------------------------------------------------------------------------------
    def input(self, array):
        """``array`` as a gpunet Tensor on the trainer's device."""
        return self.trainer.to_device(array)

    def update(self, name, loss) -> None:
        """One gradient step of model ``name`` (or of a tuple of names, e.g. ``("encoder", "decoder")``, all stepped
        on the one backward) on the scalar Tensor ``loss`` (None: this rank's share of the batch is empty): zero
        their gradients, backward, average over ranks, clip, step each optimizer."""
        self.trainer.update(name, loss)

    def apply_gradients(self, name: str) -> None:
        """Step model ``name``'s optimizer on the ``.grad`` its parameters hold now (set by the task for a rule that
        is not backprop; averaged over ranks and clipped first)."""
        self.trainer.apply_gradients(name)

    # ----- pictures and figures (the runner, in eval mode) ---------------------------------------------------------
    def epoch_artifacts(self, directory: str, epoch: int, splits: dict) -> list[str]:
        """Draw this epoch's pictures into ``directory`` (``splits``: name -> DataLoader of train/val/test);
        returns the paths written."""
        return []

    def final_artifacts(self, directory: str, splits: dict) -> list[str]:
        """Draw the pictures made once, at the end of a run; returns the paths written."""
        return []

    def summary(self, splits: dict) -> dict:
        """The task's own figures for summary.json (besides every split's losses and metrics)."""
        return {}

    # ----- state ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The task's own state for checkpoints (plain values and NumPy arrays)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``'s state."""

    def rank_state_dict(self) -> dict:
        """The part of the task's state that is this rank's own in a data-parallel run (persistent CD chains): every
        rank's is saved, in rank order (a single process is rank 0 of 1)."""
        return {}

    def saved_rank_state(self, saved: list, rank: int, world_size: int) -> dict | None:
        """This rank's ``load_rank_state_dict`` argument from every saved rank's ``rank_state_dict()`` (``saved``, in
        rank order) in a run of ``world_size`` ranks: saved rank ``rank``'s, None beyond the saved ranks. A task
        whose per-rank state is its rows of the global batch overrides it to re-split them for another number of
        ranks."""
        return saved[rank] if rank < len(saved) else None

    def load_rank_state_dict(self, state: dict | None) -> None:
        """Restore ``rank_state_dict()``'s state of this rank; None when the checkpoint has none for it (saved by
        fewer ranks, or before ranks had state): start that part afresh."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={getattr(self, k, '?')!r}" for k in self.keys)
        return f"{type(self).__name__}({shown})"
