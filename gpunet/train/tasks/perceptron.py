"""``perceptron``: Rosenblatt's perceptron trained by the perceptron rule, not by gradient descent (seeds 001, 002):
training stops after an epoch that changed nothing, and a run that never gets there says it did not converge."""
from __future__ import annotations

import sys

import numpy

from ...models.perceptron import Perceptron as PerceptronModel
from ..distributed import allgather
from .base import Key, Task, check_keys, register_task


@register_task("perceptron")
class Perceptron(Task):
    """A single layer of threshold units (``gpunet.models.Perceptron``) on the flattened inputs: one unit for two
    classes, else one per class (one-hot targets). Each batch applies the rule through the optimizer (SGD: lr is
    the rule's alpha; ``trainer.batch_size: 1`` is seed 002's sample-by-sample rule, a larger batch sums its
    updates, also over the ranks' shares in a data-parallel run). ``loss`` is the fraction of samples with a wrong
    output; each epoch logs its ``mistakes`` (every rank's), and an epoch without one ends training (``converged`` in
    summary.json; a run that never gets there says so). Example: configs/perceptron_and.yaml."""

    data = "labelled"
    uses_loss = False
    own_models = ("model",)
    keys = {
        "kind": Key("binary: 0/1 targets, output 1 where the net input exceeds the threshold, else 0, update "
                    "lr (t - y) x; bipolar: -1/+1 targets, seed 002's step (1 above theta, -1 below -theta, "
                    "0 between), update lr t x when y != t", choices=("binary", "bipolar")),
        "threshold": Key("theta of the step activation", ge=0),
    }

    def __init__(self, kind: str = "bipolar", threshold: float = 0.0):
        check_keys(self, kind=kind, threshold=threshold)
        self.kind, self.threshold = kind, threshold
        self.mistakes = 0  # samples with a wrong output so far in this epoch
        self.converged_epoch = None

    def build_model(self, name, info):
        outputs = 1 if info.num_classes <= 2 else info.num_classes
        return PerceptronModel(int(numpy.prod(info.input_shape)), outputs, kind=self.kind, threshold=self.threshold)

    def _targets(self, y):
        """Class labels as the units' targets: the label itself for one unit, one-hot rows for one per class
        (bipolar: -1 for 0)."""
        y = numpy.asarray(y).astype(numpy.int64)
        outputs = self.model.out_features
        if (y < 0).any() or (y >= max(outputs, 2)).any():
            raise ValueError(f"perceptron task: labels must be class numbers in [0, {max(outputs, 2)}), got "
                             f"{numpy.unique(y)[:6].tolist()}")
        t = y[:, None].astype(numpy.float64) if outputs == 1 else numpy.eye(outputs)[y]
        return 2 * t - 1 if self.kind == "bipolar" else t

    def _whole_batch(self, samples: int, wrong: int) -> tuple[int, int]:
        """The samples and mistakes of the whole batch: a data-parallel run adds up every rank's share (so every
        rank counts the same mistakes and stops after the same epoch)."""
        if self.trainer.distributed is None:
            return samples, wrong
        shares = allgather(self.trainer.distributed.world, (samples, wrong), "the perceptron's mistakes")
        return sum(s for s, _ in shares), sum(w for _, w in shares)

    def train_step(self, x, y):
        if not len(x):  # an empty share of a data-parallel batch: the ranks' sums, adding nothing
            self.mistakes += self._whole_batch(0, 0)[1]
            self.update("model", None)
            return {}
        wrong = int(float(self.model.rule_gradient(x.reshape(len(x), -1), self._targets(y))))
        samples, everyone_wrong = self._whole_batch(len(x), wrong)
        if samples != len(x):  # the ranks' gradients are averaged as means of their shares; the rule sums its updates
            for p in self.model.parameters():
                p.grad = p.grad * (samples / len(x))
        self.apply_gradients("model")
        self.mistakes += everyone_wrong
        return {"loss": wrong / len(x)}

    def eval_step(self, x, y):
        outputs = self.model(x.reshape(len(x), -1)).numpy()
        return {"loss": float(numpy.mean((outputs != self._targets(y)).any(axis=1)))}

    def end_epoch(self, epoch):
        mistakes, self.mistakes = self.mistakes, 0
        if mistakes == 0 and self.converged_epoch is None:
            self.converged_epoch = epoch
            self.trainer.stop(f"the perceptron rule converged: epoch {epoch} changed nothing")
        elif mistakes and epoch >= self.trainer.epochs:
            print(f"gpunet: the perceptron rule did not converge in {epoch} epochs: {mistakes} samples still had a "
                  "wrong output in the last one; it only converges on linearly separable data (XOR is not)",
                  file=sys.stderr, flush=True)
        return {"mistakes": mistakes}

    def summary(self, splits):
        return {"converged": self.converged_epoch is not None, "converged_epoch": self.converged_epoch}

    def state_dict(self):
        return {"mistakes": self.mistakes, "converged_epoch": self.converged_epoch}

    def load_state_dict(self, state):
        self.mistakes, self.converged_epoch = int(state["mistakes"]), state["converged_epoch"]
