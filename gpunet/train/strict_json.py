"""Strict JSON for what a run writes (``metrics.jsonl``, ``summary.json``, the summary line): NaN and infinities,
which ``json`` would write as the non-standard ``NaN`` / ``Infinity``, become ``null``, and the record gets a
``"nonfinite"`` list naming them (``["train_loss", "val_loss"]``; nested values as ``key.sub[2]``), so every
JSON parser reads the file and no value is silently lost."""
from __future__ import annotations

import json
import math

import numpy as np

__all__ = ["dumps", "finite"]

FLAG = "nonfinite"


def _replace(value, path: str, found: list):
    if isinstance(value, (float, np.floating)):
        if math.isfinite(value):
            return value
        found.append(path)
        return None
    if isinstance(value, dict):
        return {k: _replace(v, f"{path}.{k}" if path else str(k), found) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace(v, f"{path}[{i}]", found) for i, v in enumerate(value)]
    return value


def finite(record: dict) -> dict:
    """``record`` with every non-finite float replaced by None and their keys listed under ``"nonfinite"`` (after
    any already listed there); ``record`` itself when all its numbers are finite."""
    found: list = []
    cleaned = _replace(record, "", found)
    if not found:
        return record
    cleaned[FLAG] = list(dict.fromkeys([*record.get(FLAG, []), *found]))
    return cleaned


def dumps(record: dict, **kwargs) -> str:
    """``json.dumps`` of ``finite(record)``; raises ValueError rather than ever writing NaN or Infinity."""
    return json.dumps(finite(record), allow_nan=False, **kwargs)
