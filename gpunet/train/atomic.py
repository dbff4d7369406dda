"""Crash-safe writes for a run directory: every file is replaced atomically or appended durably.

``atomic_write`` writes a temporary file ``.<name>.<random>.tmp`` in the target's directory, fsyncs it, renames it
over the target (``os.replace``) and fsyncs the directory, so a crash at any moment leaves the old file or the new
one, never a mix. ``append_text`` appends and fsyncs (``metrics.jsonl``): a crash can leave a torn last line, which
the loggers repair on resume. ``remove_stale_temporaries`` deletes the temporaries of a killed process.

Fault injection (for the soak test, ``tests/train/test_soak.py``): with the environment variable
``GPUNET_KILL_AT_WRITE_STEP=k`` the process SIGKILLs itself at the k-th write step since it started; the steps are
marked by ``_step()`` below (4 per atomic write, 2 per append); ``k=0`` only counts them (``_steps_taken``).
"""
from __future__ import annotations

import os
import re
import signal
import tempfile

__all__ = ["KILL_VARIABLE", "append_text", "atomic_write", "atomic_write_text", "fsync_directory",
           "remove_stale_temporaries"]

KILL_VARIABLE = "GPUNET_KILL_AT_WRITE_STEP"
_TEMPORARY = re.compile(r"\..+\.tmp")
_steps_taken = 0


def _step() -> None:
    """A point where a write can be interrupted: SIGKILL ourselves here if GPUNET_KILL_AT_WRITE_STEP says so."""
    global _steps_taken
    kill_at = os.environ.get(KILL_VARIABLE)
    if kill_at:
        _steps_taken += 1
        if _steps_taken == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)


def fsync_directory(directory: str) -> None:
    """Make a rename or removal in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write) -> None:
    """Call ``write(file)`` on a binary temporary file beside ``path``, fsync it and rename it over ``path``.
    If anything fails the temporary file is removed and ``path`` is untouched."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        _step()
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            _step()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        _step()
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _step()
    fsync_directory(directory)


def atomic_write_text(path, text: str) -> None:
    """``atomic_write`` of UTF-8 text."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def append_text(path, text: str) -> None:
    """Append ``text`` to ``path`` (created if missing) and fsync it."""
    path = os.fspath(path)
    created = not os.path.exists(path)
    with open(path, "a", encoding="utf-8") as f:
        half = len(text) // 2
        f.write(text[:half])
        f.flush()
        _step()  # a kill here leaves a torn line
        f.write(text[half:])
        f.flush()
        os.fsync(f.fileno())
    _step()
    if created:
        fsync_directory(os.path.dirname(os.path.abspath(path)))


def remove_stale_temporaries(directory) -> list[str]:
    """Delete the ``.<name>.<random>.tmp`` files a killed process left in ``directory``; returns their paths."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        return []
    removed = [os.path.join(directory, name) for name in sorted(os.listdir(directory)) if _TEMPORARY.fullmatch(name)]
    for path in removed:
        os.unlink(path)
    if removed:
        fsync_directory(directory)
    return removed

