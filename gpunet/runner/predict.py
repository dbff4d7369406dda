"""Predictions of a trained text model on new text: the run's saved vocabulary turns each text into the token ids
the model was trained on (its data section's ``maxlen``, ``padding`` and ``truncating``), so ``gpunet predict``
gives what the model gives on the run's own encoded data. The corpus is not needed: only the checkpoint (its stored
config and weights) and the run's ``vocabulary.json``.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from .. import tensor
from ..autograd import no_grad
from ..config import build_loss, build_model, validate_config
from ..data import Vocabulary
from ..nn import functional as F
from ..train.checkpoint import CheckpointError, fallback_message, open_checkpoint
from .run import VOCABULARY_FILE, RunError

__all__ = ["TextPredictor", "check_vocabulary", "find_vocabulary"]


def find_vocabulary(checkpoint_path: str, config: dict) -> str:
    """The ``vocabulary.json`` of the run a checkpoint belongs to: the run directory is the checkpoint's folder
    minus the config's ``checkpoint.dir``. RunError when it is not there."""
    folder = os.path.dirname(os.path.abspath(checkpoint_path))
    relative = os.path.normpath(config["checkpoint"]["dir"])
    run_dir = folder[:-len(relative)] if not os.path.isabs(relative) and folder.endswith(os.sep + relative) else folder
    path = os.path.join(run_dir, VOCABULARY_FILE)
    if not os.path.isfile(path):
        raise RunError(f"no {VOCABULARY_FILE} in {run_dir}, the run directory of {checkpoint_path}: the run saves the "
                       f"vocabulary of its text data there; give its path with --vocabulary")
    return path


def check_vocabulary(checkpoint_path: str, config: dict, vocabulary) -> None:
    """RunError when the run of a checkpoint saved a vocabulary and ``vocabulary`` (its data rebuilt from the config,
    e.g. by ``gpunet evaluate``) differs from it: the corpus changed since training, so the ids would mean other
    words. Nothing to check for data without a vocabulary or a run that saved none."""
    if vocabulary is None:
        return
    try:
        path = find_vocabulary(checkpoint_path, config)
    except RunError:
        return
    with open(path, encoding="utf-8") as f:
        saved = json.load(f)
    if saved != vocabulary.state_dict():
        raise RunError(f"the data rebuilt from the config of {checkpoint_path} has another vocabulary than the run was "
                       f"trained with ({path}): its corpus file changed since; evaluate with the run's own corpus")


class TextPredictor:
    """A trained text model with its tokenisation: ``predict(texts)`` -> one dict per text (``ids``; for class
    indices targets ``class`` and ``probabilities`` (softmax), for one binary score ``class`` and ``probability``
    of class 1 (sigmoid), otherwise ``output``)."""

    def __init__(self, model, vocabulary: Vocabulary, data: dict, loss_kind: str):
        self.model, self.vocabulary, self.loss_kind = model.eval(), vocabulary, loss_kind
        self.maxlen, self.padding, self.truncating = data["maxlen"], data["padding"], data["truncating"]

    @classmethod
    def from_checkpoint(cls, path: str, vocabulary_path: str | None = None) -> "TextPredictor":
        """The model of a checkpoint written by a run of a text dataset (its stored config), with the run's
        vocabulary (``vocabulary_path``, default the run directory's ``vocabulary.json``)."""
        path, checkpoint, problems = open_checkpoint(path)
        if problems:
            print(fallback_message(path, checkpoint, problems), file=sys.stderr, flush=True)
        if checkpoint.config is None:
            raise RunError(f"{path} holds no config (it was saved from Python, not by a gpunet run): its model and "
                           f"tokenisation are unknown")
        config = validate_config(checkpoint.config, source=f"{path} (its stored config)")
        if "maxlen" not in config["data"]:
            raise RunError(f"{path} was trained on {config['data']['name']!r}, not on text: gpunet predict takes "
                           f"the text datasets' runs (rotten_tomatoes, rotten_tomatoes_full)")
        vocabulary_path = vocabulary_path or find_vocabulary(path, config)
        try:
            with open(vocabulary_path, encoding="utf-8") as f:
                vocabulary = Vocabulary.from_state_dict(json.load(f))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunError(f"cannot read the vocabulary {vocabulary_path}: {type(exc).__name__}: {exc}") from None
        model = build_model(config)
        try:
            model.load_state_dict(checkpoint.model)
        except (RuntimeError, ValueError) as exc:
            raise CheckpointError(f"{path} does not fit the model of its own config: {exc}") from None
        return cls(model, vocabulary, config["data"], build_loss(config).target_kind)

    def encode(self, texts) -> np.ndarray:
        """The token ids (len(texts), maxlen) the model reads, as the run's data encoded its texts."""
        return self.vocabulary.encode_batch(list(texts), self.maxlen, self.padding, self.truncating)

    def outputs(self, ids: np.ndarray):
        """The model's raw outputs (logits) for token ids, in evaluation mode."""
        with no_grad():
            return self.model(tensor(ids))

    def predict(self, texts) -> list[dict]:
        ids = self.encode(texts)
        out = self.outputs(ids)
        if self.loss_kind == "index":
            scores, key = F.softmax(out, dim=1).numpy().astype(np.float64), "probabilities"
        elif self.loss_kind == "binary" and out.numel() == len(ids):
            scores, key = F.sigmoid(out).numpy().astype(np.float64).reshape(len(ids)), "probability"
        else:
            scores, key = out.numpy().astype(np.float64), "output"
        results = []
        for row_ids, row in zip(ids, scores):
            result = {"ids": [int(i) for i in row_ids if i]}
            if key == "probabilities":
                result["class"] = int(np.argmax(row))
            elif key == "probability":
                result["class"] = int(row > 0.5)
            result[key] = row.tolist()
            results.append(result)
        return results
