"""``regress``: the ``classify`` step with regression defaults (loss mse; metrics mse and rmse, so summary.json has
``test_mse`` and ``test_rmse``)."""
from __future__ import annotations

from .base import register_task
from .classify import Classify


@register_task("regress")
class Regress(Classify):
    """Supervised regression: one model, the config's loss (default mse) on (output, target), metrics mse and rmse
    unless ``trainer.metrics`` says otherwise."""

    default_loss = "mse"
    default_metrics = ("mse", "rmse")
