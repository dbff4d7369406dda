"""``classify``: a model trained on ``loss_fn(model(x), y)`` with one optimizer -- the Trainer's classic run, for
classification and for any other (inputs, targets) loss (``regress`` is the same step with regression defaults)."""
from __future__ import annotations

from ...autograd import Tensor
from ...nn.losses import loss_target
from .base import Step, Task, register_task


@register_task("classify")
class Classify(Task):
    """Supervised learning of targets from inputs: one model, the config's loss on (output, target), the config's
    ``trainer.metrics`` (default: accuracy for a classification loss) on the outputs."""

    supports_metrics = True

    def _losses(self, x, y):
        output = self.model(self.input(x))
        return self.loss_fn(output, loss_target(self.loss_fn, y, output)), output  # host labels checked on the host

    def _targets(self, y):
        """Host targets for the metrics; class probabilities (MixUp's labels) for an "index" loss count as their
        likeliest class."""
        y = y.numpy() if isinstance(y, Tensor) else y
        if getattr(self.loss_fn, "target_kind", "float") == "index" and getattr(y, "ndim", 0) == 2 \
                and y.dtype.kind == "f":
            return y.argmax(axis=1)
        return y

    def train_step(self, x, y):
        if not len(x):  # an empty share of a data-parallel batch
            self.update("model", None)
            return {}
        loss, output = self._losses(x, y)
        self.update("model", loss)
        return Step({"loss": loss}, output, self._targets(y))

    def eval_step(self, x, y):
        loss, output = self._losses(x, y)
        return Step({"loss": loss}, output, self._targets(y))
