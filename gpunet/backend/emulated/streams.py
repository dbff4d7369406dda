"""Streams and events of the emulated device (``cupy.cuda.Stream``, ``Event``, ``get_current_stream``), with the
ordering a GPU needs between streams checked.

The emulator runs every operation to completion when it is called, so streams change no result here; what they
model is the order a GPU would guarantee, so that code relying on an order it did not ask for fails:

- every stream is a queue of work (the null stream is one queue per device); each queue keeps a clock: for every
  other queue, the last work known to be done before its next work. ``event.record(stream)`` takes the stream's
  clock, ``stream.wait_event(event)`` merges it (transitively), and the legacy null stream orders itself with
  the blocking streams of its device both ways (``Stream(non_blocking=True)`` opts out), as CUDA does;
- while a stream other than the null one lives in the process (``tracking``), every operation on device arrays runs on
  the current stream (per host thread and device, ``with stream:``) and is checked: reading an array, or writing
  one, that work on another queue wrote (or reads, for the NCCL stand-in's collectives) without that work being
  in the queue's clock raises ``StreamOrderError`` naming both streams (on a GPU: a race). Freeing a buffer that a
  collective on another stream used before the allocating stream was ordered after it is reported at the next
  operation (CuPy's pool would hand the memory to new work on the allocating stream while the collective runs);
- asynchronous work (``asynchronous``: the stand-in's collectives, which wait for other processes) stays pending
  until a later operation ordered after it, ``synchronize()``, or ``done`` finds it complete; so a collective that
  another rank never joins keeps ``event.done`` false, as on a GPU, and a wait for it can time out. (An operation
  ordered after unfinished work blocks the host here, where a GPU would stall only the stream.)
"""
from __future__ import annotations

import itertools
import threading
import time
import weakref

import numpy

from .errors import CudaEmuError

__all__ = ["Event", "Stream", "StreamOrderError", "asynchronous", "get_current_stream"]

tracking = False  # True while a stream other than the null stream lives (or its work): operations are then checked
_streams_alive = 0
_ticks = itertools.count(1)  # work items, numbered in the order the host enqueued them (every queue)
_pointers = itertools.count(0x7E0000)  # fake cudaStream_t / cudaEvent_t handles
_live_streams: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # pointer -> Stream
_pending: list = []  # asynchronous work not known complete: _Work
_violations: list = []  # errors found where they cannot be raised (a buffer's finaliser)
_cancelled: set = set()  # the numbers of the work given up (``cancel``)
_writers: dict = {}  # id(memory owner) -> _Access of the work that wrote it last
_readers: dict = {}  # id(memory owner) -> _Access of the asynchronous work reading it
_local = threading.local()
_null_queues: dict = {}  # device -> the queue of its null stream
_blocking_queues: set = set()  # the queues of the live blocking streams (not the null stream's)


def _current_device() -> int:
    from .device_array import current_device  # (device_array imports this module)

    return current_device()


class StreamOrderError(CudaEmuError):
    """Work on one stream used memory of work on another stream with nothing ordering the two (a race on a GPU)."""


class _Queue:
    """The work of one stream on one device: ``last`` (the latest work's number) and ``clock``."""

    def __init__(self, name: str, device: int, blocking: bool):
        self.name, self.device, self.blocking = name, device, blocking
        self.last = 0
        self.clock: dict = {}  # _Queue -> number of its latest work done before this queue's next work

    def snapshot(self) -> dict:
        clock = dict(self.clock)
        clock[self] = self.last
        return clock

    def covers(self, queue: _Queue, tick: int) -> bool:
        return tick <= (self.last if queue is self else self.clock.get(queue, 0))

    def merge(self, clock: dict) -> None:
        for queue, tick in clock.items():
            if queue is not self and tick > self.clock.get(queue, 0):
                self.clock[queue] = tick

    def arrive(self) -> None:
        """New work is coming: on the legacy null stream it waits for the blocking streams' earlier work, on a
        blocking stream for the null stream's (CUDA's implicit synchronisation)."""
        null = _null_queue(self.device)
        if self is null:
            for queue in _blocking_queues:
                if queue.device == self.device:
                    self.merge(queue.snapshot())
        elif self.blocking:
            self.merge(null.snapshot())

    def enqueue(self) -> int:
        """Number a new work item (``arrive`` was called for it)."""
        self.last = next(_ticks)
        return self.last


def _null_queue(device: int) -> _Queue:
    if device not in _null_queues:
        _null_queues[device] = _Queue(f"the null stream of cuda-emu:{device}", device, blocking=True)
    return _null_queues[device]


class Stream:
    """``cupy.cuda.Stream(null=False, non_blocking=False, ptds=False, priority=None)``: a new stream of the current
    device (``ptr`` a handle, ``device_id``), or the null stream (``Stream.null``: ``ptr`` 0, ``device_id`` -1, the
    current device's)."""

    null: Stream  # set below

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        global _streams_alive
        if ptds:
            raise CudaEmuError("the emulated device has no per-thread default stream (ptds=True)")
        if null:
            self.ptr, self.device_id, self._queue = 0, -1, None
        else:
            self.ptr, self.device_id = next(_pointers), _current_device()
            self._queue = _Queue(f"stream {self.ptr:#x} of cuda-emu:{self.device_id}", self.device_id,
                                 blocking=not non_blocking)
            _live_streams[self.ptr] = self
            if not non_blocking:
                _blocking_queues.add(self._queue)
            _streams_alive += 1
            weakref.finalize(self, _stream_gone, self._queue)
            _update_tracking()
        self.is_non_blocking = bool(non_blocking) and not null

    def queue(self) -> _Queue:
        return self._queue if self._queue is not None else _null_queue(_current_device())

    def __eq__(self, other):
        return isinstance(other, Stream) and other.ptr == self.ptr

    def __hash__(self):
        return self.ptr

    def __repr__(self):
        return f"<Stream {self.ptr} (device {self.device_id})>"

    def _check_device(self) -> int:
        device = _current_device()
        if self.device_id not in (-1, device):
            raise RuntimeError(f"The device that the stream is created on ({self.device_id}) does not match with "
                               f"the current device ({device})")  # CuPy's message
        return device

    def use(self) -> Stream:
        _current()[self._check_device()] = self
        return self

    def __enter__(self):
        device = self._check_device()
        _stack().append((device, _current().get(device, Stream.null)))
        _current()[device] = self
        return self

    def __exit__(self, *exc):
        device, previous = _stack().pop()
        _current()[device] = previous
        return False

    def record(self, event: Event | None = None) -> Event:
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event: Event) -> None:
        """The stream's later work runs after the work recorded by ``event`` (nothing, if it was never recorded)."""
        if event._clock is not None:
            self.queue().merge(event._clock)

    @property
    def done(self) -> bool:
        return _done(self.queue().snapshot())

    def synchronize(self) -> None:
        _complete(self.queue().snapshot())


Stream.null = Stream(null=True)


def _stream_gone(queue: _Queue) -> None:
    global _streams_alive
    _blocking_queues.discard(queue)
    _streams_alive -= 1
    _update_tracking()


def _update_tracking() -> None:
    global tracking
    tracking = _streams_alive > 0 or bool(_pending)


def _current() -> dict:
    if not hasattr(_local, "current"):
        _local.current, _local.stack = {}, []
    return _local.current


def _stack() -> list:
    _current()
    return _local.stack


def get_current_stream(device_id: int = -1) -> Stream:
    """The current stream of ``device_id`` (the current device) on this host thread: ``Stream.null`` unless a
    ``with stream:`` or ``stream.use()`` changed it."""
    return _current().get(_current_device() if device_id == -1 else device_id, Stream.null)


def stream_queue(pointer: int, device: int) -> _Queue | None:
    """The queue of the live stream whose ``ptr`` is ``pointer`` (0: ``device``'s null stream), None if none is."""
    if pointer == 0:
        return _null_queue(device)
    stream = _live_streams.get(pointer)
    return None if stream is None else stream.queue()


class Event:
    """``cupy.cuda.Event``: ``record(stream=None)`` marks the work enqueued so far on the stream (the current one) and
    notes the host clock (timings are the emulator's, no GPU's); ``done`` and ``synchronize()`` see that work."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        if interprocess and not disable_timing:
            raise ValueError("Timing must be disabled for interprocess events")  # CuPy's message
        self.ptr = next(_pointers)
        self.time = None
        self._clock = None

    def record(self, stream: Stream | None = None) -> None:
        self._clock = (get_current_stream() if stream is None else stream).queue().snapshot()
        self.time = time.perf_counter()

    @property
    def done(self) -> bool:
        return self._clock is None or _done(self._clock)

    def synchronize(self) -> None:
        if self._clock is not None:
            _complete(self._clock)


def get_elapsed_time(start: Event, end: Event) -> float:
    """``cupy.cuda.get_elapsed_time``: milliseconds from ``start`` to ``end``."""
    return (end.time - start.time) * 1e3


# ----- asynchronous work ---------------------------------------------------------------------------------------
class _Work:
    def __init__(self, queue: _Queue, tick: int, test, wait, keep):
        self.queue, self.tick, self.test, self.wait, self.keep = queue, tick, test, wait, keep


def asynchronous(queue: _Queue, test, wait, keep=()) -> int:
    """Enqueue work on ``queue`` that completes later (``test()`` true, or after ``wait()``), holding ``keep`` (its
    buffers) until then; returns its number."""
    tick = queue.enqueue()
    _pending.append(_Work(queue, tick, test, wait, keep))
    return tick


def cancel(ticks) -> None:
    """Forget the pending work numbered ``ticks`` (an aborted communicator's: it will not complete)."""
    _cancelled.update(ticks)
    _pending[:] = [work for work in _pending if work.tick not in ticks]
    _update_tracking()


def reset() -> None:
    """Forget all pending work and the accesses recorded for ordering (``cudaDeviceReset`` of every emulated
    device): work a program abandoned (a failed collective's) no longer keeps the order checks on."""
    _pending.clear()
    _writers.clear()
    _readers.clear()
    _update_tracking()


def _covered(clock: dict) -> list:
    return [work for work in _pending if work.tick <= clock.get(work.queue, 0)]


def _complete(clock: dict) -> None:
    for work in _covered(clock):
        work.wait()
        _pending.remove(work)
    _update_tracking()


def _done(clock: dict) -> bool:
    covered = _covered(clock)
    for work in covered:
        if work.test():
            _pending.remove(work)
    _update_tracking()
    return not any(work in _pending for work in covered)


def settle(array) -> None:
    """Wait for the pending work that wrote ``array`` (a collective's result read on the host by a stand-in)."""
    entry = _entry(_writers, array)
    if entry is not None:
        for work in _pending:
            if work.queue is entry.queue and work.tick == entry.tick:
                work.wait()
                _pending.remove(work)
                _update_tracking()
                return


# ----- who wrote (and reads) what ------------------------------------------------------------------------------
class _Access:
    def __init__(self, ref, queue: _Queue, tick: int, what: str, allocated: _Queue):
        self.ref, self.queue, self.tick, self.what, self.allocated = ref, queue, tick, what, allocated


def _owner(array):
    while isinstance(array.base, numpy.ndarray):
        array = array.base
    return array


def _entry(table: dict, array) -> _Access | None:
    owner = _owner(array)
    entry = table.get(id(owner))
    return entry if entry is not None and entry.ref() is owner else None


def _note(table: dict, array, queue: _Queue, tick: int, what: str) -> None:
    owner, key = _owner(array), id(_owner(array))
    previous = _entry(table, array) or _entry(_writers, array)
    ref = weakref.ref(owner, lambda r, key=key, table=table: table.pop(key) if table.get(key) is not None and
                      table[key].ref is r else None)
    table[key] = _Access(ref, queue, tick, what, previous.allocated if previous is not None else queue)


def _check(queue: _Queue, array, what: str, write: bool) -> None:
    accesses = [("written", _entry(_writers, array))] + ([("read", _entry(_readers, array))] if write else [])
    for verb, entry in accesses:
        if entry is not None and not queue.covers(entry.queue, entry.tick):
            raise StreamOrderError(
                f"{what} on {queue.name} {'writes' if write else 'reads'} an array (shape {array.shape}) {verb} by "
                f"{entry.what} on {entry.queue.name}, with nothing ordering the two (on a GPU: a race): record an "
                f"event on {entry.queue.name} after that work and make {queue.name} wait for it "
                f"(stream.wait_event(event))")


def _device_arrays(values):
    from .device_array import DeviceArray  # (device_array imports this module)

    return [v for v in values if isinstance(v, DeviceArray)]


def begin(what: str, reads=(), writes=()) -> _Queue:
    """An operation on the current stream is about to read ``reads`` and write ``writes`` (device arrays, others
    ignored): let the pending work it follows complete, and ``check_order``. Returns its queue, for ``end``."""
    queue = get_current_stream().queue()
    queue.arrive()
    if _pending:
        _complete(queue.snapshot())
    check_order(queue, what, reads, writes)
    return queue


def check_order(queue: _Queue, what: str, reads=(), writes=()) -> None:
    """Raise ``StreamOrderError`` unless work ``what`` on ``queue`` is ordered after the work that wrote ``reads``
    and ``writes`` and the asynchronous work reading ``writes`` (or a freed buffer was misused earlier)."""
    if _violations:
        raise _violations.pop(0)
    queue.arrive()
    for array in _device_arrays(reads):
        _check(queue, array, what, write=False)
    for array in _device_arrays(writes):
        _check(queue, array, what, write=True)


def end(queue: _Queue, what: str, written=()) -> None:
    """The operation ``begin`` checked ran on ``queue`` and wrote ``written`` (its results and outputs)."""
    tick = queue.enqueue()
    for array in _device_arrays(written):
        _note(_writers, array, queue, tick, what)


def note_collective(queue: _Queue, tick: int, what: str, reads, writes) -> None:
    """Asynchronous work ``tick`` on ``queue`` reads ``reads`` and writes ``writes``; each buffer must outlive it
    until the stream that allocated it is ordered after it."""
    for table, arrays in ((_readers, reads), (_writers, writes)):
        for array in arrays:
            _note(table, array, queue, tick, what)
            allocated = _entry(table, array).allocated
            if allocated is not queue:
                weakref.finalize(_owner(array), _check_release, allocated, queue, tick, what, array.shape)


def _check_release(allocated: _Queue, queue: _Queue, tick: int, what: str, shape) -> None:
    allocated.arrive()  # the pool's next work there (a blocking stream's collective precedes it)
    if tick not in _cancelled and not allocated.covers(queue, tick):
        _violations.append(StreamOrderError(
            f"a buffer (shape {shape}) of {what} on {queue.name} was freed before {allocated.name}, where it was "
            f"allocated, was ordered after that work: CuPy's memory pool may give it to new work on "
            f"{allocated.name} while the collective still uses it; keep it until {allocated.name} waited for an "
            f"event recorded after the collective"))
