"""The GPU path of data-parallel training: gradient buckets all-reduced by NCCL (``cupy.cuda.nccl``) on the device,
overlapping backward.

As ChainerMN does: rank 0 makes the NCCL unique id, MPI carries it to every rank, and each rank makes its
``NcclCommunicator`` on its own GPU (``cuda:<local rank>``); every parameter set (optimizer) has its own, as on the
MPI path. As PyTorch DDP and Horovod do, a bucket is reduced as soon as backward has finished its gradients (the
engine's gradient-ready hook): it is packed on the compute stream (the current one, where backward's kernels run), an
event recorded there makes a communication stream of its own (non-blocking: the null stream does not wait for it)
wait, and its ``allReduce`` goes to that stream, so it runs beside the rest of backward. The buckets backward did not
start and the small tail (loss sum, sample count, stop flag, has-gradient flags) follow after backward, each all-
reduce in a ``groupStart()``/``groupEnd()`` of its own, so every rank makes the same groups. Then a watchdog (as
PyTorch's ProcessGroupNCCL, and the polling loop of NCCL's user guide) polls an event recorded on the communication
stream and ``check_async_error()``: past ``GPUNET_DIST_TIMEOUT`` it aborts the communicator (``ncclCommAbort``) and
the job, naming the ranks that are not there; otherwise the compute stream waits for that event and unpacks. Buckets
are float32 when all their parameters are (half of float64's bytes), float64 otherwise; the tail is float64. The
buffers live until the compute stream is ordered after the reduction (CuPy's pool would otherwise reuse them on the
compute stream).
On ``cuda-emu`` the same code runs against ``gpunet.backend.emulated.nccl_standin``, which reduces through MPI and
checks the order of the streams.
"""
from __future__ import annotations

import numpy as np

__all__ = ["NcclReducer", "nccl_communicator", "nccl_module"]

WATCHDOG_PAUSE = 1e-4  # seconds between two polls of the reductions' event at most: a GPU step takes milliseconds


def nccl_module(backend):
    """``cupy.cuda.nccl`` (or the emulator's stand-in) when ``backend`` is a CUDA device's and NCCL is available,
    else None (gradients are then staged through host memory and MPI)."""
    device = getattr(backend, "device", None)
    if getattr(device, "kind", None) not in ("cuda", "cuda-emu"):
        return None
    nccl = getattr(backend.xp.cuda, "nccl", None)  # the stand-in's; CuPy imports its submodule on request
    if nccl is None:
        try:
            from cupy.cuda import nccl
        except ImportError:
            return None
    return nccl if getattr(nccl, "available", False) else None


def nccl_communicator(world_, backend, nccl):
    """This rank's NCCL communicator on ``backend``'s device; rank 0's unique id reaches the others over MPI."""
    from .distributed import allgather

    unique_id = allgather(world_, nccl.get_unique_id() if world_.rank == 0 else None, "the NCCL unique id")[0]
    with backend.activate():
        return nccl.NcclCommunicator(world_.size, unique_id, world_.rank)


class NcclReducer:
    """The all-reduce of one set of parameters through NCCL (the interface of ``distributed._Reducer``)."""

    def __init__(self, communicator, nccl, parameters: list, buckets: list[list]):
        self.communicator, self.nccl = communicator, nccl
        self.parameters, self.buckets = parameters, buckets
        self.backend = parameters[0].backend
        self.bucket_of = {id(p): i for i, bucket in enumerate(buckets) for p in bucket}
        self.dtypes = [bucket_dtype(bucket) for bucket in buckets]
        with self.backend.activate():
            self.stream = self.backend.xp.cuda.Stream(non_blocking=True)
        self.reset(None)

    def reset(self, count: int | None) -> None:
        """Start a step whose local gradients are of the mean loss over ``count`` samples."""
        self.count = count
        self.ready = [0] * len(self.buckets)
        self.started: list = []  # (received, sent) device buffers per all-reduce enqueued, in bucket order

    def gradient_ready(self, parameter) -> None:
        """``parameter``'s gradient is final: enqueue every bucket, in order, whose gradients are all ready (every
        rank enqueues the same collectives in the same order, as NCCL needs)."""
        self.ready[self.bucket_of[id(parameter)]] += 1
        first = last = len(self.started)
        while last < len(self.buckets) and self.ready[last] == len(self.buckets[last]):
            last += 1
        with self.backend.activate():
            for index in range(first, last):
                self._enqueue(self._pack(index))

    def _pack(self, index: int):
        """Bucket ``index``'s gradients, weighted by the sample count, flattened on the compute stream."""
        xp, dtype = self.backend.xp, self.dtypes[index]
        return xp.concatenate([p.grad.data.reshape(-1).astype(dtype) * dtype.type(self.count) if p.grad is not None
                               else xp.zeros(p.data.size, dtype=dtype) for p in self.buckets[index]])

    def _enqueue(self, send) -> None:
        """All-reduce ``send`` on the communication stream, after the compute stream's work so far (which wrote
        it), in an NCCL group of its own: every rank then makes the same groups, one per bucket and one for the
        tail, whichever buckets its backward finished early (a rank with an empty share has no backward at all)."""
        xp, nccl = self.backend.xp, self.nccl
        receive = xp.empty_like(send)
        self.stream.wait_event(xp.cuda.get_current_stream().record())
        nccl.groupStart()
        try:
            self.communicator.allReduce(send.data.ptr, receive.data.ptr, send.size, nccl_datatype(nccl, send.dtype),
                                        nccl.NCCL_SUM, self.stream.ptr)
        finally:
            nccl.groupEnd()
        self.started.append((receive, send))

    def finish(self, world_, loss: float | None, stop: bool) -> tuple[float, bool]:
        """Enqueue what backward did not and the tail, wait for the reductions (the watchdog), and put the
        global-batch gradients in ``.grad``."""
        from .distributed import tail, unpack

        xp = self.backend.xp
        with self.backend.activate():
            for index in range(len(self.started), len(self.buckets)):
                self._enqueue(self._pack(index))
            self._enqueue(xp.asarray(tail(self.parameters, loss, self.count, stop)))
            reduced = self.stream.record()
            self._watch(world_, reduced)
            xp.cuda.get_current_stream().wait_event(reduced)
            receives = [receive for receive, _ in self.started]
            total_tail = self.backend.to_numpy(receives.pop())
            result = unpack(self.parameters, self.buckets, receives, total_tail)
        self.reset(None)  # the buffers go: the compute stream is ordered after the reductions
        return result

    def _watch(self, world_, reduced) -> None:
        """Wait until the event ``reduced`` is done, checking NCCL's asynchronous errors (the polling loop of NCCL's
        user guide, in the main thread: the host reads the tail right after anyway); past the timeout abort the
        communicator and the job, naming the ranks that are not there."""
        from .distributed import wait_until

        def complete() -> bool:
            try:
                self.communicator.check_async_error()
            except self.nccl.NcclError as error:  # a remote rank failed, a network error
                self.communicator.abort()
                world_.fail(f"the NCCL gradient all-reduce failed ({error})")
            return reduced.done

        wait_until(world_, complete, "the NCCL gradient all-reduce", on_timeout=self.communicator.abort,
                   longest_pause=WATCHDOG_PAUSE)


def bucket_dtype(bucket: list):
    """The dtype a bucket is reduced in: float32 when all its parameters are float32 (or narrower), else float64."""
    return np.dtype(np.float64 if any(p.data.dtype == np.float64 for p in bucket) else np.float32)


def nccl_datatype(nccl, dtype) -> int:
    return {"float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}[dtype.name]
