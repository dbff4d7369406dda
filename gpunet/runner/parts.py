"""What a config's ``trainer:`` section makes of a training, shared by a run (``gpunet.runner.run``) and the
pretraining inside it (``gpunet.runner.pretrain``): the Trainer's options, the training loader and the
evaluation loaders."""
from __future__ import annotations

from ..data import DataLoader

__all__ = ["evaluation_loader", "trainer_options", "training_loader"]


def trainer_options(config: dict) -> dict:
    """The ``Trainer`` keyword arguments the config's ``trainer:`` section sets: metrics, grad_clip, on_nonfinite
    and log_every."""
    trainer_cfg = config["trainer"]
    return {"metrics": trainer_cfg["metrics"], "grad_clip": trainer_cfg["grad_clip"],
            "on_nonfinite": trainer_cfg["on_nonfinite"], "log_every": trainer_cfg["log_every"]}


def evaluation_loader(config: dict, split, num_replicas: int = 1, rank: int = 0) -> DataLoader:
    """The loader that evaluates on ``split``: batches of ``trainer.eval_batch_size``, else ``trainer.batch_size``,
    in order; ``num_replicas``/``rank``: this rank's share of each batch."""
    batch_size = config["trainer"]["eval_batch_size"] or config["trainer"]["batch_size"]
    return DataLoader(split, batch_size, num_replicas=num_replicas, rank=rank)


def training_loader(config: dict, train, augment, num_replicas: int = 1, rank: int = 0) -> DataLoader:
    """The loader of the training split ``train``: ``trainer.batch_size``, ``shuffle`` and ``drop_last``, the
    config's seed, the ``augment`` transform; ``num_replicas``/``rank``: this rank's share of each batch."""
    trainer_cfg = config["trainer"]
    return DataLoader(train, trainer_cfg["batch_size"], shuffle=trainer_cfg["shuffle"],
                      drop_last=trainer_cfg["drop_last"], seed=config["seed"], transform=augment,
                      num_replicas=num_replicas, rank=rank)
