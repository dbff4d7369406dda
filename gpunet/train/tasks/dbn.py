"""``dbn``: a deep belief net (seed 002's SupervisedDBNClassification): greedy layer-wise pre-training of one
Bernoulli RBM per hidden layer by contrastive divergence, then the unrolled network fine-tuned by backpropagation on
the labels. The stage reached (which RBM is training, or fine-tuning) is task state, so resume is exact anywhere."""
from __future__ import annotations

import os
import sys

import numpy

from ...autograd.grad_mode import no_grad
from ...models.dbn import ACTIVATIONS, DeepBeliefNet
from .base import Key, Step, check_keys, register_task
from .classify import Classify
from .rbm import FILTERS, check_unit_interval, plot_filters


@register_task("dbn")
class DBN(Classify):
    """Epoch by epoch: ``rbm_epochs`` epochs of CD-k for RBM 1 (on the inputs, values in [0, 1]), then as many for
    RBM 2 (on RBM 1's hidden probabilities), ...; the RBMs are then copied into the classifier (Linear, activation,
    Dropout per hidden layer, and a Linear head), which trains on the config's loss for the rest of
    ``trainer.epochs``. The optimizer is the config's; the RBMs use it with the learning rate ``rbm_lr``. Logs
    ``recon_error`` of the RBM in training and ``pretraining_layer`` (1, 2, ...; 0 once fine-tuning); the metrics of
    the pre-training epochs are the not yet trained classifier's. Example: configs/dbn_digits.yaml."""

    own_models = ("model",)
    default_loss = "cross_entropy"
    loss_names = ("loss", "recon_error")
    keys = {
        "hidden": Key("units of each hidden layer (one RBM each)", ge=1),
        "rbm_epochs": Key("epochs of CD training of each RBM, one after the other, before fine-tuning takes the rest "
                          "of trainer.epochs (0: no pre-training, a plain MLP from random weights)", ge=0),
        "rbm_lr": Key("learning rate of the RBMs' updates (optimizer.lr is the fine-tuning one)", gt=0),
        "k": Key("Gibbs steps of the RBMs' negative phase (CD-k)", ge=1),
        "persistent": Key("persistent CD for the RBMs (chains kept from batch to batch, each data-parallel rank its "
                          "own; saved in checkpoints)"),
        "activation": Key("activation of the unrolled network's hidden layers", choices=tuple(ACTIVATIONS)),
        "dropout": Key("dropout probability after each hidden layer of the unrolled network", ge=0, lt=1),
    }

    def __init__(self, hidden: list[int] = [256, 256], rbm_epochs: int = 10, rbm_lr: float = 0.05, k: int = 1,
                 persistent: bool = False, activation: str = "relu", dropout: float = 0.2):
        check_keys(self, hidden=hidden, rbm_epochs=rbm_epochs, rbm_lr=rbm_lr, k=k, persistent=persistent,
                   activation=activation, dropout=dropout)
        self.hidden, self.rbm_epochs, self.rbm_lr, self.k = list(hidden), rbm_epochs, rbm_lr, k
        self.persistent, self.activation, self.dropout = persistent, activation, dropout
        self.stage = 0 if rbm_epochs > 0 else len(self.hidden)  # the RBM in training; len(hidden): fine-tuning
        self.chains: dict[int, object] = {}  # persistent chains by layer

    @property
    def fine_tuning(self) -> bool:
        return self.stage >= len(self.hidden)

    def build_model(self, name, info):
        if len(info.input_shape) != 1:
            raise ValueError(f"dbn task: the inputs must be vectors, got samples of shape {tuple(info.input_shape)}; "
                             "set data.flatten: true")
        return DeepBeliefNet(info.input_shape[0], self.hidden, info.num_classes, self.activation, self.dropout)

    def param_groups(self, name, model):
        """The classifier at the optimizer's learning rate (first: the one the logs show), the RBMs at ``rbm_lr``."""
        return [{"params": list(model.classifier.parameters())},
                {"params": list(model.rbms.parameters()), "lr": self.rbm_lr}]

    def _note_short_run(self):
        """Say once when this run's epochs end before fine-tuning (a run meant to be resumed with more, or a
        mistake): its classifier would stay untrained."""
        pretraining = self.rbm_epochs * len(self.hidden)
        if 0 < self.trainer.epochs <= pretraining and not getattr(self, "_noted", False):  # 0: outside fit
            self._noted = True
            print(f"gpunet: dbn task: trainer.epochs ({self.trainer.epochs}) ends before fine-tuning, which starts "
                  f"after task.rbm_epochs ({self.rbm_epochs}) x {len(self.hidden)} RBMs = epoch {pretraining}; "
                  f"the classifier is not trained in this run (raise trainer.epochs above {pretraining})",
                  file=sys.stderr, flush=True)

    def train_step(self, x, y):
        if self.fine_tuning:
            return super().train_step(x, y)
        self._note_short_run()
        if not len(x):  # an empty share of a data-parallel batch: the ranks' gradient average, adding nothing
            self.update("model", None)
            return {}
        self.optimizers["model"].zero_grad()  # only the RBM in training steps
        check_unit_interval(x, "dbn")
        v = self.input(x)
        rbm = self.model.rbms[self.stage]
        error = rbm.reconstruction_error(self.model.rbm_input(self.stage, v))
        chain = self.chains.get(self.stage)
        if self.persistent and chain is None:
            chain = self.input(numpy.zeros((len(x), rbm.n_hidden), numpy.dtype(v.dtype)))
        chain = self.model.pretrain_step(self.stage, v, k=self.k, chain=chain if self.persistent else None)
        if self.persistent:
            self.chains[self.stage] = chain
        self.apply_gradients("model")
        with no_grad():
            outputs = self.model(v)  # the classifier as it stands, for the epoch's metrics
        return Step({"loss": error, "recon_error": error}, outputs, self._targets(y))

    def eval_step(self, x, y):
        step = super().eval_step(x, y)
        if not self.fine_tuning:
            v = self.model.rbm_input(self.stage, self.input(x))
            step.losses["recon_error"] = self.model.rbms[self.stage].reconstruction_error(v)
        return step

    def end_epoch(self, epoch):
        """Move to the next RBM after its ``rbm_epochs``, and unroll the RBMs into the classifier after the last."""
        layer = 0 if self.fine_tuning else self.stage + 1
        if not self.fine_tuning and epoch >= self.rbm_epochs * (self.stage + 1):
            self.stage += 1
            if self.fine_tuning:
                self.model.unroll()
                for p in self.model.parameters():
                    p.grad = None
        return {"pretraining_layer": layer}

    def final_artifacts(self, directory, splits):
        path = plot_filters(self.model.rbms[0].weight.numpy(), (self.model.rbms[0].n_visible,),
                            os.path.join(directory, FILTERS), "first RBM's weights: one filter per hidden unit")
        return [path] if path else []

    def state_dict(self):
        return {"stage": self.stage}

    def load_state_dict(self, state):
        self.stage = int(state["stage"])

    def rank_state_dict(self):
        return {"chains": {str(k): c.numpy() for k, c in self.chains.items()}}

    def load_rank_state_dict(self, state):
        self.chains = {int(k): self.input(numpy.asarray(c)) for k, c in (state or {"chains": {}})["chains"].items()}
