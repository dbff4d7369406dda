"""Recurrent cells as graph nodes: the fused LSTM and GRU cells, and ``unbind`` to walk a sequence step by step.

The matrix products stay outside the cells (``linear``, i.e. cuBLAS on CUDA); a cell node takes the gate
pre-activations in PyTorch's layout, blocks [i | f | g | o] (LSTM) or [r | z | n] (GRU), each ``hidden`` wide.
First-order backward runs the backend's fused backward kernel; when the backward itself is recorded
(``create_graph=True``) the same gradients are built from differentiable elementary ops, so derivatives of any
order are right.
"""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from .arithmetic import add, mul, sub
from .conversion import zeros_like
from .elementwise import sigmoid, tanh
from .shape import cat, getitem, stack


def _blocks(x, count, width):
    return [getitem(x, (Ellipsis, slice(k * width, (k + 1) * width))) for k in range(count)]


def _dsigmoid(s):  # sigmoid'(a) from s = sigmoid(a)
    return mul(s, sub(1.0, s))


def _dtanh(t):  # tanh'(a) from t = tanh(a)
    return sub(1.0, mul(t, t))


class LSTMCell(Function):
    def forward(self, backend, gates, c_prev):
        return backend.lstm_cell(gates, c_prev)

    def backward(self, grad_h, grad_c):
        gates, c_prev = self.inputs
        grad_h = zeros_like(c_prev) if grad_h is None else grad_h
        grad_c = zeros_like(c_prev) if grad_c is None else grad_c
        if is_grad_enabled():  # the backward is being recorded: differentiable formulas
            i, f, g, o = _blocks(gates, 4, c_prev.shape[-1])
            i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
            tc = tanh(add(mul(f, c_prev), mul(i, g)))
            gc = add(grad_c, mul(mul(grad_h, o), _dtanh(tc)))
            grad_gates = cat([mul(mul(gc, g), _dsigmoid(i)), mul(mul(gc, c_prev), _dsigmoid(f)),
                              mul(mul(gc, i), _dtanh(g)), mul(mul(grad_h, tc), _dsigmoid(o))], -1)
            return grad_gates, mul(gc, f)
        backend = self.backend
        grad_gates, grad_c_prev = backend.lstm_cell_backward(gates.data, c_prev.data, grad_h.data, grad_c.data)
        return Tensor(grad_gates, backend), Tensor(grad_c_prev, backend)


class GRUCell(Function):
    def forward(self, backend, gi, gh, h_prev):
        return backend.gru_cell(gi, gh, h_prev)

    def backward(self, grad_h):
        gi, gh, h_prev = self.inputs
        if is_grad_enabled():
            hidden = h_prev.shape[-1]
            gi_r, gi_z, gi_n = _blocks(gi, 3, hidden)
            gh_r, gh_z, gh_n = _blocks(gh, 3, hidden)
            r, z = sigmoid(add(gi_r, gh_r)), sigmoid(add(gi_z, gh_z))
            n = tanh(add(gi_n, mul(r, gh_n)))
            dan = mul(mul(grad_h, sub(1.0, z)), _dtanh(n))
            dar = mul(mul(dan, gh_n), _dsigmoid(r))
            daz = mul(mul(grad_h, sub(h_prev, n)), _dsigmoid(z))
            return cat([dar, daz, dan], -1), cat([dar, daz, mul(dan, r)], -1), mul(grad_h, z)
        backend = self.backend
        grads = backend.gru_cell_backward(gi.data, gh.data, h_prev.data, grad_h.data)
        return tuple(Tensor(g, backend) for g in grads)


def _check_cell(op, gate_count, gates_name, gates, state_name, state, more=()):
    if state.ndim not in (1, 2) or gates.shape != state.shape[:-1] + (gate_count * state.shape[-1],):
        raise ValueError(f"{op}: {gates_name} must be (batch, {gate_count}*hidden) and {state_name} (batch, hidden) "
                         f"(or both without the batch dimension); got {tuple(gates.shape)} and {tuple(state.shape)}")
    for name, t in more:
        if t.shape != gates.shape:
            raise ValueError(f"{op}: {name} must have the shape of {gates_name}, {tuple(gates.shape)}; "
                             f"got {tuple(t.shape)}")
    for name, t in ((state_name, state), *more):
        if t.dtype != gates.dtype:
            raise TypeError(f"{op}: {name} has dtype {t.dtype} but {gates_name} has {gates.dtype}; convert one with "
                            f".to(dtype=...)")


def lstm_cell(gates, c_prev):
    """One LSTM step after the matrix products: ``(h, c)`` from gates = x W_ih^T + b_ih + h W_hh^T + b_hh
    (batch, 4*hidden), PyTorch's gate order i, f, g, o, and the previous cell state c_prev (batch, hidden)."""
    _check_cell("lstm_cell", 4, "gates", gates, "c_prev", c_prev)
    if c_prev.ndim == 1:
        return tuple(getitem(t, 0) for t in lstm_cell(getitem(gates, None), getitem(c_prev, None)))
    return LSTMCell().apply(gates, c_prev)


def gru_cell(gi, gh, h_prev):
    """One GRU step after the matrix products: h from gi = x W_ih^T + b_ih and gh = h_prev W_hh^T + b_hh
    (batch, 3*hidden, gate order r, z, n) and h_prev (batch, hidden); the reset gate multiplies gh_n (as PyTorch)."""
    _check_cell("gru_cell", 3, "gi", gi, "h_prev", h_prev, (("gh", gh),))
    if h_prev.ndim == 1:
        return getitem(gru_cell(getitem(gi, None), getitem(gh, None), getitem(h_prev, None)), 0)
    return GRUCell().apply(gi, gh, h_prev)


class Unbind(Function):
    def forward(self, backend, x):
        return tuple(x[t] for t in range(x.shape[0]))

    def backward(self, *grads):
        x = self.inputs[0]
        if all(g is None for g in grads):
            return zeros_like(x)
        like = next(g for g in grads if g is not None)
        return stack([zeros_like(like) if g is None else g for g in grads])


def unbind(x):
    """The slices ``x[0], x[1], ...`` along the first dimension as one graph node (a sequence's time steps): its
    backward stacks their gradients once, instead of scattering each into a zero tensor of x's shape."""
    if x.ndim == 0:
        raise ValueError("unbind: expected a tensor with at least one dimension, got a scalar")
    if x.shape[0] == 0:
        return ()
    return Unbind().apply(x)
