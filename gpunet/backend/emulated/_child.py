"""Subprocess side of an isolated or AddressSanitizer launch (see ``Module.launch``).

Every array argument gets its own exactly sized, freshly allocated copy, so that ASan's redzones
sit right at its edges; the arrays the kernel may write are sent back."""

import os
import ctypes
import pickle
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .errors import CudaEmuError
from .module import _launch_in_process, _library
from .signature import convert_args


def _finish(result_path: str, result: dict) -> None:
    Path(result_path).write_bytes(pickle.dumps(result))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # do not wait for kernel threads stuck in a loop


def _watchdog(job: dict) -> None:
    """End the process if no thread reaches a barrier or finishes for ``timeout`` seconds: a
    thread spinning forever cannot be stopped otherwise (and in mode "fibers" nothing else sees it)."""
    lib, _ = _library(Path(job["library"]))
    lib.gpunet_emu_progress.restype = ctypes.c_ulonglong
    last, since = lib.gpunet_emu_progress(), time.monotonic()
    while True:
        time.sleep(0.05)
        now, seen = time.monotonic(), lib.gpunet_emu_progress()
        if seen != last:
            last, since = seen, now
        elif now - since > job["timeout"] + 1.0:
            _finish(job["result"], {"error": (
                f"kernel '{job['signature'].name}': deadlock: no thread reached a barrier or finished for more "
                f"than {job['timeout']:.3g} s (mode {job['mode']}); a thread spins forever, perhaps waiting for "
                "something another thread of the block does after a __syncthreads()")})


def main(job_path: str) -> None:
    job = pickle.loads(Path(job_path).read_bytes())
    threading.Thread(target=_watchdog, args=(job,), daemon=True).start()
    sig = job["signature"]
    args = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in job["args"]]
    try:
        _launch_in_process(Path(job["library"]), sig, job["grid"], job["block"], convert_args(sig, args),
                           job["shared_mem"], job["timeout"], job["mode"], job["ftz"])
        outputs = {i: a for i, (p, a) in enumerate(zip(sig.params, args)) if p.pointer and not p.const}
        result = {"outputs": outputs}
    except CudaEmuError as exc:
        result = {"error": str(exc)}
    _finish(job["result"], result)


if __name__ == "__main__":
    main(sys.argv[1])
