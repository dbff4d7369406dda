"""Embedding: a lookup table of vectors indexed by integers, with PyTorch's API and initialisation."""
from __future__ import annotations

import numpy

from .. import backend as _backend
from ..autograd.tensor import Tensor
from ..kinds import ArgumentError, Arguments, Int, Optional, checked
from ..ops.embedding import embedding
from . import init
from .module import Module
from .parameter import Parameter


def _padding_idx_within(args):
    n = args["num_embeddings"]
    if args["padding_idx"] is not None and not -n <= args["padding_idx"] < n:
        raise ArgumentError("padding_idx", f"must be within num_embeddings ({n})", args["padding_idx"],
                            f"null or an integer in [{-n}, {n - 1}]")


class Embedding(Module):
    """``weight[input]`` for integer ``input`` of any shape; weight (num_embeddings, embedding_dim) ~ N(0, 1).

    The ``padding_idx`` row starts at zero and receives no gradient. PyTorch's ``max_norm``,
    ``scale_grad_by_freq`` and ``sparse`` are not supported (an error names them when set).
    """

    input_kind = "index"  # takes integer indices, not float features (a dry run feeds it int64 zeros)

    arguments = Arguments(num_embeddings=Int(ge=1), embedding_dim=Int(ge=1), padding_idx=Optional(Int()),
                          rules=(_padding_idx_within,))

    @checked
    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False, device=None, dtype=None):
        super().__init__()
        for name, value, default in (("max_norm", max_norm, None), ("scale_grad_by_freq", scale_grad_by_freq, False),
                                     ("sparse", sparse, False)):
            if value != default:
                raise NotImplementedError(f"Embedding: {name}={value!r} is not supported by gpunet; leave it at "
                                          f"{default!r}")
        if padding_idx is not None:
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type, self.scale_grad_by_freq, self.sparse = max_norm, norm_type, False, False
        backend = _backend.current() if device is None else _backend.get_backend(device)
        dtype = numpy.dtype(numpy.float32 if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"Embedding: dtype must be a floating-point type, got {dtype}")
        if _weight is None:
            self.weight = Parameter(Tensor(backend.xp.zeros((num_embeddings, embedding_dim), dtype=dtype), backend))
            self.reset_parameters()
        else:
            host = _weight.numpy() if isinstance(_weight, Tensor) else numpy.asarray(_weight)
            if host.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {host.shape}, expected "
                                 f"({num_embeddings}, {embedding_dim})")
            self.weight = Parameter(Tensor(backend.asarray(host.astype(dtype)), backend))
        self.weight.requires_grad = not _freeze

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input):
        return embedding(input, self.weight, self.padding_idx)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None, max_norm=None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False):
        """An Embedding whose weight is a copy of the 2-D ``embeddings`` (frozen unless ``freeze=False``)."""
        shape = tuple(embeddings.shape)
        if len(shape) != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {shape}")
        dtype = embeddings.dtype if isinstance(embeddings, Tensor) else numpy.asarray(embeddings).dtype
        return cls(shape[0], shape[1], padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=embeddings, _freeze=freeze, dtype=dtype if numpy.dtype(dtype).kind == "f" else None)

    def extra_repr(self) -> str:
        text = f"{self.num_embeddings}, {self.embedding_dim}"
        return text + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")
