"""The NCCL path of data parallelism (gpunet.train.nccl) in one process (a world of one rank) on the emulated GPU:
each bucket is all-reduced on the communication stream as soon as backward finished it, the streams are ordered by
events (the stand-in refuses a missing wait), float32 parameters are reduced in float32, and the watchdog turns an
asynchronous NCCL error into the job's abort. The 2-rank runs (equivalence, a hung rank) are in test_distributed."""
import numpy as np
import pytest
from mpi4py import MPI

import gpunet as gn
from gpunet.autograd.engine import register_gradient_ready_hook
from gpunet.backend.emulated import nccl_standin, streams
from gpunet.train import distributed


def small_model():
    gn.manual_seed(0)
    model = gn.nn.Sequential(gn.nn.Linear(3, 4), gn.nn.Tanh(), gn.nn.Linear(4, 2)).to("cuda-emu")
    x = gn.tensor(np.linspace(-1, 1, 15, dtype=np.float32).reshape(5, 3), device="cuda-emu")
    return model, x


def reference_gradients(model, x) -> list:
    loss = (model(x) ** 2).mean()
    loss.backward()
    gradients = [p.grad.numpy().copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = None
    return gradients


def train_step(model, x, events=None, world=None):
    """One prepared backward and average on a DataParallel over ``world`` (one rank), buckets of 10 and 16 floats;
    ``events`` records the gradient-ready hooks and the stand-in's allReduce calls (count, dtype, stream)."""
    names = {id(p): name for name, p in model.named_parameters()}
    recorder = register_gradient_ready_hook(lambda leaf: events.append(f"ready {names[id(leaf)]}")) \
        if events is not None else None
    parallel = distributed.DataParallel(world or distributed.World(0, 1, 0, MPI.COMM_WORLD), bucket_bytes=4 * 16,
                                        first_bucket_bytes=4 * 10)
    try:
        parallel.prepare(list(model.parameters()), 5)
        loss = (model(x) ** 2).mean()
        loss.backward()
        backward_done = None if events is None else len(events)
        parallel.average_gradients(list(model.parameters()), float(loss.item()), 5)
    finally:
        if recorder is not None:
            recorder.remove()
        parallel.close()
    return backward_done


@pytest.fixture
def all_reduces(monkeypatch):
    events = []
    all_reduce = nccl_standin.NcclCommunicator.allReduce

    def recorded(self, sendbuf, recvbuf, count, datatype, op, stream):
        events.append(("all-reduce", count, {nccl_standin.NCCL_FLOAT32: "float32",
                                             nccl_standin.NCCL_FLOAT64: "float64"}[datatype], stream))
        return all_reduce(self, sendbuf, recvbuf, count, datatype, op, stream)

    monkeypatch.setattr(nccl_standin.NcclCommunicator, "allReduce", recorded)
    return events


def test_each_bucket_is_reduced_on_the_communication_stream_as_soon_as_backward_finished_it(all_reduces):
    model, x = small_model()
    expected = reference_gradients(model, x)
    backward_done = train_step(model, x, all_reduces)
    stream = all_reduces[2][3]
    assert stream != 0  # not the null stream, where backward runs
    # buckets, last layer first: [2.bias 2 + 2.weight 8] = 10 floats, [0.bias 4 + 0.weight 12] = 16, in float32
    # (the parameters'); then the tail (loss, count, stop, 4 has-gradient flags) in float64
    assert all_reduces[:backward_done] == ["ready 2.weight", "ready 2.bias", ("all-reduce", 10, "float32", stream),
                                           "ready 0.weight", "ready 0.bias", ("all-reduce", 16, "float32", stream)]
    assert all_reduces[backward_done:] == [("all-reduce", 7, "float64", stream)]
    for p, want in zip(model.parameters(), expected):
        assert p.grad.data.dtype == np.float32
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("skipped, message", [
    ("communication", r"allReduce \(sendbuf\) on stream .* reads an array .* written by cupy.concatenate on the null "),
    ("compute", r"on the null stream of cuda-emu:0 reads an array .* written by allReduce on stream "),
])
def test_a_missing_wait_between_the_streams_is_refused(skipped, message, monkeypatch):
    """Without the communication stream's wait for the compute stream's event, the allReduce could read the bucket
    before backward wrote it; without the compute stream's wait, the unpacking could read the sums before NCCL
    wrote them. The stand-in's streams refuse both (on a GPU: a race that usually passes)."""
    monkeypatch.setattr(streams, "_violations", [])  # the buffers freed unordered after the error: not the next test's
    wait_event = streams.Stream.wait_event
    monkeypatch.setattr(streams.Stream, "wait_event", lambda self, event: None if (self.ptr == 0) == (
        skipped == "compute") else wait_event(self, event))
    model, x = small_model()
    with pytest.raises(streams.StreamOrderError, match=message):
        train_step(model, x)


def test_float64_parameters_are_reduced_in_float64(all_reduces):
    model, x = small_model()
    model.to(gn.float64)
    x = gn.tensor(x.numpy().astype(np.float64), device="cuda-emu")
    expected = reference_gradients(model, x)
    train_step(model, x)
    assert {dtype for _, _, dtype, _ in all_reduces} == {"float64"}
    for p, want in zip(model.parameters(), expected):
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-12)


class _AbortingComm:
    """An MPI communicator whose ``Abort`` raises (the job would end there)."""

    def __init__(self):
        self.comm = MPI.COMM_WORLD

    def __getattr__(self, name):
        return getattr(self.comm, name)

    def Abort(self, status):  # noqa: N802
        raise SystemExit(status)


def test_an_asynchronous_nccl_error_aborts_the_communicator_and_the_job(monkeypatch, capsys):
    aborted = []
    monkeypatch.setattr(nccl_standin.NcclCommunicator, "check_async_error", lambda self: (_ for _ in ()).throw(
        nccl_standin.NcclError("NCCL_ERROR_REMOTE_ERROR: remote process exited or there was a network error")))
    abort = nccl_standin.NcclCommunicator.abort
    monkeypatch.setattr(nccl_standin.NcclCommunicator, "abort", lambda self: (aborted.append(self), abort(self)))
    model, x = small_model()
    with pytest.raises(SystemExit) as exit_:
        train_step(model, x, world=distributed.World(0, 1, 0, _AbortingComm()))
    assert exit_.value.code == 4 and len(aborted) == 1
    assert capsys.readouterr().err.strip() == (
        "gpunet: rank 0 of 1: the NCCL gradient all-reduce failed (NCCL_ERROR_REMOTE_ERROR: remote process exited or "
        "there was a network error); aborting the job")


def test_each_parameter_set_has_its_own_communicator_and_stream(all_reduces):
    """Two models updated by one backward (a GAN's pattern) are reduced on two communicators and two streams, as the
    MPI path's duplicated communicators: a rank whose collectives come in another order cannot pair them wrongly."""
    first, x = small_model()
    second = gn.nn.Linear(2, 1).to("cuda-emu")
    parallel = distributed.DataParallel(distributed.World(0, 1, 0, MPI.COMM_WORLD))
    try:
        for model in (first, second):
            parallel.prepare(list(model.parameters()), 5)
        loss = (second(first(x)) ** 2).mean()
        loss.backward()
        expected = [p.grad.numpy().copy() for model in (first, second) for p in model.parameters()]
        for model in (second, first):
            parallel.average_gradients(list(model.parameters()), float(loss.item()), 5)
        reducers = list(parallel._reducers.values())
    finally:
        parallel.close()
    assert len(reducers) == 2 and reducers[0].communicator is not reducers[1].communicator
    assert {stream for *_, stream in all_reduces} == {reducer.stream.ptr for reducer in reducers}
    for p, want in zip([p for model in (first, second) for p in model.parameters()], expected):
        np.testing.assert_allclose(p.grad.numpy(), want, rtol=1e-6)
