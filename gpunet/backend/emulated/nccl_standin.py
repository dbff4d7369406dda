"""A stand-in for ``cupy.cuda.nccl`` on the emulated device: the NCCL calls gpunet makes, reduced through MPI.

Each MPI rank is one emulated GPU (``cuda-emu:<local rank>``). As with NCCL:

- ``get_unique_id()`` gives a tuple of 128 ints, which the ranks share (over MPI) before each makes its
  ``NcclCommunicator(ndev, unique_id, rank)``; the communicator belongs to the device current at its creation;
- ``allReduce(sendbuf, recvbuf, count, datatype, op, stream)`` takes device pointers (``array.data.ptr``) and a
  stream pointer; a buffer on another device than the communicator's, a count beyond a buffer or a datatype that
  is not the buffer's raises ``NcclStandinError``;
- between ``groupStart()`` and ``groupEnd()`` the calls are only queued and run at ``groupEnd()``; an unpaired
  ``groupEnd()``, and destroying a communicator (or reading a result) inside an open group, raise.

The work is synchronous (one MPI ``Allreduce`` per call, on the host views of the device memory), so a stream is
accepted but has nothing to order.
"""
from __future__ import annotations

import os
import threading
import weakref

import numpy

from .device_array import DeviceArray, current_device

available = True
NCCL_FLOAT32, NCCL_FLOAT64 = 7, 8  # ncclDataType_t values of nccl.h
NCCL_SUM = 0  # ncclRedOp_t
_DTYPES = {NCCL_FLOAT32: numpy.dtype(numpy.float32), NCCL_FLOAT64: numpy.dtype(numpy.float64)}
_groups = threading.local()
_arrays: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # pointer -> the device array it points into


class NcclStandinError(RuntimeError):
    """A NCCL call that would be wrong (or undefined) on real GPUs."""


class MemoryPointer:
    """``array.data`` of a device array: its address (``ptr``) and device, as ``cupy.cuda.MemoryPointer``."""

    def __init__(self, array: DeviceArray):
        self.ptr, self.device_id = array.ctypes.data, array.device_id
        _arrays[self.ptr] = array


def get_unique_id() -> tuple:
    return tuple(int(b) for b in os.urandom(128))


def _group_depth() -> int:
    return getattr(_groups, "depth", 0)


def groupStart() -> None:  # noqa: N802 (CuPy's names)
    _groups.depth = _group_depth() + 1
    _groups.__dict__.setdefault("queued", [])


def groupEnd() -> None:  # noqa: N802
    if _group_depth() == 0:
        raise NcclStandinError("groupEnd() without a matching groupStart()")
    _groups.depth -= 1
    if _groups.depth == 0:
        queued, _groups.queued = _groups.queued, []
        for run in queued:
            run()


def open_groups() -> int:
    """How many ``groupStart()`` are not yet closed on this thread (0 after a correct step)."""
    return _group_depth()


class NcclCommunicator:
    """One rank's communicator among ``ndev`` ranks sharing ``unique_id``: a split of MPI's world by that id."""

    def __init__(self, ndev: int, unique_id: tuple, rank: int):
        from mpi4py import MPI

        if len(unique_id) != 128:
            raise NcclStandinError(f"the unique id has {len(unique_id)} values, not 128: pass nccl.get_unique_id()")
        colour = int.from_bytes(bytes(b % 256 for b in unique_id[:4]), "little") & 0x7FFFFFFF
        self._mpi = MPI.COMM_WORLD.Split(colour, rank)
        if self._mpi.Get_size() != ndev or self._mpi.Get_rank() != rank:
            raise NcclStandinError(f"NcclCommunicator({ndev}, id, {rank}): {self._mpi.Get_size()} ranks share the "
                                   f"id and this one is rank {self._mpi.Get_rank()} among them")
        self.device_id = current_device()

    def rank_id(self) -> int:
        return self._mpi.Get_rank()

    def size(self) -> int:
        return self._mpi.Get_size()

    def _buffer(self, pointer: int, count: int, datatype: int, what: str) -> numpy.ndarray:
        array = _arrays.get(pointer)
        if array is None:
            raise NcclStandinError(f"allReduce {what}: {pointer:#x} is not the .data.ptr of a live device array")
        if array.device_id != self.device_id:
            raise NcclStandinError(f"allReduce {what}: the buffer is on cuda-emu:{array.device_id}, the communicator "
                                   f"on cuda-emu:{self.device_id} (each rank reduces on its own device)")
        if _DTYPES.get(datatype) != array.dtype:
            raise NcclStandinError(f"allReduce {what}: datatype {datatype} does not match the buffer's {array.dtype}")
        if not array.flags.c_contiguous:
            raise NcclStandinError(f"allReduce {what}: the buffer is not contiguous (NCCL reads count values in a row)")
        if count > array.size:
            raise NcclStandinError(f"allReduce {what}: count {count} exceeds the buffer's {array.size} elements")
        return array.reshape(-1).view(numpy.ndarray)[:count]

    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int, stream: int) -> None:  # noqa: N802
        from mpi4py import MPI

        if op != NCCL_SUM:
            raise NcclStandinError(f"the stand-in reduces with NCCL_SUM only, got op {op}")
        if not isinstance(stream, int):
            raise NcclStandinError(f"stream must be a stream pointer (int), got {type(stream).__name__}")
        send = self._buffer(sendbuf, count, datatype, "sendbuf")
        receive = self._buffer(recvbuf, count, datatype, "recvbuf")

        def run():
            self._mpi.Allreduce(send.copy(), receive, op=MPI.SUM)

        if _group_depth():
            _groups.queued.append(run)
        else:
            run()

    def destroy(self) -> None:
        if _group_depth():
            raise NcclStandinError("destroy() inside an open groupStart()/groupEnd()")
        self._mpi.Free()

    def abort(self) -> None:
        self._mpi.Free()
