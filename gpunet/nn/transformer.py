"""The Transformer encoder with PyTorch's arguments and state_dict keys: TransformerEncoderLayer, TransformerEncoder.

A layer is the two residual blocks of seed 002's transformer block: multi-head self-attention, then a feed-forward
MLP (Linear d_model -> dim_feedforward, activation, Linear back), each with dropout and a LayerNorm, applied after
the residual sum (post-norm, PyTorch's default) or, with ``norm_first``, to the block's input (pre-norm).
PyTorch's nested-tensor fast path (eval mode without gradients) is not reproduced: gpunet always computes the padded
positions too, where PyTorch's fast path returns 0 for them; the unpadded positions agree.
"""
from __future__ import annotations

import copy

import numpy

from .. import backend as _backend
from ..autograd.tensor import Tensor
from ..kinds import AnyCallable, AnyOf, ArgumentError, Arguments, Bool, Choice, Float, Int, checked
from ..ops.arithmetic import add
from . import functional as F
from .attention import MultiheadAttention, _check_positive
from .containers import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def generate_square_subsequent_mask(sz: int, device=None, dtype=None):
    """The (sz, sz) float causal mask: 0 on and below the diagonal, -inf above (``nn.Transformer``'s)."""
    _check_positive("generate_square_subsequent_mask", "sz", sz)
    backend = _backend.current() if device is None else _backend.get_backend(device)
    mask = numpy.triu(numpy.full((sz, sz), -numpy.inf), 1)
    return Tensor(backend.asarray(mask.astype(numpy.float32 if dtype is None else dtype)), backend)


def _heads_divide_d_model(args):
    if args["d_model"] % args["nhead"]:
        raise ArgumentError("nhead", f"must divide d_model ({args['d_model']}): each attention head works on "
                            "d_model // nhead features", args["nhead"], f"a divisor of {args['d_model']}")


class TransformerEncoderLayer(Module):
    """Self-attention and feed-forward blocks with residual connections (``torch.nn.TransformerEncoderLayer``).

    ``activation`` is "relu", "gelu" or a callable (a function or a Module). Submodules, and so state_dict keys,
    as PyTorch's: ``self_attn`` (MultiheadAttention), ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``,
    ``dropout1``, ``dropout2``. ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)`` takes
    MultiheadAttention's masks; ``is_causal`` only states that ``src_mask`` is causal.
    """

    arguments = Arguments(d_model=Int(ge=1), nhead=Int(ge=1), dim_feedforward=Int(ge=1), dropout=F.DROPOUT_P,
                          activation=AnyOf((Choice(tuple(_ACTIVATIONS), "activation"), AnyCallable())),
                          layer_norm_eps=Float(gt=0), batch_first=Bool(), norm_first=Bool(), bias=Bool(),
                          rules=(_heads_divide_d_model,))

    @checked
    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = False, norm_first: bool = False,
                 bias: bool = True, device=None, dtype=None):

        super().__init__()
        activation = _ACTIVATIONS.get(activation, activation) if isinstance(activation, str) else activation
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            device=device, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = activation

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src
        if self.norm_first:
            x = add(x, self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal))
            return add(x, self._ff_block(self.norm2(x)))
        x = self.norm1(add(x, self._sa_block(x, src_mask, src_key_padding_mask, is_causal)))
        return self.norm2(add(x, self._ff_block(x)))

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (``layers.0``, ``layers.1``, ...) and an optional
    final ``norm`` (``torch.nn.TransformerEncoder``). ``enable_nested_tensor`` and ``mask_check`` are accepted for
    PyTorch compatibility and change nothing (no nested tensors in gpunet)."""

    def __init__(self, encoder_layer, num_layers: int, norm=None, enable_nested_tensor: bool = True,
                 mask_check: bool = True):
        super().__init__()
        _check_positive(type(self).__name__, "num_layers", num_layers)
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module (a TransformerEncoderLayer), got "
                            f"{type(encoder_layer).__name__}")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor, self.mask_check = enable_nested_tensor, mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        output = src
        for layer in self.layers:
            output = layer(output, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                           is_causal=bool(is_causal))
        return output if self.norm is None else self.norm(output)
