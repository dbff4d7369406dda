"""``mpiexec -n 2 python syncbn_runner.py SCENARIO``: SyncBatchNorm over 2 ranks against BatchNorm on the whole batch
in one process (computed on every rank, no collective). Each rank trains its share of every batch for 3 SGD steps
through ``DataParallel``, as the Trainer does; the outputs of the first step, the parameters' gradients, the final
weights and the running statistics of every rank must equal the single process's. Exits 0 and prints
``syncbn ok`` on rank 0.

``shares``: three batches of 7 samples (shares of 4 and 3). ``empty``: batches of 7, 1 and 7 samples; rank 1's share
of the 1-sample batch is empty, so it runs no forward and serves the others' reductions (its BatchNorm1d then sees
(N, 3, 2) inputs, so one sample has 2 values per channel)."""
import sys

import numpy as np

import gpunet as gn
from gpunet.train import distributed


class Net(gn.nn.Module):
    """Linear -> BatchNorm1d (of (N, 3) or (N, 3, length)) -> tanh -> Linear -> (N, 2, 2, 2) -> BatchNorm2d
    (cumulative running averages)."""

    def __init__(self, length: int):
        super().__init__()
        self.length = length
        self.first = gn.nn.Linear(4, 3 * length)
        self.norm1 = gn.nn.BatchNorm1d(3)
        self.second = gn.nn.Linear(3 * length, 8)
        self.norm2 = gn.nn.BatchNorm2d(2, momentum=None)

    def forward(self, x):
        h = self.first(x)
        h = self.norm1(h if self.length == 1 else h.reshape(x.shape[0], 3, self.length)).tanh()
        return self.norm2(self.second(h.reshape(x.shape[0], 3 * self.length)).reshape(x.shape[0], 2, 2, 2))


def model(sync: bool, length: int):
    gn.manual_seed(0)
    net = Net(length)
    return gn.nn.SyncBatchNorm.convert_sync_batchnorm(net) if sync else net


def train(net, batches, parallel=None):
    """3 SGD steps, one per (x, y) batch (a batch of no samples: no forward, as the Trainer does); the first step's
    outputs and gradients."""
    optimizer = gn.optim.SGD(net.parameters(), lr=0.5)
    outputs, grads = None, None
    for step, (x, y) in enumerate(batches):
        optimizer.zero_grad()
        parameters = list(net.parameters())
        if parallel is not None:
            parallel.prepare(parameters, len(x))
        out, loss = None, None
        if len(x):
            out = net(gn.tensor(x))
            loss = ((out.reshape(len(x), 8) - gn.tensor(y)) ** 2).mean()
            loss.backward()
        if parallel is not None:
            parallel.average_gradients(parameters, None if loss is None else float(loss.item()), len(x))
        if step == 0:
            outputs, grads = out.numpy().reshape(len(x), 8), [p.grad.numpy().copy() for p in net.parameters()]
        optimizer.step()
    return outputs, grads


scenario = sys.argv[1]
sizes, length = {"shares": ([7, 7, 7], 1), "empty": ([7, 1, 7], 2)}[scenario]
world = distributed.world()
rng = np.random.default_rng(3)
batches = [(rng.normal(size=(n, 4)).astype(np.float32), rng.normal(size=(n, 8)).astype(np.float32)) for n in sizes]
want_out, want_grads = train(reference := model(False, length), batches)
shares = [np.array_split(np.arange(len(x)), world.size)[world.rank] for x, _ in batches]
if scenario == "empty":
    assert [len(s) for s in shares] == ([4, 1, 4] if world.rank == 0 else [3, 0, 3]), shares
parallel = distributed.DataParallel(world)
net = model(True, length)
assert sum(isinstance(m, gn.nn.SyncBatchNorm) for m in net.modules()) == 2, net
parallel.watch(net)
out, grads = train(net, [(x[s], y[s]) for (x, y), s in zip(batches, shares)], parallel)
np.testing.assert_allclose(out, want_out[shares[0]], rtol=1e-4, atol=1e-6, err_msg="outputs")
for (name, _), got, want in zip(net.named_parameters(), grads, want_grads):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=f"gradient of {name}")
for (name, got), (_, want) in zip(net.state_dict().items(), reference.state_dict().items()):
    np.testing.assert_allclose(np.asarray(got.numpy() if hasattr(got, "numpy") else got, dtype=np.float64),
                               np.asarray(want.numpy() if hasattr(want, "numpy") else want, dtype=np.float64),
                               rtol=1e-4, atol=1e-6, err_msg=f"rank {world.rank}: {name}")
parallel.close()
if world.rank == 0:
    print("syncbn ok", file=sys.stderr)
