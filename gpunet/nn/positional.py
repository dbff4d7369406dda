"""Positional encodings added to a sequence of embeddings: the fixed sinusoids of PyTorch's transformer tutorial
and a learned table (an Embedding indexed by position)."""
from __future__ import annotations

import math

import numpy

from .. import backend as _backend
from ..autograd.tensor import Tensor
from ..kinds import Arguments, Bool, Int, checked
from ..ops.arithmetic import add
from ..ops.shape import getitem, reshape
from .dropout import Dropout
from .functional import DROPOUT_P
from .embedding import Embedding
from .module import Module


def sinusoids(max_len: int, d_model: int):
    """(max_len, d_model) float64: PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d))."""
    position = numpy.arange(max_len, dtype=numpy.float64)[:, None]
    div_term = numpy.exp(numpy.arange(0, d_model, 2, dtype=numpy.float64) * (-math.log(10000.0) / d_model))
    table = numpy.zeros((max_len, d_model))
    table[:, 0::2] = numpy.sin(position * div_term)
    table[:, 1::2] = numpy.cos(position * div_term)[:, : d_model // 2]  # an odd d_model has one cosine fewer
    return table


class _PositionalBase(Module):
    """Input checks, layout and dropout shared by the positional encodings: ``forward(x)`` adds the first
    ``seq_len`` rows of ``self._table(seq_len)`` (a (seq_len, d_model) tensor) to x and applies dropout."""

    arguments = Arguments(d_model=Int(ge=1), dropout=DROPOUT_P, max_len=Int(ge=1), batch_first=Bool())

    @checked
    def __init__(self, d_model, dropout, max_len, batch_first):
        super().__init__()
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.dropout = Dropout(p=dropout)

    def forward(self, x):
        name = type(self).__name__
        layout = "(N, S, d_model)" if self.batch_first else "(S, N, d_model)"
        if not isinstance(x, Tensor) or x.ndim not in (2, 3) or x.shape[-1] != self.d_model:
            raise ValueError(f"{name}: expected an input {layout} or unbatched (S, d_model) with d_model = "
                             f"{self.d_model}, got {_shape_of(x)}")
        seq_len = x.shape[1] if x.ndim == 3 and self.batch_first else x.shape[0]
        if seq_len > self.max_len:
            raise ValueError(f"{name}: the sequence has {seq_len} positions but max_len is {self.max_len}; build the "
                             f"layer with max_len >= {seq_len}")
        table = self._table(seq_len)
        if x.ndim == 3 and not self.batch_first:
            table = reshape(table, (seq_len, 1, self.d_model))
        return self.dropout(add(x, table))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"


def _shape_of(x):
    return f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__


class PositionalEncoding(_PositionalBase):
    """The fixed sinusoidal encoding of "Attention Is All You Need" as in PyTorch's transformer tutorial: x + PE[:S],
    then dropout. The buffer ``pe`` is the tutorial's, (max_len, 1, d_model). Input (S, N, d_model), (N, S, d_model)
    with ``batch_first``, or (S, d_model)."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 5000, batch_first: bool = False,
                 device=None, dtype=None):
        super().__init__(d_model, dropout, max_len, batch_first)
        backend = _backend.current() if device is None else _backend.get_backend(device)
        table = sinusoids(max_len, d_model)[:, None, :].astype(numpy.float32 if dtype is None else dtype)
        self.register_buffer("pe", Tensor(backend.asarray(table), backend))

    def _table(self, seq_len):
        return reshape(getitem(self.pe, slice(0, seq_len)), (seq_len, self.d_model))


class LearnedPositionalEncoding(_PositionalBase):
    """A learned encoding: x + embedding(positions 0..S-1), then dropout; ``embedding`` is an Embedding(max_len,
    d_model) (initialised N(0, 1), as every Embedding). Input layouts as PositionalEncoding's."""

    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 512, batch_first: bool = False,
                 device=None, dtype=None):
        super().__init__(d_model, dropout, max_len, batch_first)
        self.embedding = Embedding(max_len, d_model, device=device, dtype=dtype)

    def _table(self, seq_len):
        positions = self.embedding.weight.backend.xp.arange(seq_len)
        return self.embedding(Tensor(positions, self.embedding.weight.backend))
