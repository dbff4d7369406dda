"""SyncBatchNorm: 2 ranks (each a share of the batch) against BatchNorm over the whole batch in one process, and
its conversion from BatchNorm layers."""
import subprocess
import sys
from pathlib import Path

import numpy as np

import gpunet as gn
from gpunet.train import distributed

from test_distributed import mpi_env

RUNNER = Path(__file__).with_name("syncbn_runner.py")


def syncbn_runner(tmp_path, scenario: str) -> subprocess.CompletedProcess:
    command = [distributed.mpiexec_path(), "-n", "2", "--oversubscribe", sys.executable, str(RUNNER), scenario]
    return subprocess.run(command, env=mpi_env(tmp_path), capture_output=True, text=True, timeout=120)


def test_two_ranks_with_sync_batchnorm_equal_batchnorm_on_the_whole_batch(tmp_path):
    """Shares of 4 and 3 samples: outputs, gradients, 3 SGD steps' weights and running statistics (BatchNorm1d
    with momentum, BatchNorm2d with a cumulative average) within 1e-4 of the single process (float32)."""
    result = syncbn_runner(tmp_path, "shares")
    assert result.returncode == 0, result.stderr
    assert "syncbn ok" in result.stderr


def test_a_rank_with_an_empty_share_serves_the_sync_batchnorm_reductions(tmp_path):
    """Batches of 7, 1 and 7 samples: rank 1 gets nothing of the second, runs no forward, and neither rank waits;
    every rank's weights and running statistics equal BatchNorm's on the whole batches."""
    result = syncbn_runner(tmp_path, "empty")
    assert result.returncode == 0, result.stderr
    assert "syncbn ok" in result.stderr


def test_convert_sync_batchnorm_keeps_the_parameters_and_is_batchnorm_on_one_process():
    gn.manual_seed(0)
    net = gn.nn.Sequential(gn.nn.Linear(4, 3), gn.nn.BatchNorm1d(3, momentum=0.3))
    x = gn.tensor(np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32))
    weight = net[1].weight
    want = net(x).numpy()
    converted = gn.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    assert isinstance(converted[1], gn.nn.SyncBatchNorm) and converted[1].weight is weight
    assert converted[1].momentum == 0.3 and int(converted[1].num_batches_tracked.numpy()) == 1
    np.testing.assert_allclose(converted(x).numpy(), want, rtol=1e-6)
    assert int(converted[1].num_batches_tracked.numpy()) == 2


def test_a_config_layer_of_type_sync_batchnorm_builds_one():
    from gpunet.config.layers import build_layers

    model = build_layers([{"type": "Linear", "in_features": 4, "out_features": 3},
                          {"type": "SyncBatchNorm", "num_features": 3, "momentum": None}])
    assert isinstance(model[1], gn.nn.SyncBatchNorm) and model[1].momentum is None
