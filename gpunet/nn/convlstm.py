"""Convolutional LSTM (Shi et al. 2015, without peephole connections; seed 000's spatiotemporal models): the LSTM's
gates come from convolutions of the input frame and of the hidden state, so the state keeps the frames' layout.

    [i | f | g | o] = conv(x_t, W_ih) + conv(h_{t-1}, W_hh) + b         (4 * hidden_channels gate channels)
    c_t = sigmoid(f) c_{t-1} + sigmoid(i) tanh(g),    h_t = sigmoid(o) tanh(c_t)

Both convolutions are 'same' (stride 1; an even kernel pads one more on the right and bottom, as PyTorch's
padding='same'), so h and c are (N, hidden_channels, H, W). PyTorch has no ConvLSTM; the weights follow its
LSTMCell's names (weight_ih, weight_hh) in Conv2d's layout, with one bias, as a Conv2d over the joined [x, h] (the
usual ConvLSTM code) has. The gate arithmetic is the fused LSTM cell (``gpunet.ops.rnn.lstm_cell``) on the pixels'
channel vectors.
"""
from __future__ import annotations

import math
import numbers

from ..autograd.tensor import Tensor
from ..ops.arithmetic import add
from ..ops.conv import conv2d
from ..ops.rnn import lstm_cell
from ..ops.shape import getitem, permute, reshape, stack
from . import init
from .containers import ModuleList
from .linear import _empty_parameter
from .module import Module
from .rnn import _check_return_mode, _check_size


def _kernel_pair(layer, kernel_size):
    pair = (kernel_size,) * 2 if isinstance(kernel_size, numbers.Integral) else tuple(kernel_size)
    if len(pair) != 2 or any(isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1 for k in pair):
        raise ValueError(f"{layer}: kernel_size must be an integer >= 1 or a pair of them, got {kernel_size!r}")
    return tuple(int(k) for k in pair)


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
        rows = 4 * hidden_channels
        self.weight_ih = _empty_parameter((rows, in_channels) + self.kernel_size, device, dtype)
        self.weight_hh = _empty_parameter((rows, hidden_channels) + self.kernel_size, device, dtype)
        if bias:
            self.bias = _empty_parameter((rows,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt((self.in_channels + self.hidden_channels) * self.kernel_size[0] * self.kernel_size[1])
        for param in self.parameters():
            init.uniform_(param, -bound, bound)

    def input_gates(self, x):
        """conv(x, W_ih) + b for frames (M, in_channels, H, W): the part of the gates that needs no state."""
        return conv2d(x, self.weight_ih, self.bias, padding="same")

    def step(self, gates_x, h, c):
        """(h', c') from the input's gates (N, 4 hidden, H, W) and the state h, c (N, hidden, H, W)."""
        gates = add(gates_x, conv2d(h, self.weight_hh, padding="same"))
        n, _, height, width = gates.shape
        hidden = self.hidden_channels
        pixels = (n * height * width, hidden)
        h_flat, c_flat = lstm_cell(reshape(permute(gates, (0, 2, 3, 1)), (pixels[0], 4 * hidden)),
                                   reshape(permute(c, (0, 2, 3, 1)), pixels))
        return tuple(permute(reshape(s, (n, height, width, hidden)), (0, 3, 1, 2)) for s in (h_flat, c_flat))

    def zero_state(self, x):
        """Zeros (N, hidden_channels, H, W) for frames x (N, C, H, W)."""
        shape = (x.shape[0], self.hidden_channels) + tuple(x.shape[2:])
        return Tensor(x.backend.xp.zeros(shape, dtype=x.dtype), x.backend)

    def check_input(self, x, what="input", dims="(N, C, H, W)"):
        name = type(self).__name__
        channel_axis = x.ndim - 3
        if x.ndim < 4 or x.shape[channel_axis] != self.in_channels:
            raise ValueError(f"{name}: {what} must be {dims} with C = in_channels = {self.in_channels}, got shape "
                             f"{tuple(x.shape)}")
        if x.dtype != self.weight_ih.dtype:
            raise TypeError(f"{name}: {what} has dtype {x.dtype} but the weights have {self.weight_ih.dtype}; convert "
                            f"one with .to(dtype=...)")

    def check_state(self, label, state, x):
        shape = (x.shape[0], self.hidden_channels) + tuple(x.shape[-2:])
        if tuple(state.shape) != shape:
            raise ValueError(f"{type(self).__name__}: {label} must have shape {shape} (N, hidden_channels, H, W), "
                             f"got {tuple(state.shape)}")

    def forward(self, input, hx=None):
        if input.ndim == 3:
            state = None if hx is None else tuple(getitem(s, None) for s in hx)
            return tuple(getitem(s, 0) for s in self.forward(getitem(input, None), state))
        self.check_input(input, dims="(N, C, H, W) or (C, H, W)")
        if hx is None:
            h = c = self.zero_state(input)
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"{type(self).__name__}: hx must be a tuple (h, c), got {type(hx).__name__}")
            h, c = hx
            for label, state in (("h", h), ("c", c)):
                self.check_state(label, state, input)
        return self.step(self.input_gates(input), h, c)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}"
                + (", bias=False" if self.bias is None else ""))


class ConvLSTM(Module):
    """A ConvLSTM over frame sequences (N, T, C, H, W) (batch first, Keras' ConvLSTM2D layout with channels first),
    ``num_layers`` stacked (layer k > 0 reads layer k-1's hidden states). ``forward(input, (h_0, c_0)=None)`` with
    h_0, c_0 of shape (num_layers, N, hidden_channels, H, W) (zeros when not given) returns, as the LSTM:

    - ``return_mode=None`` (default): ``(output, (h_n, c_n))``, output (N, T, hidden_channels, H, W) the last layer's
      h at every step, h_n and c_n (num_layers, N, hidden_channels, H, W);
    - ``"sequence"``: output; ``"last"``: the last layer's h at the last step (N, hidden_channels, H, W) (Keras'
      default); ``"state"``: (h_n, c_n).

    The layers are ``cells`` (a ModuleList of ConvLSTMCell); each computes its input gates for all T frames as one
    convolution, then steps through time."""

    def __init__(self, in_channels, hidden_channels, kernel_size, num_layers=1, bias=True, device=None, dtype=None, *,
                 return_mode=None):
        super().__init__()
        _check_return_mode("ConvLSTM", return_mode)
        _check_size("ConvLSTM", "num_layers", num_layers)
        self.in_channels, self.hidden_channels, self.num_layers = in_channels, hidden_channels, num_layers
        self.return_mode = return_mode
        self.cells = ModuleList([ConvLSTMCell(in_channels if k == 0 else hidden_channels, hidden_channels,
                                              kernel_size, bias, device, dtype) for k in range(num_layers)])
        self.kernel_size = self.cells[0].kernel_size

    def forward(self, input, hx=None):
        first = self.cells[0]
        if input.ndim != 5:
            raise ValueError(f"ConvLSTM: input must be (N, T, C, H, W) frame sequences, got shape {tuple(input.shape)}")
        first.check_input(input, dims="(N, T, C, H, W)")
        n, steps = input.shape[:2]
        if steps == 0:
            raise ValueError("ConvLSTM: the input sequence is empty (T = 0)")
        frames = tuple(input.shape[3:])
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"ConvLSTM: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
            shape = (self.num_layers, n, self.hidden_channels) + frames
            for label, state in zip(("h_0", "c_0"), hx):
                if tuple(state.shape) != shape:
                    raise ValueError(f"ConvLSTM: {label} must have shape {shape} (num_layers, N, hidden_channels, H, "
                                     f"W), got {tuple(state.shape)}")
        x, h_n, c_n = input, [], []
        for k, cell in enumerate(self.cells):
            gates = cell.input_gates(reshape(x, (n * steps,) + tuple(x.shape[2:])))
            gates = reshape(gates, (n, steps) + tuple(gates.shape[1:]))
            if hx is None:
                h = c = cell.zero_state(getitem(x, (slice(None), 0)))
            else:
                h, c = getitem(hx[0], k), getitem(hx[1], k)
            outputs = []
            for t in range(steps):
                h, c = cell.step(getitem(gates, (slice(None), t)), h, c)
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
        s = f"{self.in_channels}, {self.hidden_channels}, kernel_size={self.kernel_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.cells[0].bias is None:
            s += ", bias=False"
        if self.return_mode is not None:
            s += f", return_mode={self.return_mode!r}"
        return s


__all__ = ["ConvLSTM", "ConvLSTMCell"]
