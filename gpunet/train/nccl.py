"""The GPU path of data-parallel training: gradient buckets all-reduced by NCCL (``cupy.cuda.nccl``) on the device.

As ChainerMN does: rank 0 makes the NCCL unique id, MPI carries it to every rank, and each rank makes its
``NcclCommunicator`` on its own GPU (``cuda:<local rank>``). Every step's buckets and the small tail (loss sum,
sample count, stop flag, has-gradient flags) are flattened on the device in float64 and reduced by one
``allReduce`` each, all between one ``groupStart()``/``groupEnd()``, on the current CuPy stream (gpunet's: every
kernel of the step runs on it, so the reduction follows backward's kernels without a synchronisation). The buckets
are enqueued after backward rather than from the gradient-ready hook: on one stream a collective enqueued earlier
would not run beside the rest of backward but between its kernels (overlap needs a second stream and events, not
done). On ``cuda-emu`` the same code runs against ``gpunet.backend.emulated.nccl_standin``, which reduces through MPI.
"""
from __future__ import annotations

__all__ = ["NcclReducer", "nccl_communicator", "nccl_module"]


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
        self.reset(None)

    def reset(self, count: int | None) -> None:
        self.count = count

    def gradient_ready(self, parameter) -> None:
        """Nothing is enqueued during backward on the GPU path (see the module docstring)."""

    def finish(self, world_, loss: float | None, stop: bool) -> tuple[float, bool]:
        from .distributed import tail, unpack

        backend = self.parameters[0].backend
        xp, nccl = backend.xp, self.nccl
        with backend.activate():
            sends = [xp.concatenate([p.grad.data.reshape(-1).astype(xp.float64) * self.count if p.grad is not None
                                     else xp.zeros(p.data.size, dtype=xp.float64) for p in bucket])
                     for bucket in self.buckets]
            sends.append(xp.asarray(tail(self.parameters, loss, self.count, stop)))
            receives = [xp.empty_like(send) for send in sends]
            stream = xp.cuda.get_current_stream().ptr
            nccl.groupStart()
            try:
                for send, receive in zip(sends, receives):
                    self.communicator.allReduce(send.data.ptr, receive.data.ptr, send.size, nccl.NCCL_FLOAT64,
                                                nccl.NCCL_SUM, stream)
            finally:
                nccl.groupEnd()
            total_tail = backend.to_numpy(receives.pop())  # waits for the stream: the reduction is done
            result = unpack(self.parameters, self.buckets, receives, total_tail)
        self.reset(None)
        return result
