"""Clean stops on SIGINT (Ctrl-C) and SIGTERM (what a cluster scheduler sends before it pre-empts a job).

While ``Trainer.fit`` runs, ``StopSignals`` turns the first of these signals into a request: the step in progress
finishes, every callback's ``on_interrupt`` runs (``ModelCheckpoint`` writes a mid-epoch checkpoint there) and
``fit`` raises ``TrainingInterrupted``. A second signal stops at once. ``TrainingInterrupted`` is a
``KeyboardInterrupt``, so code that handles Ctrl-C handles both; the ``gpunet`` command exits with 130 (SIGINT) or
143 (SIGTERM), the shell's numbers for a process ended by those signals, and prints the command that continues
the run (``resume_command``).
"""
from __future__ import annotations

import os
import shlex
import signal
import sys
import threading

__all__ = ["StopSignals", "TrainingInterrupted", "resume_command"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on ``signum``. ``at_once``: by a second signal, in the middle of whatever was running, so
    nothing was saved for this point. ``where``: the epoch and step it stopped after, when known. ``run_dir`` and
    ``checkpoint`` are filled in by whoever knows them (``gpunet.runner.run``)."""

    def __init__(self, signum: int, where: str | None = None, at_once: bool = False):
        self.signum, self.where, self.at_once = signum, where, at_once
        self.run_dir: str | None = None
        self.checkpoint: str | None = None
        super().__init__(self.describe())

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum

    def describe(self) -> str:
        if self.at_once:
            return f"stopped at once by a second {self.signal_name}; nothing was saved for this point"
        saved = f"; saved {self.checkpoint}" if self.checkpoint else ""
        return f"stopped by {self.signal_name} after {self.where or 'the current step'}{saved}"


class StopSignals:
    """A context manager: while active (and in the main thread, the only one Python delivers signals to), the
    first SIGINT or SIGTERM only sets ``received`` and says on stderr what happens next; a second one raises
    ``TrainingInterrupted(at_once=True)`` where the program is. The previous handlers come back on exit."""

    def __init__(self):
        self.received: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None:
            raise TrainingInterrupted(signum, at_once=True)
        self.received = signum
        notice = (f"gpunet: {signal.Signals(signum).name} received: finishing the current step, then "
                  "stopping cleanly (Ctrl-C again stops at once)\n")
        try:
            sys.stderr.write(notice)
            sys.stderr.flush()
        except (RuntimeError, OSError, ValueError):  # the signal came in the middle of a write to stderr
            os.write(2, notice.encode())


def resume_command(argv: list[str], run_dir: str | None, has_out: bool, has_resume: bool) -> str:
    """The command line ``argv`` (the words the user typed, program name first) with what continues its run:
    ``--out run_dir`` when it had no ``--out``, and ``--resume`` when it had none; quoted for a POSIX shell."""
    words = list(argv)
    if not has_out and run_dir is not None:
        words += ["--out", run_dir]
    if not has_resume:
        words.append("--resume")
    return shlex.join(words)
