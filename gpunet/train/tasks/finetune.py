"""``finetune``: transfer learning (seed 002). A classifier starts from pretrained weights, keeps some layers frozen,
gets a new head and trains the rest with a learning rate per group; beside it, the same network trained from a fresh
initialisation on the same batches (``baseline``) says what the pretraining was worth.

The config's ``model:`` is the network with the new output size. Its weights come from ``weights`` (any file
``gpunet.train.transfer.load_weights`` reads: another run's ``checkpoints/best.npz``, a PyTorch state_dict, a
safetensors file) or from ``pretrain`` (the run first trains the same network, with a head of its own, on other
classes of its dataset: ``gpunet.runner.pretrain``), all but those of the ``head`` layer, which keeps its fresh
initialisation. The step is ``classify``'s; the baseline adds ``scratch_loss`` and ``scratch_accuracy`` to every
split's figures (so summary.json has ``test_accuracy`` next to ``test_scratch_accuracy``).
"""
from __future__ import annotations

import copy
import os

import numpy as np

from ...nn.losses import loss_target
from ..distributed import DistributedError
from ..transfer import TransferError, check_layer, freeze, layer_names, load_body, load_weights, parameter_groups
from .base import Key, check_keys, register_task
from .classify import Classify


@register_task("finetune")
class Finetune(Classify):
    """Fine-tune a pretrained classifier: frozen layers, a new head, per-group learning rates, a from-scratch
    baseline. Example: configs/transfer_digits.yaml (pre-trains on digits 0-4, fine-tunes on 5-9). From Python, build
    the optimizer over ``task.param_groups("model", model)`` (which freezes)."""

    loss_names = ("loss", "scratch_loss", "scratch_accuracy")
    keys = {
        "weights": Key("pretrained weights: a gpunet checkpoint (e.g. another run's checkpoints/best.npz), an "
                       ".npz of arrays, a PyTorch state_dict (.pt/.pth, read with weights_only) or a .safetensors "
                       "file; relative paths from the current directory; null: none (or pretrain)"),
        "pretrain": Key("pre-train in this run instead of reading weights: {classes: [labels of the dataset], "
                        "epochs: N, lr: (null: the optimizer's), batch_size: (null: trainer.batch_size)}; the same "
                        "network with a head for those classes trains on all their training samples (the data "
                        "section's splits, so no test image is trained on), is saved as checkpoints/pretrained.npz "
                        "and logged in pretrain/metrics.jsonl and as pretrain_* in summary.json; null: none"),
        "head": Key("the output layer (module path as in the state_dict keys, e.g. '4'): replaced, i.e. not loaded "
                    "from the weights and trained from its fresh initialisation; null: the last layer with "
                    "parameters"),
        "freeze": Key("layers (module paths, e.g. ['0']) whose pretrained weights stay fixed: no gradient, no "
                      "optimizer state"),
        "body_lr": Key("learning rate of the pretrained layers that are not frozen (null: the optimizer's lr, which "
                       "the head always uses)", ge=0),
        "baseline": Key("also train the same network from a fresh initialisation, with the same optimizer settings "
                        "on the same batches, reported as scratch_loss and scratch_accuracy"),
    }

    def __init__(self, weights: str | None = None, pretrain: dict | None = None, head: str | None = None,
                 freeze: list[str] = (), body_lr: float | None = None, baseline: bool = True):
        check_keys(self, weights=weights, pretrain=pretrain, head=head, freeze=freeze, body_lr=body_lr,
                   baseline=baseline)
        if weights is not None and pretrain is not None:
            raise ValueError("pretrain: give either weights (a file) or pretrain (train them in this run), not both")
        self.weights, self.pretrain, self.head, self.freeze, self.body_lr, self.baseline = (
            weights, _checked_pretrain(pretrain), head, list(freeze), body_lr, baseline)

    def head_layer(self, model) -> str:
        """The head's module path: ``head``, or the model's last layer with parameters."""
        if self.head is None:
            return layer_names(model)[-1]
        check_layer(model, self.head, "head: layer")
        return self.head

    def param_groups(self, name, model):
        """Freeze the ``freeze`` layers; the body (if ``body_lr``) and the head as two groups."""
        head = self.head_layer(model)
        if head in self.freeze:
            raise ValueError(f"freeze: the head {head!r} is replaced and must train; remove it from freeze")
        freeze(model, self.freeze)
        body = [layer for layer in layer_names(model) if layer != head] if self.body_lr is not None else []
        return parameter_groups(model, None, {layer: self.body_lr for layer in body})

    def bind(self, trainer, models, optimizers, loss_fn):
        super().bind(trainer, models, optimizers, loss_fn)
        self.head_layer(self.model)
        if self.weights is not None:
            if not os.path.isfile(self.weights):
                raise TransferError(f"task.weights: {self.weights!r} is not a file (looked in {os.getcwd()}); give "
                                    f"a checkpoint of another run (e.g. runs/<name>/checkpoints/best.npz), or let this "
                                    f"run pre-train with task.pretrain instead of task.weights")
            self.load_body(self.weights)
        self.scratch = self.scratch_optimizer = None
        if self.baseline:
            self.scratch = copy.deepcopy(self.model)
            for module in self.scratch.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()  # a fresh initialisation (gpunet.random: saved with the run)
            self.scratch.requires_grad_(True)
            optimizer = optimizers["model"]
            settings = {k: v for k, v in optimizer.param_groups[-1].items() if k != "params"}  # the head's
            self.scratch_optimizer = type(optimizer)([{"params": list(self.scratch.parameters()), **settings}])

    def load_body(self, path: str) -> None:
        """Load the weights in ``path`` into the model, all but the head's (which keeps its fresh initialisation)."""
        load_body(self.model, load_weights(path), self.head_layer(self.model), f"the weights in {path}")

    def _scratch(self, x, y, train: bool):
        """The baseline's loss (a Tensor) and accuracy on a batch; a training step of it when ``train``."""
        self.scratch.train(train)
        output = self.scratch(self.input(x))
        loss = self._loss_of(output, y)
        if train:
            self.scratch_optimizer.param_groups[0]["lr"] = self.trainer.optimizer.param_groups[-1]["lr"]  # schedules
            self.scratch_optimizer.zero_grad()
            loss.backward()
            self.scratch_optimizer.step()
        predicted = output.detach().numpy().argmax(axis=1)
        return loss.detach(), float(np.mean(predicted == self._targets(y)))

    def _loss_of(self, output, y):
        return self.loss_fn(output, loss_target(self.loss_fn, self.input(y), output))

    def train_step(self, x, y):
        if self.scratch is not None and self.trainer.distributed is not None:
            raise DistributedError("task.baseline: the from-scratch baseline is not data-parallel; set "
                                   "task.baseline=false for a run over several processes")
        step = super().train_step(x, y)
        if self.scratch is not None and len(x):
            step.losses["scratch_loss"], step.losses["scratch_accuracy"] = self._scratch(x, y, train=True)
        return step

    def eval_step(self, x, y):
        step = super().eval_step(x, y)
        if self.scratch is not None:
            step.losses["scratch_loss"], step.losses["scratch_accuracy"] = self._scratch(x, y, train=False)
        return step

    def state_dict(self):
        if self.scratch is None:
            return {}
        return {"scratch": dict(self.scratch.state_dict()), "scratch_optimizer": self.scratch_optimizer.state_dict()}

    def load_state_dict(self, state):
        if self.scratch is not None and state:
            self.scratch.load_state_dict(state["scratch"])
            self.scratch_optimizer.load_state_dict(state["scratch_optimizer"])


PRETRAIN_KEYS = {"classes": "a list of distinct labels of the dataset (integers >= 0)", "epochs": "an integer >= 1",
                 "lr": "a number > 0 or null", "batch_size": "an integer >= 1 or null"}


def _checked_pretrain(pretrain: dict | None) -> dict | None:
    """``pretrain`` with its defaults (lr, batch_size: null), or a ValueError naming the key at fault."""
    if pretrain is None:
        return None
    unknown = sorted(set(pretrain) - set(PRETRAIN_KEYS))
    missing = [k for k in ("classes", "epochs") if k not in pretrain]
    if unknown or missing:
        raise ValueError(f"pretrain: {'unknown key(s) ' + ', '.join(unknown) if unknown else ''}"
                         f"{'; ' if unknown and missing else ''}{'missing ' + ', '.join(missing) if missing else ''}"
                         f"; its keys are {', '.join(PRETRAIN_KEYS)} (classes and epochs required)")
    settings = {"lr": None, "batch_size": None, **pretrain}

    def whole(v, low):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low
    classes = settings["classes"]
    valid = {"classes": isinstance(classes, (list, tuple)) and bool(classes) and all(whole(c, 0) for c in classes)
             and len(set(classes)) == len(classes),
             "epochs": whole(settings["epochs"], 1),
             "lr": settings["lr"] is None or (isinstance(settings["lr"], (int, float))
                                              and not isinstance(settings["lr"], bool) and settings["lr"] > 0),
             "batch_size": settings["batch_size"] is None or whole(settings["batch_size"], 1)}
    for key, ok in valid.items():
        if not ok:
            raise ValueError(f"pretrain: {key} must be {PRETRAIN_KEYS[key]}, got {settings[key]!r}")
    settings["classes"] = [int(c) for c in classes]
    return settings
