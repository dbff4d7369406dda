"""Behaviour chosen from facts a class declares, not from its name: a user's loss or scheduler that declares the
same facts as a gpunet one is treated the same way by the Trainer and the dry run."""
import ast
import pathlib

import numpy as np

import gpunet
from gpunet import nn, optim
from gpunet.config.dry_run import input_dtype
from gpunet.data import DataLoader
from gpunet.data.registry import ArrayDataset
from gpunet.nn.losses import loss_target
from gpunet.train import Trainer


class RecordingIndexLoss(nn.Module):
    """A user's loss (not a gpunet class) that declares class-index targets; records the targets it gets."""

    target_kind = "index"

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, input, target):
        self.seen.append(target.dtype)
        return nn.functional.cross_entropy(input, target)


class MetricScheduler(optim.lr_scheduler.LRScheduler):
    """A user's scheduler that steps on a metric: lr becomes the metric it is given."""

    steps_on_metric = True

    def __init__(self, optimizer):
        self.metrics = []
        super().__init__(optimizer)

    def get_lr(self):
        return self._current_lrs()

    def step(self, metric=None):
        if metric is not None:
            self.metrics.append(metric)
        super().step()


def _data(n=16):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return DataLoader(ArrayDataset(x, y), 8)


def test_a_loss_declaring_index_targets_gets_class_indices_unchanged():
    loss = RecordingIndexLoss()
    gpunet.manual_seed(0)
    model = nn.Linear(3, 2)
    Trainer(model, loss, optim.SGD(model.parameters(), lr=0.1), metrics=()).fit(_data(), epochs=1)
    assert loss.seen and {str(d) for d in loss.seen} == {"int64"}


def test_float_losses_get_targets_in_the_output_dtype_and_shape():
    output = gpunet.zeros(4, 1)
    target = loss_target(nn.MSELoss(), gpunet.tensor(np.array([0, 1, 1, 0])), output)
    assert str(target.dtype) == "float32" and tuple(target.shape) == (4, 1)
    assert loss_target(lambda a, b: a, gpunet.tensor(np.array([0, 1, 1, 0])), output).dtype == output.dtype


def test_the_decision_threshold_comes_from_the_loss():
    assert nn.BCEWithLogitsLoss.decision_threshold == 0.0 and nn.BCELoss.decision_threshold == 0.5
    model = nn.Linear(3, 1)

    class Shifted(nn.BCEWithLogitsLoss):
        decision_threshold = 7.5
    assert Trainer(model, Shifted(), None).threshold == 7.5
    assert Trainer(model, nn.BCEWithLogitsLoss(), None).threshold == 0.0
    assert Trainer(model, lambda a, b: a, None).threshold == 0.5  # a plain function declares nothing


def test_a_scheduler_declaring_steps_on_metric_is_stepped_with_the_monitored_value():
    gpunet.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    scheduler = MetricScheduler(opt)
    trainer = Trainer(model, nn.CrossEntropyLoss(), opt, scheduler, metrics=(), scheduler_monitor="train_loss")
    history = trainer.fit(_data(), epochs=2)
    assert scheduler.metrics == history["train_loss"]
    assert optim.lr_scheduler.ReduceLROnPlateau.steps_on_metric and not optim.lr_scheduler.StepLR.steps_on_metric


def test_a_layer_declaring_index_input_makes_the_dry_run_feed_integers():
    class Lookup(nn.Module):
        input_kind = "index"

    assert input_dtype(nn.Sequential(nn.Embedding(5, 2), nn.Linear(2, 1))) == "int64"
    assert input_dtype(nn.Sequential(Lookup(), nn.Linear(2, 1))) == "int64"
    assert input_dtype(nn.Sequential(nn.Linear(2, 1))) == "float32"


def test_no_behaviour_is_chosen_by_comparing_class_names():
    """No ``type(x).__name__ == "..."`` / ``__name__ in (...)`` test in gpunet's own code."""
    offenders, root = set(), pathlib.Path(gpunet.__file__).parent
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn))
                                                     for op in node.ops):
                sides = [node.left, *node.comparators]
                if any(isinstance(s, ast.Attribute) and s.attr == "__name__"
                       and not (isinstance(s.value, ast.Name) and s.value.id == "__name__") for s in sides) \
                        and not any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides):
                    offenders.add(path.relative_to(root.parent).as_posix())
    assert not offenders, offenders
