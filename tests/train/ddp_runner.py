"""``python ddp_runner.py ARGS...``: the gpunet command (``gpunet.cli.main(ARGS)``), with a fault injected into one
rank of a data-parallel run for the tests: ``GPUNET_TEST_FAULT=kill`` (SIGKILL itself), ``hang`` (sleep for an
hour) or ``term`` (SIGTERM itself, then train on) on rank ``GPUNET_TEST_FAULT_RANK`` (default 1), at its third
training step. ``GPUNET_TEST_NCCL_LOG=1``: each rank counts its calls of the NCCL stand-in and prints
``nccl: rank R device D communicators C groups G allReduce A open groups O streams S`` at exit (S: the stream
pointers the allReduce calls named, comma-separated), and ``nccl: rank R aborts its communicator`` when it does."""
import atexit
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

if os.environ.get("GPUNET_TEST_NCCL_LOG"):
    from gpunet.backend.emulated import nccl_standin

    counts = {"communicators": 0, "groups": 0, "allReduce": 0, "device": None, "streams": set()}

    def counted(name, function, device=False):
        def call(*args, **kwargs):
            counts[name] += 1
            result = function(*args, **kwargs)
            if device:
                counts["device"] = args[0].device_id()
            if name == "allReduce":
                counts["streams"].add(args[6])
            return result
        return call

    nccl_standin.NcclCommunicator.__init__ = counted("communicators", nccl_standin.NcclCommunicator.__init__, True)
    nccl_standin.NcclCommunicator.allReduce = counted("allReduce", nccl_standin.NcclCommunicator.allReduce)
    nccl_standin.groupStart = counted("groups", nccl_standin.groupStart)
    abort = nccl_standin.NcclCommunicator.abort

    def announced_abort(self):
        print(f"nccl: rank {os.environ.get('OMPI_COMM_WORLD_RANK')} aborts its communicator", file=sys.stderr,
              flush=True)
        abort(self)

    nccl_standin.NcclCommunicator.abort = announced_abort
    atexit.register(lambda: print(f"nccl: rank {os.environ.get('OMPI_COMM_WORLD_RANK')} device {counts['device']} "
                                  f"communicators {counts['communicators']} groups {counts['groups']} allReduce "
                                  f"{counts['allReduce']} open groups {nccl_standin.open_groups()} streams "
                                  f"{','.join(map(str, sorted(counts['streams'])))}",
                                  file=sys.stderr, flush=True))

sys.exit(main(sys.argv[1:]))
