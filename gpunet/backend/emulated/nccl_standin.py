"""A stand-in for ``cupy.cuda.nccl`` on the emulated device: the NCCL calls gpunet makes, reduced through MPI.

Each MPI rank is one emulated GPU (``cuda-emu:<local rank>``). As with NCCL through CuPy 14:

- ``get_unique_id()`` gives 128 bytes, which the ranks share (over MPI) before each makes its
  ``NcclCommunicator(ndev, unique_id, rank)``; the communicator belongs to the device current at its creation;
- ``allReduce(sendbuf, recvbuf, count, datatype, op, stream)`` takes device pointers (``array.data.ptr``) and a
  stream pointer (``stream.ptr``, 0 for the null stream); a buffer or a stream on another device than the
  communicator's, an unknown stream, a count beyond a buffer or a datatype that is not the buffer's raises
  ``NcclStandinError``;
- the reduction is enqueued on that stream (``streams``): it must be ordered after the work that wrote its buffers
  (an event recorded there and waited for by the stream, else ``StreamOrderError``), it completes asynchronously
  (an MPI ``Iallreduce``: an event recorded after it is not ``done`` until every rank joined), and work reading
  its result must be ordered after it in turn;
- between ``groupStart()`` and ``groupEnd()`` the calls are only queued and enqueued at ``groupEnd()``; an unpaired
  ``groupEnd()``, and destroying a communicator inside an open group, raise;
- ``abort()`` (``ncclCommAbort``) drops the communicator's unfinished collectives (their streams go on); any later
  call, ``check_async_error()`` too, raises ``NcclError`` as CuPy's do on the freed communicator.
"""
from __future__ import annotations

import os
import threading
import weakref

import numpy

from . import streams
from .device_array import DeviceArray, current_device

available = True
NCCL_FLOAT32, NCCL_FLOAT64 = 7, 8  # ncclDataType_t values of nccl.h
NCCL_SUM = 0  # ncclRedOp_t
_DTYPES = {NCCL_FLOAT32: numpy.dtype(numpy.float32), NCCL_FLOAT64: numpy.dtype(numpy.float64)}
_groups = threading.local()
_arrays: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # pointer -> the device array it points into


class NcclStandinError(RuntimeError):
    """A NCCL call that would be wrong (or undefined) on real GPUs."""


class NcclError(RuntimeError):
    """CuPy's error of a failed NCCL call (here: a call on an aborted or destroyed communicator, whose handle CuPy
    has set to NULL: NCCL_ERROR_INVALID_ARGUMENT)."""


class MemoryPointer:
    """``array.data`` of a device array: its address (``ptr``) and device, as ``cupy.cuda.MemoryPointer``."""

    def __init__(self, array: DeviceArray):
        self.ptr, self.device_id = array.ctypes.data, array.device_id
        _arrays[self.ptr] = array


UNIQUE_ID_BYTES = 128  # NCCL_UNIQUE_ID_BYTES


def get_unique_id() -> bytes:
    return os.urandom(UNIQUE_ID_BYTES)


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

    def __init__(self, ndev: int, unique_id: bytes, rank: int):
        from mpi4py import MPI

        if not isinstance(unique_id, bytes):
            raise TypeError(f"the unique id must be bytes (CuPy 14's nccl.get_unique_id()), got "
                            f"{type(unique_id).__name__}")
        if len(unique_id) != UNIQUE_ID_BYTES:
            raise ValueError(f"commId length {len(unique_id)} != {UNIQUE_ID_BYTES}.")  # CuPy's message
        colour = int.from_bytes(unique_id[:4], "little") & 0x7FFFFFFF
        self._mpi = MPI.COMM_WORLD.Split(colour, rank)
        if self._mpi.Get_size() != ndev or self._mpi.Get_rank() != rank:
            raise NcclStandinError(f"NcclCommunicator({ndev}, id, {rank}): {self._mpi.Get_size()} ranks share the "
                                   f"id and this one is rank {self._mpi.Get_rank()} among them")
        self._device_id = current_device()
        self._closed = None  # "destroyed" or "aborted" once it is
        self._work: list[int] = []  # the numbers of its collectives enqueued so far (their streams' work)

    def _check_usable(self) -> None:
        if self._closed:
            raise NcclError(f"NCCL_ERROR_INVALID_ARGUMENT: the communicator was {self._closed}")

    def device_id(self) -> int:
        self._check_usable()
        return self._device_id

    def rank_id(self) -> int:
        self._check_usable()
        return self._mpi.Get_rank()

    def size(self) -> int:
        self._check_usable()
        return self._mpi.Get_size()

    def _buffer(self, pointer: int, count: int, datatype: int, what: str) -> DeviceArray:
        array = _arrays.get(pointer)
        if array is None:
            raise NcclStandinError(f"allReduce {what}: {pointer:#x} is not the .data.ptr of a live device array")
        if array.device_id != self._device_id:
            raise NcclStandinError(f"allReduce {what}: the buffer is on cuda-emu:{array.device_id}, the communicator "
                                   f"on cuda-emu:{self._device_id} (each rank reduces on its own device)")
        if _DTYPES.get(datatype) != array.dtype:
            raise NcclStandinError(f"allReduce {what}: datatype {datatype} does not match the buffer's {array.dtype}")
        if not array.flags.c_contiguous:
            raise NcclStandinError(f"allReduce {what}: the buffer is not contiguous (NCCL reads count values in a row)")
        if count > array.size:
            raise NcclStandinError(f"allReduce {what}: count {count} exceeds the buffer's {array.size} elements")
        return array

    def allReduce(self, sendbuf: int, recvbuf: int, count: int, datatype: int, op: int, stream: int) -> None:  # noqa: N802
        self._check_usable()
        if op != NCCL_SUM:
            raise NcclStandinError(f"the stand-in reduces with NCCL_SUM only, got op {op}")
        if not isinstance(stream, int):
            raise NcclStandinError(f"stream must be a stream pointer (stream.ptr, an int), got {type(stream).__name__}")
        queue = streams.stream_queue(stream, self._device_id)
        if queue is None:
            raise NcclStandinError(f"allReduce: stream {stream:#x} is not the .ptr of a live cupy.cuda.Stream")
        if queue.device != self._device_id:
            raise NcclStandinError(f"allReduce: the stream is on cuda-emu:{queue.device}, the communicator on "
                                   f"cuda-emu:{self._device_id}")
        send = self._buffer(sendbuf, count, datatype, "sendbuf")
        receive = self._buffer(recvbuf, count, datatype, "recvbuf")
        if _group_depth():
            _groups.queued.append(lambda: self._enqueue(queue, send, receive, count))
        else:
            self._enqueue(queue, send, receive, count)

    def _enqueue(self, queue, send: DeviceArray, receive: DeviceArray, count: int) -> None:
        """The reduction as work on ``queue``: checked against the work that wrote (or reads) its buffers, then an
        MPI ``Iallreduce`` that completes when every rank joined."""
        from mpi4py import MPI

        streams.check_order(queue, "allReduce (sendbuf)", reads=(send,))
        streams.check_order(queue, "allReduce (recvbuf)", writes=(receive,))
        streams.settle(send)  # on a GPU the stream runs it after that work: its values are final
        values = send.reshape(-1).view(numpy.ndarray)[:count].copy()
        result = receive.reshape(-1).view(numpy.ndarray)[:count]
        request = self._mpi.Iallreduce(values, result, op=MPI.SUM)
        tick = streams.asynchronous(queue, request.Test, request.Wait, keep=(values, result))
        self._work.append(tick)
        streams.note_collective(queue, tick, "allReduce", reads=(send,), writes=(receive,))

    def check_async_error(self) -> None:
        """``ncclCommGetAsyncError``: nothing fails asynchronously here (MPI raises at once); an aborted or
        destroyed communicator's check fails."""
        self._check_usable()

    def destroy(self) -> None:
        if _group_depth():
            raise NcclStandinError("destroy() inside an open groupStart()/groupEnd()")
        if not self._closed:
            self._mpi.Free()
        self._closed = self._closed or "destroyed"

    def abort(self) -> None:
        """``ncclCommAbort``: its unfinished collectives are given up (events after them become done)."""
        streams.cancel(self._work)
        self._closed = "aborted"
