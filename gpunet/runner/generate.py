"""``gpunet generate``: text sampled from a character (or word) language model of a run (task ``language_model``).

The run is rebuilt from the config stored in its checkpoint (``Run.from_checkpoint``), so the text is tokenised
with the vocabulary its data was trained with; then ``gpunet.train.tasks.language_model.sample_text`` draws
``length`` tokens after the prompt at ``temperature`` with a generator seeded by ``seed`` (same arguments, same text).
"""
from __future__ import annotations

import os

from ..train.tasks.language_model import LanguageModel, sample_text
from .run import Run, RunError

__all__ = ["generate", "run_checkpoint"]


def run_checkpoint(path: str) -> str:
    """The checkpoint a ``RUN_OR_CHECKPOINT`` argument names: a run directory's ``checkpoints/best.npz`` when it
    has one (else ``last.npz``), or the checkpoint file itself."""
    if not os.path.isdir(path):
        return path
    for name in ("best.npz", "last.npz"):
        candidate = os.path.join(path, "checkpoints", name)
        if os.path.isfile(candidate):
            return candidate
    raise RunError(f"{path} is a directory without checkpoints/best.npz or checkpoints/last.npz; give a run "
                   "directory written by gpunet train or a checkpoint file")


def generate(path: str, prompt: str, length: int, temperature: float = 1.0, seed: int = 0,
             overrides=()) -> str:
    """The prompt and ``length`` tokens sampled after it from the language model of run or checkpoint ``path``."""
    if not temperature > 0:
        raise RunError(f"--temperature must be > 0 (near 0, e.g. 0.01, picks the likeliest character), got "
                       f"{temperature}")
    run, checkpoint_path, _ = Run.from_checkpoint(run_checkpoint(path), overrides, announce_device=False)
    task = run.trainer.task
    if not isinstance(task, LanguageModel) or run.dataset.vocabulary is None:
        raise RunError(f"{checkpoint_path} is not a language model (task language_model on text data), so it "
                       f"cannot generate text; its task is {task.name!r}")
    try:
        return sample_text(run.trainer.model, run.dataset.vocabulary, prompt, length, temperature, seed)
    except ValueError as exc:
        raise RunError(f"gpunet generate: {exc}") from None
