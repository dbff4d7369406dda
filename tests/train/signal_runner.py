"""``python signal_runner.py ARGS...`` is ``gpunet ARGS...`` with two test hooks, read from the environment:
``SIGNAL_AT="STEP:NAME[,NAME]"`` sends those signals (``TERM``, ``INT``) to this process during global step STEP
(from 1), and ``STEP_SLEEP=SECONDS`` makes every training step that much slower (for a signal sent from outside)."""
import os
import signal
import sys
import time

from gpunet.cli import main
from gpunet.train.trainer import Trainer

_step = Trainer._train_step
_at, _, _names = os.environ.get("SIGNAL_AT", "").partition(":")
_sleep = float(os.environ.get("STEP_SLEEP", "0"))


def _train_step(self, x, y):
    if _at and self.global_step + 1 == int(_at):
        for name in _names.split(","):
            os.kill(os.getpid(), getattr(signal, "SIG" + name))
    time.sleep(_sleep)
    return _step(self, x, y)


Trainer._train_step = _train_step

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
