"""``python ddp_runner.py ARGS...``: the gpunet command (``gpunet.cli.main(ARGS)``), with a fault injected into one
rank of a data-parallel run for the tests: ``GPUNET_TEST_FAULT=kill`` (SIGKILL itself), ``hang`` (sleep for an
hour) or ``term`` (SIGTERM itself, then train on) on rank ``GPUNET_TEST_FAULT_RANK`` (default 1), at its third
training step."""
import os
import signal
import sys
import time

from gpunet.cli import main
from gpunet.train.trainer import Trainer

FAULT = os.environ.get("GPUNET_TEST_FAULT")
if FAULT and os.environ.get("OMPI_COMM_WORLD_RANK") == os.environ.get("GPUNET_TEST_FAULT_RANK", "1"):
    train_step = Trainer._train_step

    def faulty_step(self, x, y):
        if self.global_step == 2:
            if FAULT == "hang":
                time.sleep(3600)
            os.kill(os.getpid(), signal.SIGKILL if FAULT == "kill" else signal.SIGTERM)
        return train_step(self, x, y)

    Trainer._train_step = faulty_step

sys.exit(main(sys.argv[1:]))
