"""Attention layers: PyTorch's MultiheadAttention, and the additive (Bahdanau) attention of seed 002.

Both run the masked softmax of ``gpunet.ops.attention``: a query whose keys are all masked gets weights 0 (and
an output of 0 before the output projection), as PyTorch's ``scaled_dot_product_attention`` and its
MultiheadAttention with ``need_weights=False`` do; PyTorch's MultiheadAttention with ``need_weights=True`` gives
NaN there instead.
"""
from __future__ import annotations

import numbers

from ..autograd.tensor import Tensor
from ..ops.arithmetic import add
from ..ops.attention import attention, masked_softmax, split_mask
from ..ops.elementwise import tanh
from ..ops.linear import linear
from ..ops.reduction import mean
from ..ops.shape import broadcast_to, cat, chunk, getitem, reshape, squeeze, transpose, unsqueeze
from . import functional as F
from . import init
from .linear import Linear, _empty_parameter
from .module import Module


def _check_positive(layer, name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")


def _concat_columns(keep, bias, extra, backend):
    """``keep`` and ``bias`` with ``extra`` key columns appended that every query attends to (bias_k, zero_attn)."""
    if keep is not None:
        xp = backend.xp
        keep = xp.concatenate([keep, xp.ones(keep.shape[:-1] + (extra,), dtype=bool)], axis=-1)
    if bias is not None:
        bias = cat([bias, Tensor(backend.xp.zeros(bias.shape[:-1] + (extra,), dtype=bias.dtype), backend)], -1)
    return keep, bias


class MultiheadAttention(Module):
    """Multi-head attention with PyTorch's arguments, parameters and layouts (``torch.nn.MultiheadAttention``).

    ``in_proj_weight`` (3E, E) holds the query, key and value projections stacked when ``kdim == vdim ==
    embed_dim``; otherwise ``q_proj_weight`` (E, E), ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim).
    ``in_proj_bias`` (3E), ``out_proj`` (Linear E -> E), and with ``add_bias_kv`` the (1, 1, E) ``bias_k`` and
    ``bias_v`` appended to the keys and values; ``add_zero_attn`` appends a zero key and value. Inputs are
    (L, N, E) (or (N, L, E) with ``batch_first``, or unbatched (L, E)).

    Masks as in PyTorch: ``key_padding_mask`` (N, S) and a bool ``attn_mask`` ((L, S) or (N * num_heads, L, S))
    are True where attention is *not* allowed; float masks are added to the scores. Returns ``(output, weights)``:
    the weights (after dropout) averaged over the heads, (N, L, S), or per head, (N, num_heads, L, S), with
    ``average_attn_weights=False``; None with ``need_weights=False``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        _check_positive(name, "embed_dim", embed_dim)
        _check_positive(name, "num_heads", num_heads)
        for label, value in (("kdim", kdim), ("vdim", vdim)):
            if value is not None:
                _check_positive(name, label, value)
        F._check_p(dropout, name, "dropout")
        if embed_dim % num_heads:
            raise ValueError(f"{name}: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads}): each "
                             f"head works on embed_dim // num_heads features")
        self.embed_dim, self.num_heads, self.batch_first = embed_dim, num_heads, batch_first
        self.dropout = float(dropout)
        self.kdim = embed_dim if kdim is None else kdim
        self.vdim = embed_dim if vdim is None else vdim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.head_dim = embed_dim // num_heads
        if self._qkv_same_embed_dim:
            self.in_proj_weight = _empty_parameter((3 * embed_dim, embed_dim), device, dtype)
            for label in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(label, None)
        else:
            self.q_proj_weight = _empty_parameter((embed_dim, embed_dim), device, dtype)
            self.k_proj_weight = _empty_parameter((embed_dim, self.kdim), device, dtype)
            self.v_proj_weight = _empty_parameter((embed_dim, self.vdim), device, dtype)
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = _empty_parameter((3 * embed_dim,), device, dtype)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = _empty_parameter((1, 1, embed_dim), device, dtype)
            self.bias_v = _empty_parameter((1, 1, embed_dim), device, dtype)
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's: Xavier-uniform projections, zero biases, Xavier-normal bias_k and bias_v."""
        for weight in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if weight is not None:
                init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        for extra in (self.bias_k, self.bias_v):
            if extra is not None:
                init.xavier_normal_(extra)

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                average_attn_weights: bool = True, is_causal: bool = False):
        batched = self._check_inputs(query, key, value, key_padding_mask, attn_mask)
        if is_causal and attn_mask is None:
            raise ValueError(f"{type(self).__name__}: is_causal=True is a hint that attn_mask is the causal mask; "
                             f"pass that attn_mask too (gpunet.nn.transformer.generate_square_subsequent_mask(L))")
        self_attention = query is key and key is value
        if not batched:
            query, key, value = (unsqueeze(t, 0) for t in (query, key, value))
        elif not self.batch_first:
            query, key, value = (transpose(t, 0, 1) for t in (query, key, value))
        batch, target_len, _ = query.shape
        source_len = key.shape[1]
        q, k, v = self._in_projection(query, key, value, self_attention)
        extra = 0
        if self.bias_k is not None:
            k = cat([k, broadcast_to(self.bias_k, (batch, 1, self.embed_dim))], 1)
            v = cat([v, broadcast_to(self.bias_v, (batch, 1, self.embed_dim))], 1)
            extra += 1
        if self.add_zero_attn:
            zeros = Tensor(k.backend.xp.zeros((batch, 1, self.embed_dim), dtype=k.dtype), k.backend)
            k, v = cat([k, zeros], 1), cat([v, zeros], 1)
            extra += 1
        q, k, v = (self._split_heads(t) for t in (q, k, v))
        keep, bias = self._masks(attn_mask, key_padding_mask, batch, target_len, source_len, q)
        if extra and (keep is not None or bias is not None):
            keep, bias = _concat_columns(keep, bias, extra, q.backend)
        out, weights = attention(q, k, v, keep, bias, None, self.dropout if self.training else 0.0)
        out = self.out_proj(reshape(transpose(out, 1, 2), (batch, target_len, self.embed_dim)))
        if not batched:
            out = squeeze(out, 0)
        elif not self.batch_first:
            out = transpose(out, 0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = mean(weights, 1)
        return out, (squeeze(weights, 0) if not batched else weights)

    def _in_projection(self, query, key, value, self_attention):
        e = self.embed_dim
        b = self.in_proj_bias
        biases = (None,) * 3 if b is None else tuple(getitem(b, slice(i * e, (i + 1) * e)) for i in range(3))
        if self._qkv_same_embed_dim:
            if self_attention:  # one product for the three projections
                return chunk(linear(query, self.in_proj_weight, b), 3, -1)
            weights = tuple(getitem(self.in_proj_weight, slice(i * e, (i + 1) * e)) for i in range(3))
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        return tuple(linear(x, w, bias) for x, w, bias in zip((query, key, value), weights, biases))

    def _split_heads(self, x):
        """(N, length, E) -> (N, num_heads, length, head_dim)."""
        return transpose(reshape(x, x.shape[:2] + (self.num_heads, self.head_dim)), 1, 2)

    def _masks(self, attn_mask, key_padding_mask, batch, target_len, source_len, like):
        """The user's masks as ``(keep, bias)`` broadcasting to the (N, num_heads, L, S) scores."""
        name = type(self).__name__
        keep, bias = split_mask(attn_mask, like, f"{name}: attn_mask", invert=True)
        if attn_mask is not None and attn_mask.ndim == 3:
            shape = (batch, self.num_heads, target_len, source_len)
            keep = None if keep is None else keep.reshape(shape)
            bias = None if bias is None else reshape(bias, shape)
        pad_keep, pad_bias = split_mask(key_padding_mask, like, f"{name}: key_padding_mask", invert=True)
        shape = (batch, 1, 1, source_len)
        if pad_keep is not None:
            keep = pad_keep.reshape(shape) if keep is None else keep & pad_keep.reshape(shape)
        if pad_bias is not None:
            bias = reshape(pad_bias, shape) if bias is None else add(bias, reshape(pad_bias, shape))
        return keep, bias

    def _check_inputs(self, query, key, value, key_padding_mask, attn_mask):
        """Raise a clear error for inputs or masks of the wrong shape; return whether the input is batched."""
        name = type(self).__name__
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        for label, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: {label} must be a Tensor, got {type(t).__name__}")
        if query.ndim not in (2, 3):
            raise ValueError(f"{name}: query must be 3-D {layout} or unbatched 2-D (L, E), got shape "
                             f"{tuple(query.shape)}")
        if key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"{name}: key {tuple(key.shape)} and value {tuple(value.shape)} must have as many "
                             f"dimensions as query {tuple(query.shape)}")
        for label, t, size, arg in (("query", query, self.embed_dim, "embed_dim"), ("key", key, self.kdim, "kdim"),
                                    ("value", value, self.vdim, "vdim")):
            if t.shape[-1] != size:
                raise ValueError(f"{name}: {label} of shape {tuple(t.shape)} has {t.shape[-1]} features (last "
                                 f"dimension), but {arg} is {size}")
        batched = query.ndim == 3
        batch_axis, seq_axis = (0, 1) if self.batch_first else (1, 0)
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"{name}: key {tuple(key.shape)} and value {tuple(value.shape)} must have the same "
                             f"batch size and sequence length")
        if batched and key.shape[batch_axis] != query.shape[batch_axis]:
            raise ValueError(f"{name}: query {tuple(query.shape)} and key {tuple(key.shape)} have different batch "
                             f"sizes (layout {layout})")
        batch = query.shape[batch_axis] if batched else 1
        target_len = query.shape[seq_axis] if batched else query.shape[0]
        source_len = key.shape[seq_axis] if batched else key.shape[0]
        if key_padding_mask is not None:
            expected = (batch, source_len) if batched else (source_len,)
            if tuple(key_padding_mask.shape) != expected:
                raise ValueError(f"{name}: key_padding_mask of shape {tuple(key_padding_mask.shape)} does not fit: it "
                                 f"must be (batch, source length) = {expected}, True where a key is padding")
        if attn_mask is not None:
            shapes = ((target_len, source_len), (batch * self.num_heads, target_len, source_len))
            if tuple(attn_mask.shape) not in shapes:
                raise ValueError(f"{name}: attn_mask of shape {tuple(attn_mask.shape)} does not fit: it must be 2-D "
                                 f"(L, S) = {shapes[0]} or 3-D (batch * num_heads, L, S) = {shapes[1]}")
        return batched


class AdditiveAttention(Module):
    """Additive (Bahdanau) attention of seed 002: ``score(q, k_s) = Va(tanh(Wa q + Ua k_s))``, weights the softmax
    of the scores over the keys, context ``sum_s weights_s * value_s``.

    Wa (query_size -> hidden_size), Ua (key_size -> hidden_size) and Va (hidden_size -> 1) are Linear layers named
    as in PyTorch's seq2seq tutorial's ``BahdanauAttention``, whose state_dict loads unchanged (the seed's W_a, U_a
    and v_a). Batch first: query (N, L, query_size) or one step (N, query_size), keys (N, S, key_size), values
    (N, S, value_size) (the keys when None); ``key_padding_mask`` (N, S) is True at padding, which gets weight 0.
    Returns ``(context, weights)``: (N, L, value_size) and (N, L, S), without L for a one-step query.
    """

    def __init__(self, query_size: int, key_size: int | None = None, hidden_size: int | None = None,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        key_size = query_size if key_size is None else key_size
        hidden_size = query_size if hidden_size is None else hidden_size
        for label, value in (("query_size", query_size), ("key_size", key_size), ("hidden_size", hidden_size)):
            _check_positive(type(self).__name__, label, value)
        self.query_size, self.key_size, self.hidden_size = query_size, key_size, hidden_size
        self.Wa = Linear(query_size, hidden_size, bias, device, dtype)
        self.Ua = Linear(key_size, hidden_size, bias, device, dtype)
        self.Va = Linear(hidden_size, 1, bias, device, dtype)

    def forward(self, query, keys, values=None, key_padding_mask=None):
        values = keys if values is None else values
        one_step = self._check_inputs(query, keys, values, key_padding_mask)
        if one_step:
            query = unsqueeze(query, 1)
        hidden = tanh(add(unsqueeze(self.Wa(query), 2), unsqueeze(self.Ua(keys), 1)))  # (N, L, S, hidden)
        scores = squeeze(self.Va(hidden), -1)
        keep, bias = split_mask(key_padding_mask, scores, f"{type(self).__name__}: key_padding_mask", invert=True)
        if keep is not None:
            keep = keep[:, None, :]
        if bias is not None:
            scores = add(scores, unsqueeze(bias, 1))
        weights = masked_softmax(scores, keep)
        context = weights @ values
        return (squeeze(context, 1), squeeze(weights, 1)) if one_step else (context, weights)

    def _check_inputs(self, query, keys, values, key_padding_mask):
        """Raise a clear error for inputs of the wrong shape; return whether the query is one step (2-D)."""
        name = type(self).__name__
        for label, t in (("query", query), ("keys", keys), ("values", values)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: {label} must be a Tensor, got {type(t).__name__}")
        if query.ndim not in (2, 3) or query.shape[-1] != self.query_size:
            raise ValueError(f"{name}: query must be (N, L, query_size) or (N, query_size) with query_size = "
                             f"{self.query_size}, got shape {tuple(query.shape)}")
        if keys.ndim != 3 or keys.shape[-1] != self.key_size or keys.shape[0] != query.shape[0]:
            raise ValueError(f"{name}: keys must be (N, S, key_size) = ({query.shape[0]}, S, {self.key_size}) for "
                             f"query {tuple(query.shape)}, got shape {tuple(keys.shape)}")
        if values.ndim != 3 or values.shape[:2] != keys.shape[:2]:
            raise ValueError(f"{name}: values must be (N, S, value_size) with the keys' (N, S) = "
                             f"{tuple(keys.shape[:2])}, got shape {tuple(values.shape)}")
        if key_padding_mask is not None and tuple(key_padding_mask.shape) != tuple(keys.shape[:2]):
            raise ValueError(f"{name}: key_padding_mask of shape {tuple(key_padding_mask.shape)} must be (N, S) = "
                             f"{tuple(keys.shape[:2])}, True where a key is padding")
        return query.ndim == 2

    def extra_repr(self) -> str:
        return f"query_size={self.query_size}, key_size={self.key_size}, hidden_size={self.hidden_size}"
