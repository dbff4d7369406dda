"""Convolutional LSTM (Shi et al. 2015, without peephole connections; seed 000's spatiotemporal models): the LSTM's
gates come from convolutions of the input frame and of the hidden state, so the state keeps the frames' layout.

    [i | f | g | o] = conv(x_t, W_ih) + conv(h_{t-1}, W_hh) + b         (4 * hidden_channels gate channels)
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g),    h_t = sigmoid(o) tanh(c_t)

Both convolutions are 'same' (stride 1; an even kernel pads one more on the right and bottom, as PyTorch's
padding='same'), so h and c are (N, hidden_channels, H, W). PyTorch has no ConvLSTM; the weights follow its
LSTMCell's names (weight_ih, weight_hh) in Conv2d's layout, with one bias, as a Conv2d over the joined [x, h] (the
usual ConvLSTM code) has; ConvLSTM names them per layer as PyTorch's LSTM does (weight_ih_l0, ...). The gate
arithmetic is the fused LSTM cell (``gpunet.ops.rnn.lstm_cell``) on the pixels' channel vectors.
"""
from __future__ import annotations

import math
import numbers

from ..autograd.tensor import Tensor
from ..kinds import Arguments, Bool, Int, checked, sizes
from ..ops.arithmetic import add
from ..ops.conv import conv2d
from ..ops.rnn import lstm_cell
from ..ops.shape import getitem, permute, reshape, stack
from . import init
from .linear import _empty_parameter
from .module import Module
from .rnn import RETURN_MODE, _check_size


def _kernel_pair(layer, kernel_size):
    pair = (kernel_size,) * 2 if isinstance(kernel_size, numbers.Integral) else tuple(kernel_size)
    if len(pair) != 2 or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 for k in pair):
        raise ValueError(f"{layer}: kernel_size must be an integer >= 1 or a pair of them, got {kernel_size!r}")
    return tuple(int(k) for k in pair)


def _make_parameters(module, suffix, in_channels, hidden_channels, kernel_size, bias, device, dtype):
    """weight_ih, weight_hh and bias (+ suffix) of one layer, ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    rows = 4 * hidden_channels
    weights = {"weight_ih": (rows, in_channels) + kernel_size, "weight_hh": (rows, hidden_channels) + kernel_size}
    for name, shape in weights.items():
        setattr(module, name + suffix, _empty_parameter(shape, device, dtype))
    if bias:
        setattr(module, "bias" + suffix, _empty_parameter((rows,), device, dtype))
    else:
        module.register_parameter("bias" + suffix, None)
    bound = 1.0 / math.sqrt((in_channels + hidden_channels) * kernel_size[0] * kernel_size[1])
    for name in ("weight_ih", "weight_hh", "bias"):
        param = getattr(module, name + suffix)
        if param is not None:
            init.uniform_(param, -bound, bound)


def _input_gates(x, weight_ih, bias):
    """conv(x, W_ih) + b for frames (M, C, H, W): the part of the gates that needs no state."""
    return conv2d(x, weight_ih, bias, padding="same")


def _step(gates_x, h, c, weight_hh):
    """(h', c') from the input's gates (N, 4 hidden, H, W) and the state h, c (N, hidden, H, W)."""
    gates = add(gates_x, conv2d(h, weight_hh, padding="same"))
    n, rows, height, width = gates.shape
    hidden, pixels = rows // 4, n * height * width
    h_flat, c_flat = lstm_cell(reshape(permute(gates, (0, 2, 3, 1)), (pixels, rows)),
                               reshape(permute(c, (0, 2, 3, 1)), (pixels, hidden)))
    return tuple(permute(reshape(s, (n, height, width, hidden)), (0, 3, 1, 2)) for s in (h_flat, c_flat))


def _zero_state(x, hidden_channels):
    """Zeros (N, hidden_channels, H, W) for frames x (N, C, H, W)."""
    shape = (x.shape[0], hidden_channels) + tuple(x.shape[-2:])
    return Tensor(x.backend.xp.zeros(shape, dtype=x.dtype), x.backend)


def _check_frames(layer, x, in_channels, dtype, dims):
    if x.shape[-3] != in_channels:
        raise ValueError(f"{layer}: input must be {dims} with C = in_channels = {in_channels}, got shape "
                         f"{tuple(x.shape)}")
    if x.dtype != dtype:
        raise TypeError(f"{layer}: input has dtype {x.dtype} but the weights have {dtype}; convert one with "
                        f".to(dtype=...)")


def _check_pair(layer, hx, names, shape):
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"{layer}: hx must be a tuple ({names[0]}, {names[1]}), got {type(hx).__name__}")
    for label, state in zip(names, hx):
        if tuple(state.shape) != shape:
            raise ValueError(f"{layer}: {label} must have shape {shape}, got {tuple(state.shape)}")


def _repr(module, bias) -> str:
    return (f"{module.in_channels}, {module.hidden_channels}, kernel_size={module.kernel_size}"
            + ("" if bias else ", bias=False"))


class ConvLSTMCell(Module):
    """One ConvLSTM step: ``forward(input (N, in_channels, H, W), (h, c)=None) -> (h', c')``, h and c of shape
    (N, hidden_channels, H, W) (zeros when not given); unbatched (C, H, W) inputs work too. Parameters: weight_ih
    (4 * hidden_channels, in_channels, kh, kw), weight_hh (4 * hidden_channels, hidden_channels, kh, kw), bias
    (4 * hidden_channels), gate blocks in PyTorch's LSTM order i, f, g, o; all ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    with fan_in = (in_channels + hidden_channels) kh kw, PyTorch's Conv2d default for the joined convolution."""

    def __init__(self, in_channels, hidden_channels, kernel_size, bias=True, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        _check_size(name, "in_channels", in_channels)
        _check_size(name, "hidden_channels", hidden_channels)
        self.in_channels, self.hidden_channels = in_channels, hidden_channels
        self.kernel_size = _kernel_pair(name, kernel_size)
        _make_parameters(self, "", in_channels, hidden_channels, self.kernel_size, bias, device, dtype)

    def forward(self, input, hx=None):
        if input.ndim == 3:
            state = None if hx is None else tuple(getitem(s, None) for s in hx)
            return tuple(getitem(s, 0) for s in self.forward(getitem(input, None), state))
        if input.ndim != 4:
            raise ValueError(f"ConvLSTMCell: input must be (N, C, H, W) or (C, H, W), got shape {tuple(input.shape)}")
        _check_frames("ConvLSTMCell", input, self.in_channels, self.weight_ih.dtype, "(N, C, H, W) or (C, H, W)")
        if hx is None:
            h = c = _zero_state(input, self.hidden_channels)
        else:
            _check_pair("ConvLSTMCell", hx, ("h", "c"),
                        (input.shape[0], self.hidden_channels) + tuple(input.shape[-2:]))
            h, c = hx
        return _step(_input_gates(input, self.weight_ih, self.bias), h, c, self.weight_hh)

    def extra_repr(self) -> str:
        return _repr(self, self.bias is not None)


class ConvLSTM(Module):
    """A ConvLSTM over frame sequences (N, T, C, H, W) (batch first, Keras' ConvLSTM2D layout with channels first),
    ``num_layers`` stacked (layer k > 0 reads layer k-1's hidden states). ``forward(input, (h_0, c_0)=None)`` with
    h_0, c_0 of shape (num_layers, N, hidden_channels, H, W) (zeros when not given) returns, as the LSTM:

    - ``return_mode=None`` (default): ``(output, (h_n, c_n))``, output (N, T, hidden_channels, H, W) the last layer's
      h at every step, h_n and c_n (num_layers, N, hidden_channels, H, W);
    - ``"sequence"``: output; ``"last"``: the last layer's h at the last step (N, hidden_channels, H, W) (Keras'
      default); ``"state"``: (h_n, c_n).

    Layer k has ConvLSTMCell's parameters named weight_ih_lk, weight_hh_lk, bias_lk; it computes its input gates for
    all T frames as one convolution, then steps through time."""

    arguments = Arguments(in_channels=Int(ge=1), hidden_channels=Int(ge=1), kernel_size=sizes(2, 1),
                          num_layers=Int(ge=1), bias=Bool(), return_mode=RETURN_MODE)

    @checked
    def __init__(self, in_channels, hidden_channels, kernel_size, num_layers=1, bias=True, device=None, dtype=None, *,
                 return_mode=None):
        super().__init__()
        self.in_channels, self.hidden_channels, self.num_layers = in_channels, hidden_channels, num_layers
        self.kernel_size, self.bias, self.return_mode = _kernel_pair("ConvLSTM", kernel_size), bias, return_mode
        for k in range(num_layers):
            _make_parameters(self, f"_l{k}", in_channels if k == 0 else hidden_channels, hidden_channels,
                             self.kernel_size, bias, device, dtype)

    def forward(self, input, hx=None):
        if input.ndim != 5:
            raise ValueError(f"ConvLSTM: input must be (N, T, C, H, W) frame sequences, got shape {tuple(input.shape)}")
        _check_frames("ConvLSTM", input, self.in_channels, self.weight_ih_l0.dtype, "(N, T, C, H, W)")
        n, steps = input.shape[:2]
        if steps == 0:
            raise ValueError("ConvLSTM: the input sequence is empty (T = 0)")
        if hx is not None:
            _check_pair("ConvLSTM", hx, ("h_0", "c_0"),
                        (self.num_layers, n, self.hidden_channels) + tuple(input.shape[3:]))
        x, h_n, c_n = input, [], []
        for k in range(self.num_layers):
            get = self._parameters.get
            gates = _input_gates(reshape(x, (n * steps,) + tuple(x.shape[2:])), get(f"weight_ih_l{k}"),
                                 get(f"bias_l{k}"))
            gates = reshape(gates, (n, steps) + tuple(gates.shape[1:]))
            if hx is None:
                h = c = _zero_state(getitem(x, (slice(None), 0)), self.hidden_channels)
            else:
                h, c = getitem(hx[0], k), getitem(hx[1], k)
            outputs = []
            for t in range(steps):
                h, c = _step(getitem(gates, (slice(None), t)), h, c, get(f"weight_hh_l{k}"))
                outputs.append(h)
            x = stack(outputs, 1)
            h_n.append(h)
            c_n.append(c)
        if self.return_mode == "last":
            return h_n[-1]
        if self.return_mode == "sequence":
            return x
        state = (stack(h_n), stack(c_n))
        return state if self.return_mode == "state" else (x, state)

    def extra_repr(self) -> str:
        s = _repr(self, self.bias)
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.return_mode is not None:
            s += f", return_mode={self.return_mode!r}"
        return s


__all__ = ["ConvLSTM", "ConvLSTMCell"]
