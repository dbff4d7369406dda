"""Training: the Trainer (fit / evaluate / predict), callbacks, metrics, model summaries and exact checkpoints.
Whole runs from a config live a layer up, in ``gpunet.runner``."""
from .callbacks import (CSVLogger, Callback, EarlyStopping, JSONLLogger, ModelCheckpoint, ProgressBar,
                        ReduceLROnPlateau, TerminateOnNaN)
from .checkpoint import Checkpoint, CheckpointError, CheckpointManager, load_checkpoint, save_checkpoint
from .summary import ModelSummary, summary
from .trainer import History, Trainer
from . import metrics

__all__ = [
    "CSVLogger", "Callback", "Checkpoint", "CheckpointError", "CheckpointManager", "EarlyStopping", "History",
    "JSONLLogger", "ModelCheckpoint", "ModelSummary", "ProgressBar", "ReduceLROnPlateau", "TerminateOnNaN",
    "Trainer", "load_checkpoint", "metrics", "save_checkpoint", "summary",
]
