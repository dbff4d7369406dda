"""Helpers of the resume and soak tests: a run config that exercises every kind of state a resume must carry, and
the comparison of two run directories (everything but wall-clock times)."""
import json
import os
from pathlib import Path

import numpy as np

from gpunet.train.checkpoint import load_checkpoint

# Dropout (RNG), shuffling (loader position), momentum (optimizer state), a plateau scheduler, a plateau callback,
# early stopping (stops at epoch 6 of 8), a best epoch (3) that is not the last, a CSV logger and two epoch files.
STATEFUL = (Path(__file__).resolve().parents[1] / "fixtures" / "xor_stateful.yaml").read_text(encoding="utf-8")

_WALL_CLOCK = {"time", "time_s", "run_dir", "config"}


def _plain(value):
    """``value`` with arrays as (dtype, shape, bytes) and wall-clock entries dropped, for ``==``."""
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        return ("array", array.dtype.str, array.shape, array.tobytes())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in _WALL_CLOCK}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _csv_rows(text):
    lines = text.splitlines()
    header = lines[0].split(",")
    keep = [i for i, name in enumerate(header) if name != "time"]
    return [[line.split(",")[i] for i in keep] for line in lines]


def snapshot(run_dir) -> dict:
    """Every file of a run directory (recursively) in comparable form; checkpoints as their loaded content."""
    run_dir = Path(run_dir)
    files = {}
    for path in sorted(run_dir.rglob("*")):
        if path.is_dir():
            continue
        name = str(path.relative_to(run_dir))
        if path.suffix == ".npz":
            checkpoint = load_checkpoint(path)
            checkpoint.config = None  # holds trainer.epochs of the command that wrote it
            files[name] = _plain(vars(checkpoint))
        elif path.name == "metrics.jsonl":
            files[name] = [_plain(json.loads(line)) for line in path.read_text().splitlines()]
        elif path.name == "summary.json":
            files[name] = _plain(json.loads(path.read_text()))
        elif path.suffix == ".csv":
            files[name] = _csv_rows(path.read_text())
        elif path.suffix == ".png":
            files[name] = "png"  # drawn from the metrics compared above
        else:
            files[name] = path.read_bytes()
    return files


def assert_same_run(actual, expected):
    """The run directory ``actual`` holds what ``expected`` holds: same files, same numbers (times aside)."""
    a, b = snapshot(actual), snapshot(expected)
    assert sorted(a) == sorted(b), f"files differ: {sorted(a)} vs {sorted(b)}"
    for name in b:
        assert a[name] == b[name], f"{name} differs from the uninterrupted run's"


def temporaries(run_dir) -> list:
    return [str(p) for p in Path(run_dir).rglob(".*") if p.is_file()]


def file_hashes(run_dir) -> dict:
    import hashlib
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(run_dir).rglob("*"))
            if p.is_file()} | {"_names": sorted(os.listdir(run_dir))}
