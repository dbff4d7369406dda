"""Checkpoints: exact round trip, atomic writes, corrupt and unsafe files, CheckpointManager."""
import json
import math
import os
import stat
import zipfile

import numpy as np
import pytest

import gpunet
from gpunet.train.checkpoint import (Checkpoint, CheckpointError, CheckpointManager, fallback_message,
                                     load_checkpoint, newest_intact, open_checkpoint, save_checkpoint)


def torch_adam_state():
    """A real PyTorch optimizer state_dict (after two Adam steps), tensors turned into NumPy arrays."""
    import torch
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0)
    for _ in range(2):
        opt.zero_grad()
        net(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    state = opt.state_dict()
    as_numpy = {i: {k: v.numpy().copy() if torch.is_tensor(v) else v for k, v in s.items()}
                for i, s in state["state"].items()}
    return {"state": as_numpy, "param_groups": state["param_groups"]}, \
        {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def rich_checkpoint():
    optimizer, model = torch_adam_state()
    model["odd.f16"] = np.array([1.5, -0.0, np.inf], dtype=np.float16)
    model["odd.big_endian"] = np.arange(6, dtype=">f4").reshape(2, 3)
    model["odd.transposed"] = np.arange(12, dtype=np.int64).reshape(3, 4).T
    model["odd.empty"] = np.zeros((0, 3), dtype=np.float32)
    model["odd.bool"] = np.array([True, False])
    model["odd.nan_payload"] = np.array([0x7FC00001, 0xFFF00002], dtype=np.uint32).view(np.float32)
    model["odd.scalar"] = np.array(3.25, dtype=np.float64)
    model["odd.complex"] = np.array([1 + 2j], dtype=np.complex64)
    gpunet.manual_seed(123)
    gpunet.random.generator().random(5)
    return Checkpoint(
        model=model,
        optimizer=optimizer,
        scheduler={"step_size": 10, "gamma": 0.5, "base_lrs": [0.1], "last_epoch": 3, "_last_lr": [0.05],
                   "verbose": False, "_get_lr_called_within_step": False},
        rng=gpunet.random.get_rng_state(),
        loader={"epoch": 3, "batch": 7, "seed": 0, "batch_size": 32, "shuffle": True, "drop_last": False,
                "num_samples": 1437},
        epoch=3, step=141,
        history=[{"epoch": 1, "loss": 0.5, "val_accuracy": 0.75, "lr": 0.1, "time": 1.0},
                 {"epoch": 2, "loss": float("nan"), "val_accuracy": np.float32(0.8), "lr": 1e-300, "time": 2},
                 {"epoch": 3, "loss": float("inf"), "neg_zero": -0.0, "count": np.int64(2**62 + 1)}],
        config={"seed": 1, "model": {"layers": [["Linear", 64, 50], ["Sigmoid"]]}, "trainer": {"epochs": 30},
                "scheduler": None, "tuple": (1, (2.0, None)), "unicode": "naïve ✓", "": "empty key"},
        extra={"early_stopping": {"wait": 2, "best": 0.25}, 3: "int key", 2.5: "float key", None: True,
               "__array__": "a user key that looks like a marker", "mixed": {1: [True, None, 1.0, 1]}},
    )


def assert_identical(a, b, where="root"):
    """Equal values and identical Python/NumPy types, arrays compared bit for bit."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where
    elif isinstance(a, dict):
        assert list(a) == list(b) and [type(k) for k in a] == [type(k) for k in b], where
        for k in a:
            assert_identical(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert math.copysign(1, a) == math.copysign(1, b) and (a == b or (a != a and b != b)), where
    else:
        assert a == b, where


def test_round_trip_is_exact(tmp_path):
    original = rich_checkpoint()
    path = tmp_path / "ck.npz"
    save_checkpoint(path, original)
    loaded = load_checkpoint(path)
    for name in ("model", "optimizer", "scheduler", "rng", "loader", "epoch", "step", "history", "config", "extra"):
        assert_identical(getattr(original, name), getattr(loaded, name), name)
    assert loaded.optimizer["param_groups"][0]["betas"] == (0.9, 0.999)
    assert type(loaded.optimizer["state"][0]["step"]) is np.ndarray  # torch keeps step as a tensor
    assert type(loaded.history[1]["time"]) is int and type(loaded.history[0]["time"]) is float


def test_restored_rng_state_reproduces_draws(tmp_path):
    gpunet.manual_seed(7)
    gpunet.random.generator().random(3)
    save_checkpoint(tmp_path / "r.npz", Checkpoint(model={}, rng=gpunet.random.get_rng_state()))
    expected = gpunet.random.generator().random(4)
    gpunet.manual_seed(999)
    gpunet.random.set_rng_state(load_checkpoint(tmp_path / "r.npz").rng)
    np.testing.assert_array_equal(gpunet.random.generator().random(4), expected)


def test_file_layout_is_json_plus_arrays(tmp_path):
    path = tmp_path / "c.npz"
    save_checkpoint(path, Checkpoint(model={"w": np.ones(2)}, epoch=1))
    with np.load(path, allow_pickle=False) as archive:
        document = json.loads(archive["__checkpoint__"].tobytes())
        assert document["format"] == "gpunet-checkpoint" and document["version"] == 2
        assert document["content"]["model"] == {"w": {"__array__": "a0", "scalar": False}}
        np.testing.assert_array_equal(archive["a0"], [1, 1])


def test_unstorable_values_are_refused_before_writing(tmp_path):
    path = tmp_path / "c.npz"
    with pytest.raises(TypeError, match=r"history\[0\]\.obj: cannot store a builtins.object"):
        save_checkpoint(path, Checkpoint(model={}, history=[{"obj": object()}]))
    with pytest.raises(TypeError, match="config.x: object arrays cannot be stored"):
        save_checkpoint(path, Checkpoint(model={}, config={"x": np.array([None], dtype=object)}))
    with pytest.raises(TypeError, match="model state is not a dict of NumPy arrays"):
        save_checkpoint(path, Checkpoint(model={"w": [1.0, 2.0]}))
    with pytest.raises(TypeError, match="epoch is 1.0, not a non-negative integer"):
        save_checkpoint(path, Checkpoint(model={}, epoch=1.0))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failure_mid_write_keeps_the_previous_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "last.npz"
    save_checkpoint(path, Checkpoint(model={"w": np.zeros(3)}, epoch=1))
    before = path.read_bytes()

    def boom(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, failing, boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, Checkpoint(model={"w": np.ones(1000)}, epoch=2))
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).epoch == 1
    assert os.listdir(tmp_path) == ["last.npz"]  # no temporary file left behind


def test_write_goes_through_a_synced_temporary_file(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(("fsync", stat.S_ISDIR(os.fstat(fd).st_mode))),
                                                 real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (calls.append(("replace", os.path.dirname(a) == str(tmp_path))),
                                                     real_replace(a, b)))
    save_checkpoint(tmp_path / "c.npz", Checkpoint(model={}))
    assert calls == [("fsync", False), ("replace", True), ("fsync", True)]  # file, rename, then directory


def saved(tmp_path, name="c.npz"):
    path = tmp_path / name
    save_checkpoint(path, Checkpoint(model={"w": np.arange(50, dtype=np.float64)}, epoch=4, config={"a": 1}))
    return path


def test_truncated_checkpoint(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a complete .npz .*truncated") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)


def test_corrupted_array_bytes_fail_the_crc(tmp_path):
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    at = data.index(np.arange(50, dtype=np.float64)[25:26].tobytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{path} is corrupt: BadZipFile: Bad CRC-32"):
        load_checkpoint(path)


def rewrite(src, dst, drop=(), replace=None, add=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if item.filename in drop:
                continue
            data = zin.read(item.filename)
            if replace and item.filename in replace:
                data = replace[item.filename]
            zout.writestr(item.filename, data)
        for name, data in (add or {}).items():
            zout.writestr(name, data)


def npy_bytes(array, allow_pickle=False):
    import io
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def header_bytes(document):
    return npy_bytes(np.frombuffer(json.dumps(document).encode(), dtype=np.uint8))


def test_missing_members_and_bad_descriptions(tmp_path):
    path = saved(tmp_path)
    cases = {
        "missing.npz": ({"drop": ["a0.npy"]}, r"missing member\(s\) \['a0'\]"),
        "noheader.npz": ({"drop": ["__checkpoint__.npy"]}, "not a gpunet checkpoint: it has no __checkpoint__"),
        "badjson.npz": ({"replace": {"__checkpoint__.npy": npy_bytes(np.frombuffer(b"{not json", np.uint8))}},
                        "description is not valid JSON"),
        "version.npz": ({"replace": {"__checkpoint__.npy": header_bytes(
            {"format": "gpunet-checkpoint", "version": 99, "content": {}})}}, "format version 99; this gpunet reads versions 1 to 2"),
        "format.npz": ({"replace": {"__checkpoint__.npy": header_bytes({"format": "other", "version": 1})}},
                       "not a gpunet checkpoint"),
        "fields.npz": ({"drop": ["a0.npy", "__checksum__.npy"], "replace": {"__checkpoint__.npy": header_bytes(
            {"format": "gpunet-checkpoint", "version": 1, "content": {"model": {}}})}}, "content has fields"),
        "extra.npz": ({"add": {"a7.npy": npy_bytes(np.zeros(2))}}, r"unexpected member\(s\) \['a7'\]"),
    }
    for name, (change, message) in cases.items():
        target = tmp_path / name
        rewrite(path, target, **change)
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(target)
        assert str(target) in str(info.value)
    with pytest.raises(CheckpointError, match="checkpoint not found: .*nothing.npz"):
        load_checkpoint(tmp_path / "nothing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x80\x04 definitely not a zip")
    with pytest.raises(CheckpointError, match="garbage.npz is not a valid checkpoint"):
        load_checkpoint(garbage)


def test_the_checksum_catches_damage_the_zip_format_does_not(tmp_path):
    # a member replaced with other valid data (its zip CRC matches the new bytes): only the checksum can tell
    path = saved(tmp_path)
    damaged = tmp_path / "damaged.npz"
    changed = np.arange(50, dtype=np.float64)
    changed[25] = 1e6
    rewrite(path, damaged, replace={"a0.npy": npy_bytes(changed)})
    with pytest.raises(CheckpointError, match=f"{damaged} is damaged: its arrays do not match its checksum"):
        load_checkpoint(damaged)
    header = tmp_path / "header.npz"  # the description is covered too
    with np.load(path) as archive:
        document = json.loads(archive["__checkpoint__"].tobytes())
    document["content"]["epoch"] = 5
    rewrite(path, header, replace={"__checkpoint__.npy": header_bytes(document)})
    with pytest.raises(CheckpointError, match="do not match its checksum"):
        load_checkpoint(header)
    assert load_checkpoint(path).epoch == 4


def test_version_1_files_without_a_checksum_still_load(tmp_path):
    path = saved(tmp_path)
    with np.load(path) as archive:
        document = json.loads(archive["__checkpoint__"].tobytes())
    document["version"] = 1
    old = tmp_path / "old.npz"
    rewrite(path, old, drop=["__checksum__.npy"], replace={"__checkpoint__.npy": header_bytes(document)})
    np.testing.assert_array_equal(load_checkpoint(old).model["w"], np.arange(50))


class Exploit:
    """Unpickling this would create a file: proof that code ran."""
    marker = None

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("referenced", [True, False])
def test_pickled_object_arrays_are_refused_without_running_them(tmp_path, referenced):
    Exploit.marker = str(tmp_path / "pwned")
    bomb = np.array([Exploit()], dtype=object)
    content = {"model": {"w": {"__array__": "a0", "scalar": False}} if referenced else {}, "optimizer": None,
               "scheduler": None, "rng": None, "loader": None, "epoch": 0, "step": 0, "history": [],
               "config": None, "extra": {}}
    header = np.frombuffer(json.dumps({"format": "gpunet-checkpoint", "version": 1, "content": content}).encode(),
                           np.uint8)
    path = tmp_path / "evil.npz"
    np.savez(path, __checkpoint__=header, a0=bomb)  # numpy pickles object arrays when saving
    expected = "holds pickled Python objects; refused" if referenced else r"unexpected member\(s\) \['a0'\]"
    with pytest.raises(CheckpointError, match=expected):
        load_checkpoint(path)
    assert not os.path.exists(Exploit.marker)


def manager_checkpoint(epoch):
    return Checkpoint(model={"w": np.full(3, float(epoch))}, epoch=epoch, step=10 * epoch)


def test_manager_keeps_last_best_and_n_newest(tmp_path):
    manager = CheckpointManager(tmp_path / "checkpoints", monitor="val_loss", mode="min", keep=2)
    losses = [0.5, 0.3, 0.4, 0.2, 0.25]
    for epoch, loss in enumerate(losses, start=1):
        written = manager.save(manager_checkpoint(epoch), {"val_loss": loss, "val_accuracy": 1 - loss})
        assert [os.path.basename(p) for p in written[-2:]] == [f"epoch-{epoch:04d}.npz", "last.npz"]
    names = sorted(os.listdir(tmp_path / "checkpoints"))
    assert names == ["best.npz", "epoch-0004.npz", "epoch-0005.npz", "last.npz"]
    inodes = {os.stat(tmp_path / "checkpoints" / name).st_ino for name in names}
    assert len(inodes) == 4 and all(os.stat(tmp_path / "checkpoints" / n).st_nlink == 1 for n in names)
    assert load_checkpoint(manager.last_path).epoch == 5
    best = load_checkpoint(manager.best_path)
    assert best.epoch == 4 and best.model["w"][0] == 4.0
    assert best.extra["checkpoint_manager"] == {"best_score": 0.2, "best_epoch": 4}
    assert (manager.best_score, manager.best_epoch) == (0.2, 4)

    resumed = CheckpointManager(tmp_path / "checkpoints", monitor="val_loss", keep=2)
    resumed.restore(load_checkpoint(resumed.latest()))
    assert (resumed.best_score, resumed.best_epoch) == (0.2, 4)
    resumed.save(manager_checkpoint(6), {"val_loss": 0.21})  # not better than 0.2
    assert load_checkpoint(resumed.best_path).epoch == 4


def test_manager_max_mode_nan_and_missing_metric(tmp_path):
    manager = CheckpointManager(tmp_path, monitor="val_accuracy", mode="max", keep=0)
    manager.save(manager_checkpoint(1), {"val_accuracy": float("nan")})
    assert not os.path.exists(manager.best_path) and sorted(os.listdir(tmp_path)) == ["last.npz"]
    manager.save(manager_checkpoint(2), {"val_accuracy": 0.5})
    manager.save(manager_checkpoint(3), {"val_accuracy": 0.7})
    manager.save(manager_checkpoint(4), {"val_accuracy": 0.6})
    assert load_checkpoint(manager.best_path).epoch == 3
    with pytest.raises(ValueError, match=r"monitors 'val_accuracy', but the metrics given are \['loss'\]"):
        manager.save(manager_checkpoint(5), {"loss": 1.0})
    with pytest.raises(ValueError, match="mode must be 'min' or 'max'"):
        CheckpointManager(tmp_path, mode="lowest")


def test_manager_failure_keeps_last_good_checkpoint_and_old_epochs(tmp_path, monkeypatch):
    manager = CheckpointManager(tmp_path, monitor=None, keep=1)
    manager.save(manager_checkpoint(1))

    def boom(*args):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        manager.save(manager_checkpoint(2))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["epoch-0001.npz", "last.npz"]
    assert load_checkpoint(manager.last_path).epoch == 1


def damage(path, at=0.5):
    """Flip one byte in the middle of ``path`` (bit rot)."""
    data = bytearray(open(path, "rb").read())
    data[int(len(data) * at)] ^= 0xFF
    open(path, "wb").write(bytes(data))


def test_newest_intact_skips_damaged_files_and_names_them(tmp_path):
    manager = CheckpointManager(tmp_path, monitor="loss", keep=2)
    for epoch, loss in [(1, 1.0), (2, 0.5), (3, 0.7)]:
        manager.save(manager_checkpoint(epoch), {"loss": loss})
    assert newest_intact([]) is None
    path, checkpoint, problems = newest_intact(manager.paths())
    assert (path, checkpoint.epoch, problems) == (manager.last_path, 3, [])
    damage(manager.last_path)
    path, checkpoint, problems = newest_intact(manager.paths())
    assert (path, checkpoint.epoch) == (manager.epoch_path(3), 3)
    assert len(problems) == 1 and problems[0].startswith(f"{manager.last_path} is ")
    damage(manager.epoch_path(3))
    path, checkpoint, problems = newest_intact(manager.paths())
    assert (path, checkpoint.epoch, len(problems)) == (manager.epoch_path(2), 2, 2)
    damage(manager.epoch_path(2))  # best.npz (epoch 2) is the last copy left: resuming from it is still exact
    path, checkpoint, problems = newest_intact(manager.paths())
    assert (path, checkpoint.epoch, len(problems)) == (manager.best_path, 2, 3)
    damage(manager.best_path)
    with pytest.raises(CheckpointError, match="no intact checkpoint: .*last.npz.*epoch-0003.*epoch-0002.*best.npz"):
        newest_intact(manager.paths())


def test_open_checkpoint_falls_back_for_last_but_not_for_best(tmp_path):
    manager = CheckpointManager(tmp_path, monitor="loss", keep=1)
    for epoch, loss in [(1, 1.0), (2, 2.0)]:
        manager.save(manager_checkpoint(epoch), {"loss": loss})
    assert open_checkpoint(manager.best_path)[1].epoch == 1
    damage(manager.last_path)
    path, checkpoint, problems = open_checkpoint(manager.last_path)
    assert (path, checkpoint.epoch) == (manager.epoch_path(2), 2) and manager.last_path in problems[0]
    assert "using the newest intact checkpoint instead: " + manager.epoch_path(2) in \
        fallback_message(path, checkpoint, problems)
    damage(manager.best_path)  # another model than the best would be a silently wrong answer: refuse, name others
    with pytest.raises(CheckpointError, match=r"best.npz is .*; intact checkpoints beside it: .*epoch-0002.npz "
                                              r"\(epoch 2\)"):
        open_checkpoint(manager.best_path)


def test_a_mid_epoch_checkpoint_goes_to_last_only(tmp_path):
    manager = CheckpointManager(tmp_path, monitor="loss", keep=2)
    manager.save(manager_checkpoint(1), {"loss": 1.0})
    epoch_file = open(manager.epoch_path(1), "rb").read()
    mid = Checkpoint(model={"w": np.zeros(3)}, epoch=1, step=15, extra={"partial_epoch": {"lr": 0.1}})
    assert manager.save_last(mid) == manager.last_path
    assert sorted(os.listdir(tmp_path)) == ["best.npz", "epoch-0001.npz", "last.npz"]
    assert open(manager.epoch_path(1), "rb").read() == epoch_file and load_checkpoint(manager.last_path).step == 15
    assert newest_intact(manager.paths())[1].step == 15
