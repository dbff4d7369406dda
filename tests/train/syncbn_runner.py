"""``mpiexec -n 2 python syncbn_runner.py``: SyncBatchNorm over 2 ranks against BatchNorm on the whole batch in one
process (computed on every rank, no collective). Each rank trains its share of a 7-sample batch (4 and 3 samples)
for 3 SGD steps through ``DataParallel``; the outputs of the first step, the parameters' gradients, the final weights
and the running statistics must equal the single process's. Exits 0 and prints ``syncbn ok`` on rank 0."""
import sys

import numpy as np

import gpunet as gn
from gpunet.train import distributed


class Net(gn.nn.Module):
    """Linear -> BatchNorm1d -> tanh -> Linear -> (N, 2, 2, 2) -> BatchNorm2d (cumulative running averages)."""

    def __init__(self):
        super().__init__()
        self.body = gn.nn.Sequential(gn.nn.Linear(4, 3), gn.nn.BatchNorm1d(3), gn.nn.Tanh(), gn.nn.Linear(3, 8))
        self.norm = gn.nn.BatchNorm2d(2, momentum=None)

    def forward(self, x):
        return self.norm(self.body(x).reshape(x.shape[0], 2, 2, 2))


def model(sync: bool):
    gn.manual_seed(0)
    net = Net()
    return gn.nn.SyncBatchNorm.convert_sync_batchnorm(net) if sync else net


def train(net, x, y, parallel=None, share=None):
    optimizer = gn.optim.SGD(net.parameters(), lr=0.5)
    outputs, grads = None, None
    for step in range(3):
        optimizer.zero_grad()
        if parallel is not None:
            parallel.prepare(list(net.parameters()), share)
        out = net(gn.tensor(x))
        loss = ((out.reshape(len(x), 8) - gn.tensor(y)) ** 2).mean()
        loss.backward()
        if parallel is not None:
            parallel.average_gradients(list(net.parameters()), float(loss.item()), share)
        if step == 0:
            outputs, grads = out.numpy().reshape(len(x), 8), [p.grad.numpy().copy() for p in net.parameters()]
        optimizer.step()
    return outputs, grads


world = distributed.world()
rng = np.random.default_rng(3)
x, y = rng.normal(size=(7, 4)).astype(np.float32), rng.normal(size=(7, 8)).astype(np.float32)
want_out, want_grads = train(reference := model(False), x, y)
rows = np.array_split(np.arange(7), world.size)[world.rank]
parallel = distributed.DataParallel(world)
net = model(True)
assert sum(isinstance(m, gn.nn.SyncBatchNorm) for m in net.modules()) == 2, net
out, grads = train(net, x[rows], y[rows], parallel, len(rows))
np.testing.assert_allclose(out, want_out[rows], rtol=1e-4, atol=1e-6, err_msg="outputs")
for (name, _), got, want in zip(net.named_parameters(), grads, want_grads):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=f"gradient of {name}")
for (name, got), (_, want) in zip(net.state_dict().items(), reference.state_dict().items()):
    np.testing.assert_allclose(np.asarray(got.numpy() if hasattr(got, "numpy") else got, dtype=np.float64),
                               np.asarray(want.numpy() if hasattr(want, "numpy") else want, dtype=np.float64),
                               rtol=1e-4, atol=1e-6, err_msg=name)
parallel.close()
if world.rank == 0:
    print("syncbn ok", file=sys.stderr)
