"""Exact, pickle-free checkpoints, and ``CheckpointManager`` for a run's ``checkpoints/`` directory.

A checkpoint is one ``.npz`` archive: every NumPy array is a member ``a<N>``, and the member
``__checkpoint__`` holds (as bytes) a JSON document of everything else, with each array replaced by a
reference to its member. Python types survive exactly: ints stay ints, floats stay floats (NaN and
infinities too), as do None, bools, strings, lists, tuples, dicts with non-string keys (optimizer state is
keyed by parameter index) and NumPy scalars (stored as 0-d arrays, dtype kept). Loading uses
``allow_pickle=False`` and ``json``: it never runs code from the file.

The member ``__checksum__`` holds the SHA-256 of the description and of every array (name, dtype, shape and
bytes); loading verifies it, so a damaged file is reported as damaged instead of giving wrong numbers. Writes
are atomic (``gpunet.train.atomic``): a crash leaves the old file or the new one, never a mix.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from .atomic import atomic_write, fsync_directory

__all__ = ["Checkpoint", "CheckpointError", "CheckpointManager", "FORMAT", "VERSION", "load_checkpoint",
           "fallback_message", "newest_intact", "open_checkpoint", "save_checkpoint"]

FORMAT = "gpunet-checkpoint"
VERSION = 2  # 2: with __checksum__; version 1 files (no checksum) are still read
_HEADER = "__checkpoint__"
_CHECKSUM = "__checksum__"
_MARKERS = ("__array__", "__tuple__", "__dict__")


class CheckpointError(Exception):
    """A checkpoint file is missing, truncated, corrupt, unsafe or of an unknown format."""


@dataclass
class Checkpoint:
    """Everything needed to resume a run exactly.

    ``model``: the model's ``state_dict()`` (name -> ndarray). ``optimizer`` / ``scheduler``: their
    ``state_dict()``s. ``rng``: ``gpunet.random.get_rng_state()``. ``loader``: the training
    ``DataLoader.state_dict()`` (its position). ``epoch`` / ``step``: completed epochs and optimizer steps.
    ``history``: one metrics dict per epoch. ``config``: the resolved run configuration. ``extra``: other
    state to restore (callbacks' counters and best scores).
    """
    model: dict
    optimizer: dict | None = None
    scheduler: dict | None = None
    rng: dict | None = None
    loader: dict | None = None
    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)
    config: dict | None = None
    extra: dict = field(default_factory=dict)


def _encode(value, arrays: dict, where: str):
    """``value`` as JSON-compatible data; arrays go to ``arrays`` under fresh member names."""
    if value is None or isinstance(value, (bool, str)) or type(value) is int:
        return value
    if type(value) is float:
        # json writes NaN/Infinity for non-finite floats; its parser reads them back
        return value
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"checkpoint entry {where}: object arrays cannot be stored (they would need pickle)")
        name = f"a{len(arrays)}"
        arrays[name] = array
        return {"__array__": name, "scalar": isinstance(value, np.generic)}
    if isinstance(value, list):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        for key in value:
            if not (key is None or isinstance(key, (bool, str)) or type(key) in (int, float)):
                raise TypeError(f"checkpoint entry {where}: dict key {key!r} of type {type(key).__name__} cannot "
                                "be stored; use str, int, float, bool or None keys")
        if all(isinstance(k, str) and k not in _MARKERS for k in value):
            return {k: _encode(v, arrays, f"{where}.{k}") for k, v in value.items()}
        return {"__dict__": [[k, _encode(v, arrays, f"{where}.{k}")] for k, v in value.items()]}
    raise TypeError(f"checkpoint entry {where}: cannot store a {type(value).__module__}.{type(value).__name__}; "
                    "convert it to a NumPy array or plain Python numbers, lists and dicts")


def _references(node, found: set) -> set:
    """Array member names referenced anywhere in a decoded JSON document."""
    if isinstance(node, dict):
        if "__array__" in node and isinstance(node["__array__"], str):
            found.add(node["__array__"])
        for child in node.values():
            _references(child, found)
    elif isinstance(node, list):
        for child in node:
            _references(child, found)
    return found


def _decode(node, arrays: dict):
    if isinstance(node, list):
        return [_decode(v, arrays) for v in node]
    if not isinstance(node, dict):
        return node
    if "__array__" in node:
        array = arrays[node["__array__"]]
        return array[()] if node.get("scalar") else array
    if "__tuple__" in node:
        return tuple(_decode(v, arrays) for v in node["__tuple__"])
    if "__dict__" in node:
        return {key: _decode(v, arrays) for key, v in node["__dict__"]}
    return {k: _decode(v, arrays) for k, v in node.items()}


def _checksum(header: np.ndarray, arrays: dict) -> np.ndarray:
    """SHA-256 (as 64 hex bytes) of the description and of every array's name, dtype, shape and bytes."""
    digest = hashlib.sha256(header.tobytes())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"|{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return np.frombuffer(digest.hexdigest().encode("ascii"), dtype=np.uint8)


def checkpoint_bytes(checkpoint: Checkpoint, path: str = "checkpoint") -> bytes:
    """The ``.npz`` file of ``checkpoint`` (TypeError naming ``path`` for values it cannot store)."""
    if not isinstance(checkpoint, Checkpoint):
        raise TypeError(f"save_checkpoint needs a Checkpoint, got {type(checkpoint).__name__}")
    problem = _problem(checkpoint)
    if problem:
        raise TypeError(f"cannot save checkpoint {path}: {problem}")
    arrays: dict = {}
    content = {f.name: _encode(getattr(checkpoint, f.name), arrays, f.name) for f in dataclasses.fields(checkpoint)}
    document = json.dumps({"format": FORMAT, "version": VERSION, "content": content}, allow_nan=True)
    header = np.frombuffer(document.encode("utf-8"), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **{_HEADER: header, _CHECKSUM: _checksum(header, arrays)}, **arrays)
    return buffer.getvalue()


def save_checkpoint(path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint`` to ``path`` atomically (TypeError, before writing, for values it cannot store)."""
    path = os.fspath(path)
    data = checkpoint_bytes(checkpoint, path)
    atomic_write(path, lambda f: f.write(data))


def _read(path: str):
    """The JSON document and arrays of ``path``; CheckpointError naming the file for anything wrong."""
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is not a valid checkpoint: not a complete .npz (zip) archive; "
                              "the file may be truncated")
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = set(archive.files)
            if _HEADER not in members:
                raise CheckpointError(f"{path} is not a gpunet checkpoint: it has no {_HEADER} member")
            header = archive[_HEADER]
            if not isinstance(header, np.ndarray) or header.dtype != np.uint8 or header.ndim != 1:
                raise CheckpointError(f"{path}: the {_HEADER} member is not a byte string")
            try:
                document = json.loads(header.tobytes().decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CheckpointError(f"{path}: the checkpoint description is not valid JSON ({exc})") from None
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise CheckpointError(f"{path} is not a gpunet checkpoint (format is not {FORMAT!r})")
            version = document.get("version")
            if version not in (1, VERSION):
                raise CheckpointError(f"{path} has checkpoint format version {version!r}; "
                                      f"this gpunet reads versions 1 to {VERSION}")
            own = {_HEADER} if version == 1 else {_HEADER, _CHECKSUM}
            wanted = _references(document.get("content"), set())
            if wanted - members or own - members:
                raise CheckpointError(f"{path} is missing member(s) {sorted((wanted | own) - members)}")
            if members - wanted - own:
                raise CheckpointError(f"{path} has unexpected member(s) {sorted(members - wanted - own)}")
            arrays = {}
            for name in wanted:
                try:
                    arrays[name] = archive[name]
                except ValueError as exc:
                    if "allow_pickle" in str(exc):
                        raise CheckpointError(f"{path}: member {name!r} holds pickled Python objects; refused "
                                              "(loading them could run code)") from None
                    raise
                if not isinstance(arrays[name], np.ndarray):
                    raise CheckpointError(f"{path}: member {name!r} is not a NumPy array")
            if version != 1 and not np.array_equal(archive[_CHECKSUM], _checksum(header, arrays)):
                raise CheckpointError(f"{path} is damaged: its arrays do not match its checksum")
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, KeyError, RecursionError) as exc:
        raise CheckpointError(f"{path} is corrupt: {type(exc).__name__}: {exc}") from None
    return document["content"], arrays


def load_checkpoint(path) -> Checkpoint:
    """Read a checkpoint written by ``save_checkpoint``: exactly the values saved, without unpickling."""
    path = os.fspath(path)
    content, arrays = _read(path)
    names = [f.name for f in dataclasses.fields(Checkpoint)]
    if not isinstance(content, dict) or sorted(content) != sorted(names):
        found = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise CheckpointError(f"{path}: checkpoint content has fields {found}, expected {sorted(names)}")
    try:
        checkpoint = Checkpoint(**{name: _decode(content[name], arrays) for name in names})
    except (TypeError, ValueError, KeyError, RecursionError) as exc:
        raise CheckpointError(f"{path}: malformed checkpoint description: {type(exc).__name__}: {exc}") from None
    problem = _problem(checkpoint)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    return checkpoint


def _problem(checkpoint: Checkpoint) -> str | None:
    """What makes ``checkpoint`` unusable, or None."""
    if not isinstance(checkpoint.model, dict) or not all(isinstance(v, np.ndarray) for v in checkpoint.model.values()):
        return "the model state is not a dict of NumPy arrays (use model.state_dict())"
    for counter in ("epoch", "step"):
        value = getattr(checkpoint, counter)
        if type(value) is not int or value < 0:
            return f"{counter} is {value!r}, not a non-negative integer"
    if not isinstance(checkpoint.history, list) or not isinstance(checkpoint.extra, dict):
        return "history must be a list and extra a dict"
    return None


class CheckpointManager:
    """A run's ``checkpoints/`` directory: ``last.npz``, ``best.npz`` and the ``keep`` newest ``epoch-NNNN.npz``.

    Every file is a separate copy (no hard links), written atomically, so damage to one leaves the others intact;
    ``newest_intact`` finds the newest checkpoint that verifies. ``best.npz`` is rewritten when the metric
    ``monitor`` improves (``mode`` ``"min"`` or ``"max"``; ``monitor=None`` keeps no best). Old epoch files are
    removed only after the new checkpoint is safely on disk. The manager's own state (best score and epoch) is
    stored in each checkpoint's ``extra["checkpoint_manager"]``; ``restore`` reads it back on resume.
    """

    _EPOCH_FILE = re.compile(r"epoch-(\d+)\.npz")

    def __init__(self, directory, monitor: str | None = "val_loss", mode: str = "min", keep: int = 3):
        if mode not in ("min", "max"):
            raise ValueError(f"CheckpointManager: mode must be 'min' or 'max', got {mode!r}")
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 0:
            raise ValueError(f"CheckpointManager: keep must be an integer >= 0, got {keep!r}")
        self.directory = os.fspath(directory)
        self.monitor = monitor
        self.mode = mode
        self.keep = keep
        self.best_score: float | None = None
        self.best_epoch: int | None = None

    @property
    def last_path(self) -> str:
        return os.path.join(self.directory, "last.npz")

    @property
    def best_path(self) -> str:
        return os.path.join(self.directory, "best.npz")

    def epoch_path(self, epoch: int) -> str:
        return os.path.join(self.directory, f"epoch-{epoch:04d}.npz")

    def epoch_paths(self) -> list[str]:
        """Existing epoch checkpoints, oldest first."""
        if not os.path.isdir(self.directory):
            return []
        found = [(int(m.group(1)), name) for name in os.listdir(self.directory)
                 if (m := self._EPOCH_FILE.fullmatch(name))]
        return [os.path.join(self.directory, name) for _, name in sorted(found)]

    def is_improvement(self, score: float) -> bool:
        """Whether ``score`` beats the best so far (NaN never does)."""
        if math.isnan(score):
            return False
        if self.best_score is None:
            return True
        return score < self.best_score if self.mode == "min" else score > self.best_score

    def record(self, epoch: int, metrics: dict | None) -> bool:
        """Take ``metrics[monitor]`` of ``epoch`` into account; whether it is a new best (then it is remembered)."""
        if self.monitor is None:
            return False
        if not metrics or self.monitor not in metrics:
            raise ValueError(f"CheckpointManager monitors {self.monitor!r}, but the metrics given are "
                             f"{sorted(metrics or {})}")
        score = float(metrics[self.monitor])
        if not self.is_improvement(score):
            return False
        self.best_score, self.best_epoch = score, epoch
        return True

    def save(self, checkpoint: Checkpoint, metrics: dict | None = None, improved: bool | None = None) -> list[str]:
        """Write ``checkpoint`` (an epoch's end) as ``best`` if it is a new best, the epoch file, and ``last``;
        returns the paths. Whether it is a new best is ``improved`` when given (after ``record``), else
        ``record(epoch, metrics)``."""
        if improved is None:
            improved = self.record(checkpoint.epoch, metrics)
        targets = ([self.best_path] if improved else []) + ([self.epoch_path(checkpoint.epoch)] if self.keep else [])
        self._write(checkpoint, targets + [self.last_path])
        self.prune()
        return targets + [self.last_path]

    def _write(self, checkpoint: Checkpoint, targets: list[str]) -> list[str]:
        """``checkpoint`` with this manager's state, as a separate copy in each of ``targets``, in order (``last``
        comes last: when it is intact, every file of its checkpoint is complete)."""
        checkpoint = dataclasses.replace(checkpoint, extra={**checkpoint.extra,
                                                            "checkpoint_manager": self.state_dict()})
        data = checkpoint_bytes(checkpoint, targets[0])
        os.makedirs(self.directory, exist_ok=True)
        for target in targets:
            atomic_write(target, lambda f: f.write(data))
        return targets

    def prune(self) -> None:
        """Remove the epoch files older than the ``keep`` newest (call only once the newest are known intact)."""
        old = self.epoch_paths()[:-self.keep] if self.keep else []
        for path in old:
            os.remove(path)
        if old:
            fsync_directory(self.directory)

    def save_last(self, checkpoint: Checkpoint) -> str:
        """Write ``checkpoint`` as ``last`` only (one taken mid-epoch when training is interrupted: no epoch file, no
        best). Returns its path."""
        return self._write(checkpoint, [self.last_path])[-1]

    def state_dict(self) -> dict:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.best_score = state["best_score"]
        self.best_epoch = state["best_epoch"]

    def restore(self, checkpoint: Checkpoint) -> None:
        """Take back the best score recorded in ``checkpoint`` (when resuming from it)."""
        if "checkpoint_manager" in checkpoint.extra:
            self.load_state_dict(checkpoint.extra["checkpoint_manager"])

    def paths(self) -> list[str]:
        """Every checkpoint file here, newest first: last (an intact one is the newest complete checkpoint), epoch
        files (newest first), best."""
        found = [self.last_path] + self.epoch_paths()[::-1] + [self.best_path]
        return [path for path in found if os.path.exists(path)]

    def latest(self) -> str | None:
        """Path of ``last.npz`` if it exists."""
        return self.last_path if os.path.exists(self.last_path) else None


def newest_intact(paths) -> tuple[str, Checkpoint, list[str]] | None:
    """The newest checkpoint among ``paths`` (as ``CheckpointManager.paths`` orders them) that loads and verifies:
    ``(path, checkpoint, problems)`` where ``problems`` names each damaged file skipped before it. None when
    ``paths`` is empty; CheckpointError listing every file's problem when none is intact."""
    problems, intact = [], []
    for path in paths:
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        if not problems:  # the first is intact: it is the newest complete checkpoint
            return path, checkpoint, []
        intact.append((path, checkpoint))
    if not intact:
        if not problems:
            return None
        raise CheckpointError("no intact checkpoint: " + "; ".join(problems))
    path, checkpoint = max(intact, key=lambda pc: (pc[1].step, pc[1].epoch))
    return path, checkpoint, problems


def fallback_message(path: str, checkpoint: Checkpoint, problems: list[str]) -> str:
    """What to tell the user when ``newest_intact`` or ``open_checkpoint`` skipped damaged files."""
    return "\n".join([f"gpunet: skipping a damaged checkpoint: {problem}" for problem in problems] +
                     [f"gpunet: using the newest intact checkpoint instead: {path} (epoch {checkpoint.epoch})"])


def open_checkpoint(path) -> tuple[str, Checkpoint, list[str]]:
    """Load ``path``; if it is damaged and is a run's ``last.npz`` or ``epoch-NNNN.npz``, the newest intact one of
    those beside it instead: ``(path used, checkpoint, problems of the damaged files)``. A damaged ``best.npz``
    (or any other file) raises CheckpointError naming the intact checkpoints beside it."""
    path = os.fspath(path)
    try:
        return path, load_checkpoint(path), []
    except CheckpointError as exc:
        damage = exc
    manager = CheckpointManager(os.path.dirname(path) or ".", monitor=None)
    name = os.path.basename(path)
    if name == "last.npz" or CheckpointManager._EPOCH_FILE.fullmatch(name):
        found = newest_intact([p for p in manager.paths() if p != manager.best_path])
        if found is not None:
            return found
    others = []
    for other in manager.paths():
        if os.path.abspath(other) != os.path.abspath(path):
            try:
                others.append(f"{other} (epoch {load_checkpoint(other).epoch})")
            except CheckpointError:
                pass
    hint = f"; intact checkpoints beside it: {', '.join(others)}" if others else ""
    raise CheckpointError(f"{damage}{hint}") from None
