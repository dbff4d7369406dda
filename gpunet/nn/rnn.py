"""Recurrent layers with PyTorch's API, parameter names and layouts: RNN, LSTM, GRU and their single-step cells.

Each layer and direction is one graph node (``gpunet.ops.rnn.recurrent_layer``): one matrix product for the
input projection of every time step at once, then per step one product with the recurrent weights and one fused
cell kernel; its backward runs the fused cell backward per step and the weight gradients as one product. Weights keep
PyTorch's layout (gate blocks [i; f; g; o] or [r; z; n] along the rows), so ``state_dict`` equals torch's.
"""
from __future__ import annotations

import inspect
import math
import numbers
import warnings

import numpy

from ..autograd.tensor import Tensor
from ..kinds import Arguments, Bool, Choice, Float, Int, Optional, checked
from ..ops.arithmetic import add
from ..ops.elementwise import relu, tanh
from ..ops.linear import linear
from ..ops.rnn import MODES, gru_cell, lstm_cell, recurrent_layer, unbind
from ..ops.shape import cat, getitem, stack, transpose
from . import init
from .functional import dropout as _dropout
from .linear import _empty_parameter
from .module import Module

_NONLINEARITY = {"tanh": "RNN_TANH", "relu": "RNN_RELU"}
RETURN_MODES = ("sequence", "last", "state")  # besides None: PyTorch's (output, h_n)


def _check_size(layer, name, value, minimum=1):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{layer}: {name} must be an integer >= {minimum}, got {value!r}")


def _check_nonlinearity(layer, nonlinearity):
    if nonlinearity not in _NONLINEARITY:
        raise ValueError(f"{layer}: unknown nonlinearity {nonlinearity!r}; use 'tanh' or 'relu'")


RETURN_MODE = Optional(Choice(RETURN_MODES, "return mode"))  # None: PyTorch's (output, h_n)


_REPR_OPTIONS = ("num_layers", "bias", "batch_first", "dropout", "bidirectional", "return_mode", "mask_value")


class RNNBase(Module):
    """The multi-layer, optionally bidirectional recurrent layer behind RNN, LSTM and GRU (as torch.nn.RNNBase).

    Beyond PyTorch, for sequential models (Keras' ``return_sequences``/``return_state`` and masking):

    - ``return_mode``: None (default) returns PyTorch's ``(output, h_n)`` (``(output, (h_n, c_n))`` for the LSTM);
      ``"sequence"`` only ``output``; ``"last"`` the last layer's final hidden state of each direction concatenated,
      (N, num_directions * hidden_size): the output at the last real step (bidirectional: joined with the reverse
      direction's output at the first step); ``"state"`` only ``h_n`` (``(h_n, c_n)`` for the LSTM).
    - ``forward(input, hx=None, lengths=None)``: ``lengths`` (N integers) marks each sequence's steps past its
      length as padding (post-padding, as ``pack_padded_sequence``).
    - ``mask_value``: a time step whose features all equal it is padding (Keras' ``Masking``); with
      ``Embedding(padding_idx=...)`` before the layer, ``mask_value=0.0`` skips the padding tokens wherever they are
      (pre- or post-padding), as long as the padding row of the embedding stays zero.

    A padding step is skipped: its output is 0 and the state passes it unchanged, so every sequence of a padded
    batch gives what it gives alone.
    """

    arguments = Arguments(input_size=Int(ge=0), hidden_size=Int(ge=1), num_layers=Int(ge=1), bias=Bool(),
                          batch_first=Bool(), dropout=Float(ge=0, le=1), bidirectional=Bool(), return_mode=RETURN_MODE,
                          mask_value=Optional(Float()))

    @checked
    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None, *, return_mode=None, mask_value=None):
        super().__init__()
        name = type(self).__name__
        if proj_size != 0:
            raise ValueError(f"{name}: proj_size={proj_size!r} is not supported by gpunet (only 0, no projection)")
        if dropout > 0 and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} acts between recurrent layers, so with num_layers=1 it does "
                          f"nothing", stacklevel=3)
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, float(dropout)
        self.bidirectional, self.proj_size = bidirectional, proj_size
        self.return_mode, self.mask_value = return_mode, mask_value
        rows = MODES[mode] * hidden_size
        directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * directions
            for suffix in ("", "_reverse")[:directions]:
                setattr(self, f"weight_ih_l{layer}{suffix}", _empty_parameter((rows, layer_input), device, dtype))
                setattr(self, f"weight_hh_l{layer}{suffix}", _empty_parameter((rows, hidden_size), device, dtype))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", _empty_parameter((rows,), device, dtype))
                    setattr(self, f"bias_hh_l{layer}{suffix}", _empty_parameter((rows,), device, dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound)

    def _weights(self, layer, direction):
        suffix = "_reverse" if direction else ""
        get = self._parameters.get
        return (get(f"weight_ih_l{layer}{suffix}"), get(f"weight_hh_l{layer}{suffix}"),
                get(f"bias_ih_l{layer}{suffix}"), get(f"bias_hh_l{layer}{suffix}"))

    def forward(self, input, hx=None, lengths=None):
        name = type(self).__name__
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: input must be (L, N, input_size), (N, L, input_size) with batch_first, or "
                             f"(L, input_size) unbatched; got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {input.shape[-1]} features (last dimension) but input_size is "
                             f"{self.input_size}")
        if input.dtype != self.weight_ih_l0.dtype:
            raise TypeError(f"{name}: input has dtype {input.dtype} but the layer's weights have "
                            f"{self.weight_ih_l0.dtype}; convert the input with .to(dtype=...) or the layer with "
                            f".to(dtype=...)")
        batched = input.ndim == 3
        x = input if not batched or not self.batch_first else transpose(input, 0, 1)
        if not batched:
            x = getitem(x, (slice(None), None))
        if x.shape[0] == 0:
            raise ValueError(f"{name}: the input sequence is empty (length 0)")
        states = self._initial_states(hx, x, batched)
        mask = self._mask(x, lengths, batched)
        directions = 2 if self.bidirectional else 1
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                h0, c0 = (s[index] for s in states) if self.mode == "LSTM" else (states[0][index], None)
                output, *last = recurrent_layer(self.mode, x, h0, c0, *self._weights(layer, direction),
                                                reverse=direction == 1, mask=mask)
                outputs.append(output)
                for kept, value in zip(finals, last):
                    kept.append(value)
            x = outputs[0] if directions == 1 else cat(outputs, -1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout, True)
        output = x if batched else getitem(x, (slice(None), 0))
        if batched and self.batch_first:
            output = transpose(output, 0, 1)
        if self.return_mode == "last":
            kept = finals[0][-directions:]
            last = kept[0] if directions == 1 else cat(kept, -1)
            return last if batched else getitem(last, 0)
        finals = [stack(kept) if batched else stack([getitem(h, 0) for h in kept]) for kept in finals]
        state = finals[0] if self.mode != "LSTM" else tuple(finals)
        if self.return_mode == "sequence":
            return output
        if self.return_mode == "state":
            return state
        return output, state

    def _mask(self, x, lengths, batched):
        """The (L, N) boolean mask of real steps from ``lengths`` and ``mask_value`` (None when neither is set)."""
        name = type(self).__name__
        xp = x.backend.xp
        mask = None
        if self.mask_value is not None:
            mask = xp.any(x.data != self.mask_value, axis=-1)
        if lengths is not None:
            if not batched:
                raise ValueError(f"{name}: lengths need a batched input (L, N, input_size); an unbatched sequence is "
                                 f"one sequence of length L")
            host = numpy.asarray(lengths.numpy() if isinstance(lengths, Tensor) else lengths)
            steps, batch = x.shape[:2]
            if host.shape != (batch,) or (host.size and host.dtype.kind not in "iu"):
                raise ValueError(f"{name}: lengths must be {batch} integers (one per sequence of the batch), got "
                                 f"{host.dtype} of shape {host.shape}")
            if host.size and (host.min() < 0 or host.max() > steps):
                raise ValueError(f"{name}: lengths must lie in [0, {steps}] (the padded length), got values from "
                                 f"{host.min()} to {host.max()}")
            within = xp.asarray(numpy.arange(steps)[:, None] < host[None, :])
            mask = within if mask is None else mask & within
        return mask

    def _initial_states(self, hx, x, batched):
        """hx as a list (one per state: h, and c for the LSTM) of per-(layer, direction) tensors (N, H)."""
        name = type(self).__name__
        count = (2 if self.bidirectional else 1) * self.num_layers
        shape = (count, x.shape[1], self.hidden_size) if batched else (count, self.hidden_size)
        n_states = 2 if self.mode == "LSTM" else 1
        if hx is None:
            zero = Tensor(x.backend.xp.zeros((x.shape[1], self.hidden_size), dtype=x.dtype), x.backend)
            return [[zero] * count for _ in range(n_states)]
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
            given = list(hx)
        else:
            given = [hx]
        for label, h in zip(("h_0", "c_0"), given):
            if tuple(h.shape) != shape:
                raise ValueError(f"{name}: {label} must have shape {shape} (num_layers * num_directions, "
                                 f"{'batch, ' if batched else ''}hidden_size), got {tuple(h.shape)}")
        return [list(unbind(h if batched else getitem(h, (slice(None), None)))) for h in given]

    def extra_repr(self) -> str:
        """The sizes, then every option that differs from its default (as PyTorch's)."""
        defaults = inspect.signature(RNNBase.__init__).parameters
        changed = [name for name in _REPR_OPTIONS if getattr(self, name) != defaults[name].default]
        return ", ".join([f"{self.input_size}, {self.hidden_size}"] + [f"{n}={getattr(self, n)!r}" for n in changed])


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu), stacked and optionally
    bidirectional. ``forward(input, h_0=None, lengths=None) -> (output, h_n)`` with PyTorch's shapes (other returns:
    ``return_mode``; padding: ``lengths``, ``mask_value``; see RNNBase)."""

    arguments = Arguments(**RNNBase.arguments.kinds, nonlinearity=Choice(tuple(_NONLINEARITY), "nonlinearity"))

    @checked
    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, *, return_mode=None, mask_value=None):
        self.nonlinearity = nonlinearity
        super().__init__(_NONLINEARITY[nonlinearity], input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, device, dtype, return_mode=return_mode, mask_value=mask_value)


class LSTM(RNNBase):
    """Long short-term memory: gates i, f, g, o from x_t and h_{t-1}; c_t = f c_{t-1} + i g, h_t = o tanh(c_t).
    ``forward(input, (h_0, c_0)=None, lengths=None) -> (output, (h_n, c_n))`` with PyTorch's shapes; proj_size must
    be 0. ``return_mode``, ``lengths`` and ``mask_value``: see RNNBase."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None, *, return_mode=None, mask_value=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, device, dtype, return_mode=return_mode, mask_value=mask_value)


class GRU(RNNBase):
    """Gated recurrent unit, PyTorch's form: r, z gates; n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn));
    h_t = (1 - z) n + z h_{t-1}. ``forward(input, h_0=None, lengths=None) -> (output, h_n)``; ``return_mode``,
    ``lengths`` and ``mask_value``: see RNNBase."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None, *, return_mode=None, mask_value=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
                         device, dtype, return_mode=return_mode, mask_value=mask_value)


class RNNCellBase(Module):
    """One time step of a recurrent layer: weight_ih (G*H, in), weight_hh (G*H, H), bias_ih, bias_hh (G*H)."""

    def __init__(self, input_size, hidden_size, bias, gates, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        _check_size(name, "input_size", input_size, 0)
        _check_size(name, "hidden_size", hidden_size)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.weight_ih = _empty_parameter((gates * hidden_size, input_size), device, dtype)
        self.weight_hh = _empty_parameter((gates * hidden_size, hidden_size), device, dtype)
        if bias:
            self.bias_ih = _empty_parameter((gates * hidden_size,), device, dtype)
            self.bias_hh = _empty_parameter((gates * hidden_size,), device, dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    reset_parameters = RNNBase.reset_parameters

    def _check_input(self, input, states):
        """The (N, H) zero state when ``states`` is None, after checking input (N, in) or (in,) and the states."""
        name = type(self).__name__
        if input.ndim not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input must be (batch, {self.input_size}) or ({self.input_size},), got "
                             f"{tuple(input.shape)}")
        shape = input.shape[:-1] + (self.hidden_size,)
        for label, h in states:
            if h is not None and tuple(h.shape) != shape:
                raise ValueError(f"{name}: {label} must have shape {shape}, got {tuple(h.shape)}")
        return Tensor(input.backend.xp.zeros(shape, dtype=input.dtype), input.backend)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s


class RNNCell(RNNCellBase):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu); ``forward(input, hx=None) -> h'``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype=None):
        _check_nonlinearity("RNNCell", nonlinearity)
        super().__init__(input_size, hidden_size, bias, 1, device, dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        zero = self._check_input(input, (("hx", hx),))
        h = zero if hx is None else hx
        pre = add(linear(input, self.weight_ih, self.bias_ih), linear(h, self.weight_hh, self.bias_hh))
        return tanh(pre) if self.nonlinearity == "tanh" else relu(pre)


class LSTMCell(RNNCellBase):
    """One LSTM step: ``forward(input, (h, c)=None) -> (h', c')``, gates in PyTorch's order i, f, g, o."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device, dtype)

    def forward(self, input, hx=None):
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"LSTMCell: hx must be a tuple (h, c), got {type(hx).__name__}")
        zero = self._check_input(input, (("h", None if hx is None else hx[0]), ("c", None if hx is None else hx[1])))
        h, c = (zero, zero) if hx is None else hx
        gates = add(linear(input, self.weight_ih, self.bias_ih), linear(h, self.weight_hh, self.bias_hh))
        return lstm_cell(gates, c)


class GRUCell(RNNCellBase):
    """One GRU step: ``forward(input, hx=None) -> h'``, gates r, z, n; the reset gate multiplies h W_hn^T + b_hn."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device, dtype)

    def forward(self, input, hx=None):
        zero = self._check_input(input, (("hx", hx),))
        h = zero if hx is None else hx
        return gru_cell(linear(input, self.weight_ih, self.bias_ih), linear(h, self.weight_hh, self.bias_hh), h)
