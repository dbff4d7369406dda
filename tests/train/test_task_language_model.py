"""The language_model task: stateful stream batches, truncated BPTT against PyTorch doing the same by hand, exact
resume mid-epoch (carried state included, each data-parallel rank's, re-split by rows for another number of ranks),
bpc/perplexity in summary.json, T = 500 finite with clipping, and text sampling (seeded, greedy as the temperature
goes to 0)."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

import gpunet
from gpunet import nn, optim
from gpunet.data import DataLoader, StreamLoader, Vocabulary, stream_order
from gpunet.train import Trainer
from gpunet.train.checkpoint import load_checkpoint, save_checkpoint
from gpunet.train.tasks.language_model import LanguageModel, resplit_rows, run_stateful, sample_text

from runcompare import assert_same_run
from trainhelpers import StopAfter, assert_same_weights, without_time

V, L = 7, 6  # vocabulary (ids 0 and 1: padding and OOV, never in the data), window length


def windows(n=24, seed=0):
    """``n`` consecutive windows of one id sequence: x and x one step later."""
    ids = np.random.default_rng(seed).integers(2, V, size=n * L + 1)
    starts = np.arange(n) * L
    return ids[starts[:, None] + np.arange(L)], ids[starts[:, None] + np.arange(1, L + 1)]


def char_model(hidden=5):
    return nn.Sequential(nn.Embedding(V, 4), nn.LSTM(4, hidden, batch_first=True, return_mode="sequence"),
                         nn.Linear(hidden, V))


def test_stream_order_worked_example():
    # 7 samples, 3 streams of 2 (sample 6 dropped): streams [0 1] [2 3] [4 5]; batch k holds chunk k of each
    np.testing.assert_array_equal(stream_order(7, 3), [0, 2, 4, 1, 3, 5])
    x = np.arange(7)
    loader = StreamLoader(x, batch_size=3)
    assert len(loader) == 2 and [b.tolist() for b in loader] == [[0, 2, 4], [1, 3, 5]]
    with pytest.raises(ValueError, match="batch_size"):
        StreamLoader(x, batch_size=8)


def test_stream_loader_resumes_at_its_position():
    x = np.arange(40)
    straight = StreamLoader(x, batch_size=4)
    batches = [b.tolist() for _ in range(2) for b in straight]
    first = StreamLoader(x, batch_size=4)
    taken = [next(iter(first)).tolist()]  # one batch of the first epoch
    again = StreamLoader(x, batch_size=4)
    again.load_state_dict(first.state_dict())
    rest = [b.tolist() for b in again] + [b.tolist() for b in again]
    assert taken + rest == batches


def _trainer(bptt, reduction, clip, callbacks=(), seed=0):
    gpunet.manual_seed(seed)
    model = char_model()
    task = LanguageModel(bptt=bptt, time_reduction=reduction, sample_length=0)
    return Trainer(model, None, optim.SGD(model.parameters(), lr=0.5), task=task, grad_clip=clip,
                   callbacks=callbacks, metrics=())


def _fit(x, y, bptt, reduction, clip, epochs=1, callbacks=(), resume=None, seed=0):
    trainer = _trainer(bptt, reduction, clip, callbacks, seed)
    start = {k: v.copy() for k, v in trainer.model.state_dict().items()}
    trainer.fit(StreamLoader((x, y), batch_size=4), DataLoader((x, y), 8), epochs=epochs, resume=resume)
    return trainer, start


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_truncated_bptt_equals_pytorch_by_hand(reduction):
    torch = pytest.importorskip("torch")
    x, y = windows()
    trainer, start = _fit(x, y, bptt=2, reduction=reduction, clip=0.3)
    ref = torch.nn.Sequential(torch.nn.Embedding(V, 4), torch.nn.LSTM(4, 5, batch_first=True), torch.nn.Linear(5, V))
    ref.double().load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in start.items()})
    sgd = torch.optim.SGD(ref.parameters(), lr=0.5)
    state = None
    order = stream_order(len(x), 4).reshape(-1, 4)
    for rows in order:  # one epoch: chunks of 2 steps, state carried and detached, clipped SGD steps
        for t in range(0, L, 2):
            xs, ys = torch.tensor(x[rows, t:t + 2]), torch.tensor(y[rows, t:t + 2])
            out, state = ref[1](ref[0](xs), state)
            logits = ref[2](out)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), ys.reshape(-1))
            loss = loss * 2 if reduction == "sum" else loss
            sgd.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.3)
            sgd.step()
            state = tuple(s.detach() for s in state)
    got = trainer.model.state_dict()
    for key, value in ref.state_dict().items():
        np.testing.assert_allclose(got[key], value.numpy(), rtol=2e-4, atol=2e-5, err_msg=key)


def test_carried_state_continues_the_sequence(device):
    gpunet.manual_seed(0)
    model = char_model().to(device)
    ids = np.random.default_rng(1).integers(2, V, size=(3, 8))
    whole, _ = run_stateful(model, gpunet.tensor(ids, device=device), {})
    first, state = run_stateful(model, gpunet.tensor(ids[:, :5], device=device), {})
    second, _ = run_stateful(model, gpunet.tensor(ids[:, 5:], device=device), state)
    np.testing.assert_allclose(np.concatenate([first.numpy(), second.numpy()], 1), whole.numpy(), rtol=1e-5,
                               atol=1e-6)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory):
    """(the uninterrupted 2-epoch run, the path of its checkpoint after batch 3 of epoch 2, where a run stopped)."""
    x, y = windows()
    straight, _ = _fit(x, y, bptt=3, reduction="mean", clip=1.0, epochs=2)
    path = str(tmp_path_factory.mktemp("lm") / "mid.npz")
    with pytest.raises(KeyboardInterrupt):
        _fit(x, y, bptt=3, reduction="mean", clip=1.0, epochs=2, callbacks=[StopAfter(path, epoch=2, step=3)])
    return straight, path


def _assert_resumes_as(straight, path):
    x, y = windows()
    resumed, _ = _fit(x, y, bptt=3, reduction="mean", clip=1.0, epochs=2, resume=path)
    assert without_time(resumed.history) == without_time(straight.history)
    assert_same_weights(resumed.model, straight.model)


def test_resume_mid_epoch_with_the_carried_state_is_exact(stopped):
    straight, path = stopped
    assert load_checkpoint(path).extra["partial_epoch"]["collector"]["batches"] == 3
    _assert_resumes_as(straight, path)


def test_another_number_of_ranks_resplits_the_carried_rows_so_every_stream_keeps_its_state(stopped, tmp_path):
    """Rank r of N carries rows ``array_split(range(batch), N)[r]`` of the streams (its share of every batch), so on
    resume the saved ranks' rows are joined in rank order and re-split: a 1-rank checkpoint of 4 streams gives ranks
    of 3 rows [0 1], [2], [3]; the same N gives each rank its own; and the checkpoint as 2 ranks would save it,
    resumed by one process, equals the uninterrupted run bitwise."""
    straight, path = stopped
    checkpoint = load_checkpoint(path)
    [saved] = checkpoint.extra["task"]["ranks"]
    h, c = saved["state_1_0"], saved["state_1_1"]  # the LSTM's (layers, streams, hidden)
    assert h.shape == c.shape == (1, 4, 5) and len({row.tobytes() for row in h[0]}) == 4
    for rank, rows in [(0, slice(0, 2)), (1, slice(2, 3)), (2, slice(3, 4))]:
        share = resplit_rows([saved], rank, 3)
        assert list(share["layers"]) == [1]
        np.testing.assert_array_equal(share["state_1_0"], h[:, rows])
        np.testing.assert_array_equal(share["state_1_1"], c[:, rows])
    assert list(resplit_rows([saved], 4, 5)["layers"]) == []  # 4 streams, 5 ranks: rank 4's share is empty
    assert list(resplit_rows([{"layers": []}], 0, 2)["layers"]) == []  # an epoch's start: nothing carried yet

    two = [{"layers": [1], "state_1_0": h[:, :2], "state_1_1": c[:, :2]},
           {"layers": [1], "state_1_0": h[:, 2:], "state_1_1": c[:, 2:]}]
    np.testing.assert_array_equal(resplit_rows(two, 1, 2)["state_1_1"], c[:, 2:])  # the same N: its own
    np.testing.assert_array_equal(resplit_rows([{"layers": []}, *two], 0, 1)["state_1_0"], h)  # an empty share

    resumed = _trainer(bptt=3, reduction="mean", clip=1.0)
    resumed.distributed = SimpleNamespace(world=SimpleNamespace(rank=1, size=3))  # all load_checkpoint reads
    resumed.load_checkpoint(checkpoint)
    np.testing.assert_array_equal(resumed.task._states[1][0].numpy(), h[:, 2:3])  # the Trainer asks the task

    checkpoint.extra["task"]["ranks"] = two
    save_checkpoint(str(tmp_path / "two.npz"), checkpoint)
    _assert_resumes_as(straight, str(tmp_path / "two.npz"))


def test_bpc_and_perplexity_come_from_the_mean_nll():
    x, y = windows()
    trainer, _ = _fit(x, y, bptt=4, reduction="sum", clip=None)  # chunks of 4 and 2 steps
    logs = trainer.history.epochs[-1]
    assert logs["train_loss"] == pytest.approx(logs["train_nll"] * L)  # sum over the window's steps
    assert logs["val_bpc"] == pytest.approx(logs["val_nll"] / math.log(2))
    assert logs["val_perplexity"] == pytest.approx(math.exp(logs["val_nll"]))


def test_five_hundred_steps_stay_finite_with_clipping(device):
    gpunet.manual_seed(0)
    ids = np.random.default_rng(0).integers(2, V, size=(4, 501))
    model = char_model(hidden=8)
    task = LanguageModel(bptt=None, sample_length=0)
    trainer = Trainer(model, None, optim.SGD(model.parameters(), lr=5.0), task=task, grad_clip=1.0, metrics=(),
                      device=device)
    trainer.fit(StreamLoader((ids[:, :-1], ids[:, 1:]), batch_size=2), epochs=3)
    assert all(math.isfinite(e["train_loss"]) for e in trainer.history)
    assert all(np.isfinite(p.numpy()).all() for p in trainer.model.parameters())


def _vocabulary():
    return Vocabulary.fit("abcde", level="char")


def test_sampling_is_seeded_and_greedy_near_zero_temperature():
    gpunet.manual_seed(0)
    model = char_model()
    vocabulary = _vocabulary()
    assert len(vocabulary) == V
    a = sample_text(model, vocabulary, "ab", 20, temperature=1.0, seed=3)
    assert a == sample_text(model, vocabulary, "ab", 20, temperature=1.0, seed=3) and a.startswith("ab")
    assert len(a) == 22 and a != sample_text(model, vocabulary, "ab", 20, temperature=1.0, seed=4)
    # greedy by hand: the whole text so far through the model, the likeliest real token appended
    ids = vocabulary.encode("ab")
    for _ in range(10):
        logits = model(gpunet.tensor(np.array([ids]))).numpy()[0, -1]
        ids.append(2 + int(np.argmax(logits[2:])))
    greedy = vocabulary.decode(ids)
    assert sample_text(model, vocabulary, "ab", 10, temperature=1e-8, seed=0) == greedy
    assert sample_text(model, vocabulary, "ab", 10, temperature=1e-8, seed=9) == greedy


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan")])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        sample_text(char_model(), _vocabulary(), "ab", 5, temperature=temperature)


RUN_CONFIG = """
seed: 0
device: cpu
data: {{name: shakespeare, path: {path}, seq_len: 10, val_split: 0.1, test_split: 0.1}}
model:
  layers:
    - {{type: Embedding, num_embeddings: 20, embedding_dim: 4}}
    - {{type: LSTM, input_size: 4, hidden_size: 8, return_mode: sequence}}
    - {{type: Linear, in_features: 8, out_features: 20}}
task: {{type: language_model, bptt: 5, sample_prompt: "to ", sample_length: 30}}
optimizer: {{name: adam, lr: 0.01}}
trainer: {{epochs: 2, batch_size: 4, grad_clip: 1.0}}
"""


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    """A language-model run on a tiny play (the shakespeare package's layout: a folder of *_gut.txt texts)."""
    from gpunet.config import loads_config
    from gpunet.runner.run import run

    folder = tmp_path_factory.mktemp("texts")
    (folder / "tiny_gut.txt").write_text("to be or not to be, that is the question.\n" * 30)
    run_dir = tmp_path_factory.mktemp("lm") / "run"
    config = loads_config(RUN_CONFIG.format(path=folder), (), "lm.yaml")
    summary = run(config, str(run_dir), config_name="lm", progress=False)
    return run_dir, summary


def test_a_run_reports_bpc_and_writes_samples(char_run):
    run_dir, summary = char_run
    written = json.loads((run_dir / "summary.json").read_text())
    assert written["test_bpc"] == pytest.approx(written["test_nll"] / math.log(2))
    assert written["test_perplexity"] == pytest.approx(math.exp(written["test_nll"]))
    samples = (run_dir / "samples.txt").read_text()
    assert samples.count("--- temperature") == 2 and "to " in samples


def test_generate_command_is_reproducible_and_refuses_zero_temperature(char_run, capsys):
    from gpunet.cli import main

    run_dir, _ = char_run
    texts = []
    for seed in (5, 5):
        assert main(["generate", str(run_dir), "--prompt", "to b", "--length", "25", "--seed", str(seed)]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1] and texts[0].startswith("to b") and len(texts[0]) == len("to b") + 25 + 1
    assert main(["generate", str(run_dir), "--prompt", "to b", "--temperature", "0"]) != 0
    assert "--temperature must be > 0" in capsys.readouterr().err


def test_two_ranks_resumed_after_a_signal_equal_their_uninterrupted_run(tmp_path, capsys):  # ~17 s (3 launches)
    """Each rank carries the LSTM states of its own streams: a 2-rank run stopped by SIGTERM on rank 1 mid-epoch
    (after 3 batches) and resumed writes the same run directory as the uninterrupted 2-rank run; resumed by one
    process (the streams' states joined), it equals that run up to summation order."""
    import shutil

    from gpunet.cli import main
    from test_distributed import assert_close_runs, mpiexec

    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "tiny_gut.txt").write_text("to be or not to be, that is the question.\n" * 30)
    config = tmp_path / "lm.yaml"
    config.write_text(RUN_CONFIG.format(path=folder))
    straight, out = tmp_path / "straight", tmp_path / "run"
    result = mpiexec(tmp_path, 2, "train", config, "--no-progress", "--out", straight)
    assert result.returncode == 0, result.stderr
    stopped = mpiexec(tmp_path, 2, "train", config, "--no-progress", "--out", out, GPUNET_TEST_FAULT="term")
    assert stopped.returncode == 143, stopped.stderr
    checkpoint = load_checkpoint(out / "checkpoints" / "last.npz")
    assert checkpoint.extra["partial_epoch"]["collector"]["batches"] == 3  # signalled in step 3, stopped after it
    ranks = checkpoint.extra["task"]["ranks"]
    assert [r["state_1_0"].shape for r in ranks] == [(1, 2, 8), (1, 2, 8)]  # batch 4: 2 streams per rank
    assert not np.array_equal(ranks[0]["state_1_0"], ranks[1]["state_1_0"])
    shutil.copytree(out, tmp_path / "one")
    result = mpiexec(tmp_path, 2, "train", config, "--no-progress", "--out", out, "--resume")
    assert result.returncode == 0, result.stderr
    assert_same_run(out, straight)
    assert main(["train", str(config), "--no-progress", "--out", str(tmp_path / "one"), "--resume"]) == 0  # 2 -> 1
    capsys.readouterr()
    assert_close_runs(tmp_path / "one", straight)
