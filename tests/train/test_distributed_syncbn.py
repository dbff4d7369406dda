"""SyncBatchNorm: 2 ranks (each a share of the batch, or none) against BatchNorm over the whole batch in one process,
its conversion from BatchNorm layers (``trainer.sync_batchnorm`` in a config) and a 2-rank run of a config with it."""
import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
from gpunet.cli import main
from gpunet.config import build_models, build_task, load_config
from gpunet.train import distributed
from gpunet.train.checkpoint import load_checkpoint

from test_distributed import mpi_env, mpiexec, records

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


def test_a_copy_of_a_sync_batchnorm_is_served_as_itself():
    """A serving rank finds a layer by its key: a deep copy (e.g. of a whole model) gets a key of its own."""
    from gpunet.backend import collectives

    layer = gn.nn.SyncBatchNorm(3)
    copied = copy.deepcopy(gn.nn.Sequential(layer))[0]
    assert copied._key != layer._key and collectives._LAYERS[copied._key] is copied
    assert collectives._LAYERS[layer._key] is layer and copied.weight is not layer.weight


def test_a_config_layer_of_type_sync_batchnorm_builds_one():
    from gpunet.config.layers import build_layers

    model = build_layers([{"type": "Linear", "in_features": 4, "out_features": 3},
                          {"type": "SyncBatchNorm", "num_features": 3, "momentum": None}])
    assert isinstance(model[1], gn.nn.SyncBatchNorm) and model[1].momentum is None


CNN = """\
seed: 0
device: cpu
data: {name: digits, flatten: false, normalize: scale, test_split: 0.2, val_split: 0.1}
model:
  layers:
    - {type: Conv2d, in_channels: 1, out_channels: 6, kernel_size: 3, padding: same}
    - {type: BatchNorm2d, num_features: 6}
    - {type: ReLU}
    - {type: MaxPool2d, kernel_size: 2}
    - {type: Conv2d, in_channels: 6, out_channels: 8, kernel_size: 3, padding: same}
    - {type: BatchNorm2d, num_features: 8, momentum: null}
    - {type: ReLU}
    - {type: Flatten}
    - {type: Linear, in_features: 128, out_features: 10}
loss: {name: cross_entropy}
optimizer: {name: sgd, lr: 0.1, momentum: 0.9}
trainer: {epochs: 3, batch_size: 100, sync_batchnorm: false}
"""


@pytest.fixture
def cnn_config(tmp_path):
    path = tmp_path / "cnn_bn_digits.yaml"
    path.write_text(CNN)
    return str(path)


def test_the_switch_makes_every_batchnorm_a_sync_batchnorm_and_the_summary_shows_it(cnn_config, capsys):
    assert main(["summary", cnn_config, "trainer.sync_batchnorm=true"]) == 0
    table = capsys.readouterr().out
    assert table.count("(SyncBatchNorm)") == 2 and "(BatchNorm" not in table, table
    config = load_config(cnn_config, ["trainer.sync_batchnorm=true"])
    model = build_models(config, build_task(config), None)["model"]
    assert [type(m).__name__ for m in model if "Norm" in type(m).__name__] == ["SyncBatchNorm"] * 2


@pytest.mark.parametrize("sizes", [("trainer.batch_size=646", "trainer.eval_batch_size=143"),
                                   pytest.param(("trainer.batch_size=100",), marks=pytest.mark.slow),
                                   pytest.param(("trainer.batch_size=646", "trainer.eval_batch_size=143",
                                                 "device=cuda-emu"), marks=pytest.mark.slow)],
                         ids=["empty-share", "shares", "empty-share-cuda-emu"])
def test_two_ranks_of_a_config_with_sync_batchnorm_equal_one_process_with_batchnorm(cnn_config, capsys, tmp_path,
                                                                                       sizes):
    """A CNN with two BatchNorm2d (momentum 0.1 and a cumulative average) on digits, 3 epochs: 2 ranks with
    ``trainer.sync_batchnorm`` equal the single process with BatchNorm within 1e-5 (every logged number, the final
    weights and running statistics). Batches of 646 of the 1293 training samples leave a last one of 1 sample:
    rank 1's share is empty (and the 144 validation samples end with one of 1), also on the emulated GPU (slow, each
    rank its own device, the gradients through the NCCL stand-in); batches of 100 (slow): 31 steps an epoch, shares
    of 50 and the last 93 as 47 and 46."""
    reference = tmp_path / "single"
    assert main(["train", cnn_config, *sizes, "--out", str(reference), "--no-progress"]) == 0, \
        capsys.readouterr().err
    capsys.readouterr()
    out = tmp_path / "run"
    result = mpiexec(tmp_path, 2, "train", cnn_config, *sizes, "trainer.sync_batchnorm=true", "--out", out,
                     "--no-progress")
    assert result.returncode == 0, result.stderr
    got, want = records(out), records(reference)
    assert [sorted(r) for r in got] == [sorted(r) for r in want] and len(want) == 3
    for row, expected in zip(got, want):
        for key in expected:
            if key not in ("time", "host_syncs"):  # ranks exchange through the host: they wait more
                np.testing.assert_allclose(row[key], expected[key], rtol=1e-5, err_msg=f"epoch {row['epoch']} {key}")
    weights = load_checkpoint(out / "checkpoints" / "last.npz").model
    expected = load_checkpoint(reference / "checkpoints" / "last.npz").model
    assert sorted(weights) == sorted(expected) and "5.running_var" in expected
    for name, want_value in expected.items():  # relative to each tensor's scale (a weight near 0 may differ by 1e-7)
        scale = float(np.abs(want_value).max())
        np.testing.assert_allclose(weights[name], want_value, rtol=1e-5, atol=1e-5 * scale, err_msg=name)
