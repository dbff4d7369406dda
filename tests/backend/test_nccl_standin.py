"""The NCCL stand-in of the emulated device (one process: a world of one rank) and the emulated streams it runs on.

The stand-in refuses what NCCL on GPUs would get wrong: a buffer or a stream on another device than the
communicator's, a mismatched datatype, an unpaired groupEnd, destroying inside a group; after abort() a call fails
as CuPy's (NcclError). The
streams (``gpunet.backend.emulated.streams``) refuse work on one stream using memory of work on another with
nothing ordering the two, as CUDA's rules make it a race."""
import gc

import numpy as np
import pytest

from gpunet.backend.cupy_backend import emulated_backend
from gpunet.backend.emulated import nccl_standin as nccl, streams


@pytest.fixture
def zero():
    return emulated_backend(0)


def test_all_reduce_over_one_rank_is_queued_in_a_group_and_checks_devices_and_types(zero):
    one = emulated_backend(1)
    with zero.activate():
        communicator = nccl.NcclCommunicator(1, nccl.get_unique_id(), 0)
        send = zero.xp.asarray(np.arange(4, dtype=np.float64))
        receive = zero.xp.zeros(4, dtype=np.float64)
    nccl.groupStart()
    communicator.allReduce(send.data.ptr, receive.data.ptr, 4, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    assert nccl.open_groups() == 1 and not receive.any()  # queued, not run
    with pytest.raises(nccl.NcclStandinError, match="destroy"):
        communicator.destroy()
    nccl.groupEnd()
    assert nccl.open_groups() == 0
    with zero.activate():
        np.testing.assert_array_equal(zero.to_numpy(receive), [0, 1, 2, 3])
    with one.activate():
        other = one.xp.zeros(4, dtype=np.float64)
        elsewhere = one.xp.cuda.Stream(non_blocking=True)
    with pytest.raises(nccl.NcclStandinError, match="cuda-emu:1, the communicator on cuda-emu:0"):
        communicator.allReduce(send.data.ptr, other.data.ptr, 4, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    with pytest.raises(nccl.NcclStandinError, match="the stream is on cuda-emu:1"):
        communicator.allReduce(send.data.ptr, receive.data.ptr, 4, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, elsewhere.ptr)
    with pytest.raises(nccl.NcclStandinError, match="not the .ptr of a live cupy.cuda.Stream"):
        communicator.allReduce(send.data.ptr, receive.data.ptr, 4, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 12345)
    with pytest.raises(nccl.NcclStandinError, match="datatype"):
        communicator.allReduce(send.data.ptr, receive.data.ptr, 4, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, 0)
    with pytest.raises(nccl.NcclStandinError, match="exceeds"):
        communicator.allReduce(send.data.ptr, receive.data.ptr, 5, nccl.NCCL_FLOAT64, nccl.NCCL_SUM, 0)
    with pytest.raises(nccl.NcclStandinError, match="without a matching groupStart"):
        nccl.groupEnd()
    communicator.abort()
    with pytest.raises(nccl.NcclError, match="INVALID_ARGUMENT: the communicator was aborted"):
        communicator.check_async_error()


def test_the_unique_id_is_128_bytes_as_cupy_14s():
    unique_id = nccl.get_unique_id()
    assert isinstance(unique_id, bytes) and len(unique_id) == 128
    with pytest.raises(TypeError, match="bytes"):
        nccl.NcclCommunicator(1, tuple(unique_id), 0)
    with pytest.raises(ValueError, match="commId length 4 != 128"):
        nccl.NcclCommunicator(1, b"1234", 0)


def all_reduce_on(zero, stream, wait: bool):
    """Pack on the null stream, all-reduce on ``stream`` (waiting for the null stream's event if ``wait``)."""
    with zero.activate():
        communicator = nccl.NcclCommunicator(1, nccl.get_unique_id(), 0)
        send = zero.xp.arange(6, dtype=zero.xp.float32) * 2
        receive = zero.xp.empty_like(send)
        if wait:
            stream.wait_event(zero.xp.cuda.get_current_stream().record())
        communicator.allReduce(send.data.ptr, receive.data.ptr, 6, nccl.NCCL_FLOAT32, nccl.NCCL_SUM, stream.ptr)
    return send, receive


def test_a_collective_on_a_stream_must_follow_the_work_that_wrote_its_buffer(zero):
    with zero.activate():
        stream = zero.xp.cuda.Stream(non_blocking=True)
    with pytest.raises(streams.StreamOrderError, match=r"allReduce \(sendbuf\) on stream .* reads an array .* "
                                                         r"written by multiply on the null stream of cuda-emu:0"):
        all_reduce_on(zero, stream, wait=False)
    with zero.activate():
        blocking = zero.xp.cuda.Stream()  # the legacy null stream orders itself with blocking streams (CUDA)
    all_reduce_on(zero, blocking, wait=False)


def test_reading_a_collectives_result_needs_the_streams_event(zero):
    with zero.activate():
        stream = zero.xp.cuda.Stream(non_blocking=True)
        xp = zero.xp
    send, receive = all_reduce_on(zero, stream, wait=True)
    with zero.activate(), pytest.raises(streams.StreamOrderError,
                                        match="reads an array .* written by allReduce on stream"):
        receive + 1
    with zero.activate():
        xp.cuda.get_current_stream().wait_event(stream.record())
        np.testing.assert_array_equal(zero.to_numpy(receive / 2), np.arange(6))
    send, receive = all_reduce_on(zero, stream, wait=True)  # a buffer must outlive its collective's order
    with zero.activate():
        stream.record()
        del send
        gc.collect()
        with pytest.raises(streams.StreamOrderError, match="freed before the null stream .* was ordered after"):
            receive.sum()


def test_an_event_is_done_when_the_asynchronous_work_before_it_is(zero):
    with zero.activate():
        stream = zero.xp.cuda.Stream(non_blocking=True)
        finished = []
        streams.asynchronous(stream.queue(), lambda: bool(finished), lambda: finished.append(True))
        event = stream.record()
        assert not event.done and not stream.done and zero.xp.cuda.Event().done  # never recorded: done (CUDA)
        finished.append(True)
        assert event.done and stream.done
        later = stream.record()
        streams.asynchronous(stream.queue(), lambda: bool(finished[1:]), lambda: finished.append(True))
        assert later.done  # recorded before that work
        later.synchronize()
        stream.synchronize()  # waits for it
        assert finished == [True, True]


def test_with_stream_makes_it_current_on_its_own_device_only(zero):
    xp = zero.xp
    with zero.activate():
        stream = xp.cuda.Stream(non_blocking=True)
        assert xp.cuda.get_current_stream() == xp.cuda.Stream.null and stream.is_non_blocking
        with stream:
            assert xp.cuda.get_current_stream() is stream
        assert xp.cuda.get_current_stream().ptr == 0
    with emulated_backend(1).activate(), pytest.raises(RuntimeError, match=r"created on \(0\) does not match"):
        with stream:
            pass
