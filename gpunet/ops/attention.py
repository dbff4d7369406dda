"""Attention: the masked softmax and scaled dot-product attention, with PyTorch's mask conventions.

A mask reaches the core as two parts: ``keep``, a boolean backend array (True = the key takes part), and ``bias``, a
float tensor added to the scores (PyTorch's float masks, -inf included). Either may be None; both broadcast to the
scores' shape (..., L, S). A row in which no key is left (all masked, or every score -inf) gets weights 0 and so an
output of 0 and no gradient: that is what PyTorch's ``scaled_dot_product_attention`` does (its math path uses a
"safe" softmax), where a plain softmax would give NaN.
"""
from __future__ import annotations

import math
import numbers

import numpy

from .. import random as _random
from ..autograd.function import DeviceMismatchError
from ..autograd.tensor import Tensor
from .arithmetic import matmul, mul
from .conversion import cast
from .dropout import dropout
from .reduction import Softmax
from .shape import getitem, sum_to, transpose


class MaskedSoftmax(Softmax):
    """Softmax over the last axis of the scores plus an optional additive ``bias`` (the second input), at the
    positions where ``keep`` holds and, if ``causal``, the key is not after the query (0 elsewhere); a row with no
    finite score left is all 0. One fused kernel (``backend.masked_softmax``: on CUDA one pass over the scores,
    masks read with broadcast strides). The backward is the softmax's (masked weights are 0, so they get no
    gradient); the bias gets the scores' gradient, summed over the dimensions it broadcasts along."""

    def __init__(self, keep, causal=False):
        super().__init__(-1)
        self.keep, self.causal = keep, causal

    def forward(self, backend, x, bias=None):
        return backend.masked_softmax(x, self.keep, bias, self.causal)

    def backward(self, gy):
        gx = super().backward(gy)
        if len(self.inputs) == 1:
            return gx
        return gx, (sum_to(gx, self.inputs[1].shape) if self.needs_input_grad[1] else None)


def masked_softmax(scores, keep=None, bias=None, causal=False):
    """Softmax of ``scores + bias`` over the last dimension where the boolean backend array ``keep`` (broadcasting
    to the scores) is True and, if ``causal``, the key (last dimension) is not after the query (dimension -2);
    masked positions and rows without any kept finite score give 0. ``bias`` is a Tensor broadcasting to the
    scores (differentiable) or None."""
    node = MaskedSoftmax(keep, causal)
    return node.apply(scores) if bias is None else node.apply(scores, bias)


def attention(query, key, value, keep=None, bias=None, scale=None, dropout_p=0.0, causal=False):
    """``(softmax(q k^T * scale + bias, masked by keep and causal) @ v, weights)``: the attention of (..., L, E)
    queries on (..., S, E) keys with (..., S, Ev) values, and the (..., L, S) weights after dropout with
    probability ``dropout_p`` (applied whenever it is > 0, as in PyTorch; callers pass 0 in eval mode)."""
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    scores = matmul(mul(query, scale), transpose(key, -2, -1))
    weights = masked_softmax(scores, keep, bias, causal)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, _random.next_seed())
    return matmul(weights, value), weights


def split_mask(mask, like, name, invert=False):
    """A user's mask as ``(keep, bias)`` for ``attention``: a boolean mask gives ``keep`` (negated when ``invert``,
    for MultiheadAttention's True = masked out), a float mask gives ``bias`` in ``like``'s dtype (differentiable).
    ``mask`` is a Tensor or array-like; None gives (None, None)."""
    if mask is None:
        return None, None
    backend = like.backend
    if isinstance(mask, Tensor) and mask.backend is not backend:
        raise DeviceMismatchError(f"{name} is on {mask.device} but the inputs are on {like.device}; move it with "
                                  f".to(device)")
    if not isinstance(mask, Tensor):
        mask = Tensor(backend.asarray(numpy.asarray(mask)), backend)
    if mask.dtype == numpy.bool_:
        return (~mask.data if invert else mask.data), None
    if mask.dtype.kind != "f":
        raise TypeError(f"{name} must be a bool or floating-point mask, got dtype {mask.dtype}; a bool mask marks "
                        f"positions, a float mask is added to the attention scores")
    return None, (mask if mask.dtype == like.dtype else cast(mask, like.dtype))


def _check_dims(query, key, value):
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"scaled_dot_product_attention: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {name} must have at least 2 dimensions (..., length, "
                             f"features), got shape {tuple(t.shape)}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: query {tuple(query.shape)} and key {tuple(key.shape)} must "
                         f"have the same last (feature) dimension")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: key {tuple(key.shape)} and value {tuple(value.shape)} must "
                         f"have the same sequence length (dimension -2)")


def _repeat_heads(x, query, name):
    """``x`` with each of its heads (dimension -3) repeated for a group of query heads (grouped-query attention)."""
    query_heads = query.shape[-3] if query.ndim >= 3 else 0
    heads = x.shape[-3] if x.ndim >= 3 else 0
    if heads == 0 or query_heads % heads:
        raise ValueError(f"scaled_dot_product_attention: with enable_gqa the {name} heads ({heads}, dimension -3) "
                         f"must divide the query heads ({query_heads}); shapes {tuple(x.shape)} and query "
                         f"{tuple(query.shape)}")
    index = x.backend.asarray(numpy.repeat(numpy.arange(heads), query_heads // heads))
    return getitem(x, (Ellipsis, index, slice(None), slice(None)))


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """``softmax(query @ key^T * scale + mask) @ value`` with PyTorch's arguments and mask semantics.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); batch dimensions broadcast.
    ``attn_mask`` broadcasts to (..., L, S): a bool mask is True where a query may attend to a key (the inverse of
    MultiheadAttention's masks), a float mask is added to the scores. ``is_causal`` masks keys after the query
    (top-left aligned; not together with ``attn_mask``). ``scale`` defaults to 1/sqrt(E). Dropout with
    ``dropout_p`` is applied to the weights whenever it is > 0 (pass 0 in eval). A query that may attend to no key
    gets an output of 0, as in PyTorch.
    """
    _check_dims(query, key, value)
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, numbers.Real) or not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be a number in [0, 1), got {dropout_p!r}")
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: give either attn_mask or is_causal=True, not both (fold the "
                         "causal mask into attn_mask instead)")
    if enable_gqa:
        key, value = _repeat_heads(key, query, "key"), _repeat_heads(value, query, "value")
    target_len, source_len = query.shape[-2], key.shape[-2]
    keep, bias = split_mask(attn_mask, query, "scaled_dot_product_attention: attn_mask")
    mask = keep if keep is not None else bias
    if mask is not None:
        mask_shape = tuple(mask.shape)
        scores_shape = numpy.broadcast_shapes(query.shape[:-2], key.shape[:-2]) + (target_len, source_len)
        try:
            if numpy.broadcast_shapes(mask_shape, scores_shape) != scores_shape:
                raise ValueError
        except ValueError:
            raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {mask_shape} does not broadcast to "
                             f"the attention weights' shape (..., L, S) = {scores_shape}") from None
    return attention(query, key, value, keep, bias, scale, float(dropout_p), is_causal)[0]
