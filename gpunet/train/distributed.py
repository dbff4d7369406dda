"""Data-parallel training over MPI ranks (Horovod's and ChainerMN's design, PyTorch DDP's semantics).

``World`` is the set of processes MPI started: ``rank``, ``size`` and ``local_rank`` (the rank on its node). A
process started by ``mpiexec`` / ``srun`` joins that world (``world()``); ``launch`` re-starts ``gpunet`` through
``mpiexec`` for ``gpunet train CONFIG --nproc N``.

``DataParallel`` keeps N replicas of one model in step: the parameters start equal (broadcast from rank 0) and after
every backward the gradients are averaged over the *global* batch by all-reduces over flattened buckets (one
non-blocking ``Iallreduce`` per bucket, last layers first, started from a gradient-ready hook of the autograd
engine as soon as the bucket's gradients are final, so communication overlaps the rest of backward). Each rank's local gradient is of its shard's
mean loss; it is weighted by the shard's size before the sum and the sum divided by the global batch size, so the
result is the single-process gradient of the global-batch mean even when shards differ in size (the last batch),
or are empty. Every wait has a timeout (``GPUNET_DIST_TIMEOUT`` seconds, default 300): a rank that stops answering
makes the others abort the job with a message naming the waiting rank and the collective.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass

import numpy as np

from ..backend import collectives

__all__ = ["DataParallel", "DistributedError", "World", "gather_collector", "joined", "launch", "launched_by_mpi",
           "mpiexec_path", "world"]

INSTALL_HINT = 'pip install "gpunet[mpi]"'
TIMEOUT_VARIABLE = "GPUNET_DIST_TIMEOUT"
BUCKET_BYTES = 25 * 2 ** 20  # PyTorch DDP's default bucket_cap_mb
FIRST_BUCKET_BYTES = 2 ** 20  # and its first bucket's (started earliest, so it is small)
# Set by Open MPI, MPICH/Hydra and PMIx launchers (mpiexec, srun --mpi=pmi2/pmix) in every process they start.
_LAUNCHER_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK")
_LOCAL_RANK_VARIABLES = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID", "PMI_LOCAL_RANK")


class DistributedError(RuntimeError):
    """MPI is missing, or a distributed launch cannot work as asked (a user's problem, not a bug)."""


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DistributedError(f"distributed training needs mpi4py and an MPI library ({exc}); install them with: "
                               f"{INSTALL_HINT}") from None
    return MPI


@dataclass(frozen=True)
class World:
    """The processes training together; ``comm`` is the MPI communicator (None for a single process)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    comm: object = None

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def abort(self, status: int) -> None:
        """End every rank of the job (after this rank's message was printed)."""
        if self.comm is not None:
            sys.stderr.flush()
            self.comm.Abort(status)

    def fail(self, message: str) -> None:
        """Print ``gpunet: rank r of N: <message>; aborting the job`` and end every rank (status 4)."""
        print(f"gpunet: rank {self.rank} of {self.size}: {message}; aborting the job", file=sys.stderr, flush=True)
        self.abort(4)


_WORLD: World | None = None


def launched_by_mpi() -> bool:
    return any(name in os.environ for name in _LAUNCHER_VARIABLES)


def world() -> World:
    """The world this process belongs to: the launcher's (mpiexec, srun) when one started it, else a single rank."""
    global _WORLD
    if _WORLD is None:
        if not launched_by_mpi():
            _WORLD = World()
        else:
            comm = _mpi().COMM_WORLD
            local = next((os.environ[v] for v in _LOCAL_RANK_VARIABLES if v in os.environ), None)
            if local is None:  # no launcher variable: count the ranks on this host
                host = comm.Get_processor_name()
                local = sum(1 for h in comm.allgather(host)[:comm.Get_rank()] if h == host)
            _WORLD = World(comm.Get_rank(), comm.Get_size(), int(local), comm if comm.Get_size() > 1 else None)
            if _WORLD.distributed and hasattr(signal, "SIGUSR2"):  # how ``launch`` forwards a stop (see there)
                signal.signal(signal.SIGUSR2, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    return _WORLD


def joined() -> World | None:
    """The world if this process already joined a distributed one, else None (MPI is not initialised for it)."""
    return _WORLD if _WORLD is not None and _WORLD.distributed else None


def mpiexec_path() -> str:
    """``mpiexec`` of the ``mpi`` extra (beside this Python's scripts), else the system's; DistributedError if none."""
    own = os.path.join(sysconfig.get_path("scripts"), "mpiexec")
    found = own if os.access(own, os.X_OK) else shutil.which("mpiexec")
    if found is None:
        raise DistributedError(f"--nproc needs mpiexec, which was not found; install MPI with: {INSTALL_HINT}")
    return found


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``gpunet <argv>`` as ``nproc`` ranks under ``mpiexec`` and return its exit status. As root, Open MPI's
    refusal to run is lifted (``OMPI_ALLOW_RUN_AS_ROOT``), as a container user asking for --nproc expects.

    ``mpiexec`` runs in its own session, so a Ctrl-C reaches only this process, which forwards it as SIGUSR2
    (``mpiexec`` passes that on to every rank, where it means SIGTERM: a clean stop after the same step on all);
    a second SIGINT or SIGTERM ends ``mpiexec`` and so every rank at once."""
    _mpi()  # the ranks need mpi4py: say so here, once, rather than N times
    command = [mpiexec_path(), "-n", str(nproc)]
    version = subprocess.run([command[0], "--version"], capture_output=True, text=True).stdout
    if "Open MPI" in version or "OpenRTE" in version:
        command.append("--oversubscribe")  # more ranks than cores is slow, not wrong
    env = dict(os.environ)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    process = subprocess.Popen([*command, sys.executable, "-m", "gpunet.cli", *argv], env=env, start_new_session=True)
    asked = []

    def forward(signum, frame):
        process.send_signal(signal.SIGTERM if asked else signal.SIGUSR2)
        asked.append(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _timeout() -> float:
    text = os.environ.get(TIMEOUT_VARIABLE, "300")
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise DistributedError(f"{TIMEOUT_VARIABLE}={text!r}: give the seconds to wait for the other ranks (> 0)")
    return value


_WAITING_TAG = 7311  # point-to-point messages "I am waiting too", sent only once a wait has timed out


def wait_all(world_: World, requests: list, what: str) -> None:
    """Wait for MPI ``requests`` (``wait_until``)."""
    MPI = _mpi()
    wait_until(world_, lambda: MPI.Request.Testall(requests), what)


def wait_until(world_: World, complete, what: str, on_timeout=None, longest_pause: float = 0.01) -> None:
    """Poll ``complete()`` (pausing 10 us, doubling up to ``longest_pause`` seconds) until it is true; if it is not
    within the timeout, call ``on_timeout()`` (a NCCL communicator's abort) and abort the job with a message naming
    the ranks that did not reach ``what`` (those that sent no "waiting too" message within a short grace time)."""
    MPI = _mpi()
    limit = _timeout()
    deadline, pause = time.monotonic() + limit, 1e-5
    while not complete():
        if time.monotonic() > deadline:
            if on_timeout is not None:
                on_timeout()
            missing = _ranks_not_waiting(world_, MPI, grace=min(10.0, 1.0 + limit / 10))
            names = ", ".join(map(str, missing)) or "unknown (all answered)"
            world_.fail(f"{what} did not complete within {limit:g} s; not there: rank {names} (it died or hangs; see "
                        f"its messages above; {TIMEOUT_VARIABLE} sets the timeout)")
        time.sleep(pause)
        pause = min(pause * 2, longest_pause)


def _ranks_not_waiting(world_: World, MPI, grace: float) -> list[int]:
    """Tell every other rank that this one waits, and listen ``grace`` seconds for theirs: the ranks not heard
    from are the ones missing."""
    others = [r for r in range(world_.size) if r != world_.rank]
    sent = [world_.comm.isend(world_.rank, dest=r, tag=_WAITING_TAG) for r in others]  # noqa: F841 (kept alive)
    heard, deadline = set(), time.monotonic() + grace
    while len(heard) < len(others) and time.monotonic() < deadline:
        status = MPI.Status()
        if world_.comm.iprobe(source=MPI.ANY_SOURCE, tag=_WAITING_TAG, status=status):
            heard.add(world_.comm.recv(source=status.Get_source(), tag=_WAITING_TAG))
        else:
            time.sleep(0.01)
    return [r for r in others if r not in heard]


def allgather(world_: World, value, what: str) -> list:
    """Every rank's ``value`` (any picklable object), in rank order; a barrier with a timeout goes first, so a
    missing rank aborts the job instead of hanging it."""
    wait_all(world_, [world_.comm.Ibarrier()], what)
    return world_.comm.allgather(value)


def _host(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") else np.asarray(array)  # CuPy -> NumPy staging (MPI path)


class _Reducer:
    """The all-reduce of one set of parameters (one optimizer's): its buckets, its own communicator (a duplicate,
    so the collectives of two sets never pair up across ranks in different orders), and one step's progress."""

    def __init__(self, comm, parameters: list, buckets: list[list]):
        self.comm = comm.Dup()
        self.parameters = parameters
        self.buckets = buckets
        self.bucket_of = {id(p): i for i, bucket in enumerate(self.buckets) for p in bucket}
        self.reset(None)

    def reset(self, count: int | None) -> None:
        """Start a step whose local gradients are of the mean loss over ``count`` samples."""
        self.count = count
        self.ready = [0] * len(self.buckets)
        self.started: list = []  # (received buffer, request, sent buffer) per bucket started, in bucket order

    def gradient_ready(self, parameter) -> None:
        """``parameter``'s gradient is final: start every bucket, in order, whose gradients are all ready (all ranks
        start the same buckets in the same order, as MPI needs)."""
        self.ready[self.bucket_of[id(parameter)]] += 1
        if self.started:  # MPI progresses a non-blocking collective only inside MPI calls: give it one
            _mpi().Request.Testall([request for _, request, _ in self.started])
        while len(self.started) < len(self.buckets) and \
                self.ready[len(self.started)] == len(self.buckets[len(self.started)]):
            self._start(len(self.started))

    def _start(self, index: int) -> None:
        MPI = _mpi()
        parts = [_host(p.grad.data).ravel() * self.count if p.grad is not None else np.zeros(p.data.size)
                 for p in self.buckets[index]]
        send = np.concatenate([part.astype(np.float64, copy=False) for part in parts])
        receive = np.empty_like(send)
        self.started.append((receive, self.comm.Iallreduce(send, receive, op=MPI.SUM), send))

    def finish(self, world_: World, loss: float | None, stop: bool) -> tuple[float, bool]:
        """Start what backward did not, all-reduce the tail (loss sum, count, stop, who has gradients), wait, and
        put the global-batch gradients in ``.grad``."""
        MPI = _mpi()
        while len(self.started) < len(self.buckets):
            self._start(len(self.started))
        local_tail = tail(self.parameters, loss, self.count, stop)
        total_tail = np.empty_like(local_tail)
        requests = [request for _, request, _ in self.started] + [self.comm.Iallreduce(local_tail, total_tail,
                                                                                       op=MPI.SUM)]
        wait_all(world_, requests, "the gradient all-reduce")
        result = unpack(self.parameters, self.buckets, [receive for receive, _, _ in self.started], total_tail)
        self.reset(None)
        return result


def tail(parameters, loss: float | None, count: int, stop: bool) -> np.ndarray:
    """The values summed with a step's gradients: loss sum, sample count, stop flag, one has-gradient flag each."""
    return np.asarray([0.0 if loss is None else loss * count, count, stop] + [p.grad is not None for p in parameters],
                      dtype=np.float64)


def unpack(parameters, buckets, receives, total_tail: np.ndarray) -> tuple[float, bool]:
    """Set each parameter's ``.grad`` to its part of the summed buckets ``receives`` (host or device arrays) over the
    global sample count; return the global mean loss and whether any rank asked to stop."""
    from ..autograd import Tensor

    total, has_grad = float(total_tail[1]), dict(zip(map(id, parameters), total_tail[3:] > 0))
    for bucket, receive in zip(buckets, receives):
        offset = 0
        for p in bucket:
            n = p.data.size
            if has_grad[id(p)]:
                xp = p.backend.xp
                grad = xp.asarray((receive[offset:offset + n] / total).astype(p.data.dtype).reshape(p.data.shape))
                p.grad = Tensor(grad, p.backend)
            offset += n
    return float(total_tail[0] / total), bool(total_tail[2] > 0)


class _Group:
    """The ranks of ``world_`` as a group for layers (``gpunet.backend.collectives``): a float64 sum over ranks on
    a communicator of its own, with the timeout of every wait."""

    def __init__(self, world_: World):
        self.world, self.rank, self.size = world_, world_.rank, world_.size
        self.comm = world_.comm.Dup()

    def all_reduce(self, array: np.ndarray) -> np.ndarray:
        send = np.ascontiguousarray(array, dtype=np.float64)
        receive = np.empty_like(send)
        wait_all(self.world, [self.comm.Iallreduce(send, receive, op=_mpi().SUM)], "a SyncBatchNorm all-reduce")
        return receive


def _buckets(parameters, bucket_bytes: int, first_bucket_bytes: int) -> list[list]:
    """Parameters in reverse order (their gradients are ready first), cut into buckets of at most ``bucket_bytes``
    (the first of at most ``first_bucket_bytes``, so its all-reduce starts early; a bigger parameter gets a bucket
    of its own)."""
    buckets, current, size = [], [], 0
    for p in reversed(parameters):
        nbytes = p.data.size * p.data.dtype.itemsize
        if current and size + nbytes > (bucket_bytes if buckets else first_bucket_bytes):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += nbytes
    return buckets + [current] if current else buckets


class DataParallel:
    """Gradient averaging and metric reduction for one model replicated on every rank of ``world_``.

    ``prepare(parameters, count)`` before a backward makes it start each bucket's all-reduce as soon as the autograd
    engine reports the bucket's gradients final (``register_gradient_ready_hook``); ``average_gradients`` after it
    starts the rest, waits and unpacks. Without ``prepare`` everything is started after backward. Parameters on a
    CUDA device (or the emulated one) are reduced by NCCL instead (``gpunet.train.nccl``)."""

    def __init__(self, world_: World, bucket_bytes: int = BUCKET_BYTES, first_bucket_bytes: int = FIRST_BUCKET_BYTES):
        from ..autograd.engine import register_gradient_ready_hook

        self.world = world_
        self.bucket_bytes = bucket_bytes
        self.first_bucket_bytes = min(first_bucket_bytes, bucket_bytes)
        self._reducers: dict = {}
        self._armed: dict = {}  # id(parameter) -> the reducer of the step under way
        self.settles = False  # the model has layers that reduce across ranks (see ``watch``)
        self._hook = register_gradient_ready_hook(self._gradient_ready)
        collectives.set_group(_Group(world_))  # what SyncBatchNorm reduces its statistics over

    def close(self) -> None:
        """Stop listening to backward and unregister the group (the communicators are freed with this object)."""
        self._hook.remove()
        collectives.set_group(None)

    def watch(self, model) -> None:
        """Train ``model``: when a layer of it reduces across ranks (``reduces_across_ranks``, SyncBatchNorm), every
        update settles those reductions (a rank with an empty share serves the others'); else no update pays for it."""
        self.settles = any(getattr(module, "reduces_across_ranks", False) for module in model.modules())

    def broadcast_parameters(self, parameters) -> None:
        """Make every rank's parameters rank 0's (they are equal already when every rank seeded alike)."""
        values = allgather(self.world, [_host(p.data) for p in parameters] if self.world.rank == 0 else None,
                           "the parameter broadcast")[0]
        for p, value in zip(parameters, values):
            p.data[...] = p.backend.xp.asarray(value)

    def _reducer(self, parameters) -> _Reducer:
        parameters = list(dict.fromkeys(parameters))
        key = tuple(map(id, parameters))
        if key not in self._reducers:
            from .nccl import NcclReducer, nccl_communicator, nccl_module

            buckets = _buckets(parameters, self.bucket_bytes, self.first_bucket_bytes)
            nccl = nccl_module(parameters[0].backend)
            if nccl is None:
                self._reducers[key] = _Reducer(self.world.comm, parameters, buckets)
            else:  # a communicator (and stream) of its own, as the MPI path's duplicate
                communicator = nccl_communicator(self.world, parameters[0].backend, nccl)
                self._reducers[key] = NcclReducer(communicator, nccl, parameters, buckets)
        return self._reducers[key]

    def prepare(self, parameters, count: int) -> None:
        """The next backward computes ``parameters``' gradients of this rank's mean loss over ``count`` samples:
        start each bucket's all-reduce as soon as its gradients are final."""
        reducer = self._reducer(parameters)
        reducer.reset(count)
        self._armed.update((id(p), reducer) for p in reducer.parameters)

    def _gradient_ready(self, leaf) -> None:
        reducer = self._armed.get(id(leaf))
        if reducer is not None:
            reducer.gradient_ready(leaf)

    def average_gradients(self, parameters, loss: float | None, count: int, stop: bool = False) -> tuple[float, bool]:
        """Replace every parameter's ``.grad`` (of this rank's shard mean loss over ``count`` samples) by the
        gradient of the global batch's mean loss; return that mean loss and whether any rank asked to ``stop``
        (a signal: all ranks then stop after this same step). A rank with no samples passes ``loss`` None and
        contributes nothing. A parameter gets a gradient when any rank's shard gave it one."""
        reducer = self._reducer(parameters)
        if reducer.count is None:  # not prepared: nothing started during backward
            reducer.reset(count)
        elif reducer.count != count:
            raise RuntimeError(f"internal error: gradients prepared for {reducer.count} samples, averaged for {count}")
        for p in reducer.parameters:
            self._armed.pop(id(p), None)
        if self.settles:
            collectives.settle()  # a rank with an empty share serves the others' SyncBatchNorm reductions
        return reducer.finish(self.world, loss, stop)

    def gather_collector(self, collector):
        return gather_collector(self.world, collector)

    def allgather(self, value) -> list:
        return allgather(self.world, value, "a checkpoint's gather")


def gather_collector(world_: World, collector):
    """One ``EpochCollector`` holding every rank's batches (loss sums and counts added, outputs and targets
    concatenated in rank order), the same on every rank; ``batches`` is this rank's (all ranks see every batch)."""
    from .metrics import EpochCollector

    return EpochCollector.combined(collector, allgather(world_, collector.state_dict(), "the metrics gather"))


def local_share(world_: World, state: dict) -> dict:
    """This rank's part of a gathered collector state: rank 0 keeps everything, the others only the batch count
    (so gathering again at the epoch's end counts every sample once)."""
    if world_.rank == 0:
        return state
    return {"sums": {}, "counts": {}, "count": 0, "batches": state["batches"]}


def rank_seed(step: int, rank: int) -> int:
    """The seed of rank ``rank``'s generator (dropout masks) when no saved state of it applies: distinct per rank."""
    return int(np.random.SeedSequence([step, rank]).generate_state(1)[0])
