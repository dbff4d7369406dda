"""Recurrent cells and layers as graph nodes: the fused LSTM and GRU cells, and one node per layer and direction.

The matrix products stay outside the cells (``linear``, i.e. cuBLAS on CUDA); a cell node takes the gate
pre-activations in PyTorch's layout, blocks [i | f | g | o] (LSTM) or [r | z | n] (GRU), each ``hidden`` wide.
``recurrent_layer`` runs a whole sequence as one node: forward, one GEMM for the input projection of every step,
then per step one GEMM and one fused cell; backward, per step one fused cell backward and one GEMM, then one GEMM
each for the weight and input gradients of all steps at once. First-order backward runs the fused backward
kernels; when the backward itself is recorded (``create_graph=True``) the same gradients come from a graph of
differentiable elementary ops, so derivatives of any order are right. Where the LSTM cell kernels do not launch
(the CPU, float64), an LSTM layer is one ``lstm_layer`` call instead, which keeps the activations for its backward.
"""
from __future__ import annotations

import numpy

from ..backend.references.rnn import previous_states, time_order
from ..backend.registry import KERNELS
from ..autograd.engine import grad as _grad
from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.tensor import Tensor
from .arithmetic import add, mul, sub
from .conversion import zeros_like
from .elementwise import relu, sigmoid, tanh
from .linear import linear
from .shape import cat, getitem, stack

MODES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}  # mode: gate blocks in the weights


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


def recurrent_steps(mode, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False, keep=None):
    """``recurrent_layer`` as a graph of per-step ops (the differentiable-to-any-order form of its backward);
    ``keep`` (L, N, 1), 1 at real steps and 0 at skipped ones, as a constant tensor."""
    keeps = None if keep is None else unbind(keep)
    if mode == "GRU":  # b_hh stays inside the recurrent product: the reset gate multiplies it
        steps, recurrent_bias = unbind(linear(x, w_ih, b_ih)), b_hh
    else:  # both biases add before the cell: fold them into the input projection, once for all steps
        steps, recurrent_bias = unbind(linear(x, w_ih, None if b_ih is None else add(b_ih, b_hh))), None
    h, c = h0, c0
    hs = [None] * len(steps)
    for t in (reversed(range(len(steps))) if reverse else range(len(steps))):
        recurrent = linear(h, w_hh, recurrent_bias)
        c_new = None
        if mode == "LSTM":
            h_new, c_new = lstm_cell(add(steps[t], recurrent), c)
        elif mode == "GRU":
            h_new = gru_cell(steps[t], recurrent, h)
        else:
            pre = add(steps[t], recurrent)
            h_new = tanh(pre) if mode == "RNN_TANH" else relu(pre)
        if keeps is None:
            h, c, hs[t] = h_new, c_new, h_new
        else:  # a skipped step outputs 0 and carries the state over
            k, skip = keeps[t], sub(1.0, keeps[t])
            hs[t] = mul(k, h_new)
            h = add(hs[t], mul(skip, h))
            c = None if c_new is None else add(mul(k, c_new), mul(skip, c))
    return (stack(hs), h, c) if mode == "LSTM" else (stack(hs), h)


def _launches_cell_kernels(backend, dtype):
    """Whether the LSTM cells run as CUDA kernels here (else ``lstm_layer`` runs the whole layer in the reference)."""
    return backend.device.kind != "cpu" and KERNELS["lstm_cell"].launches((numpy.dtype(dtype),), {})


class RecurrentLayer(Function):
    """One layer in one direction over a whole sequence. Inputs: x (L, N, in), h0 (N, H), [c0 (N, H) for the
    LSTM], w_ih, w_hh, [b_ih, b_hh]; outputs: the hidden states of every step (L, N, H), h_n[, c_n].
    ``keep`` (L, N, 1) in x's dtype, or None: 0 marks a skipped (padding) step, whose output is 0 and across which
    the state is carried unchanged."""

    def __init__(self, mode, reverse, bias, keep=None):
        self.mode, self.reverse, self.bias, self.keep = mode, reverse, bias, keep

    def _split(self, items):
        """(x, h0, c0, w_ih, w_hh, b_ih, b_hh) from the inputs (None where absent)."""
        items = list(items)
        x, h0 = items[:2]
        c0 = items[2] if self.mode == "LSTM" else None
        rest = items[3:] if self.mode == "LSTM" else items[2:]
        w_ih, w_hh = rest[:2]
        b_ih, b_hh = rest[2:] if self.bias else (None, None)
        return x, h0, c0, w_ih, w_hh, b_ih, b_hh

    def forward(self, backend, *arrays):
        xp, mode = backend.xp, self.mode
        x, h, c, w_ih, w_hh, b_ih, b_hh = self._split(arrays)
        steps, batch, features = x.shape
        self.layer_saved = None
        if mode == "LSTM" and not _launches_cell_kernels(backend, x.dtype):  # the whole layer in one call
            bias = None if b_ih is None else b_ih + b_hh
            out, h_n, c_n, self.layer_saved = backend.lstm_layer(x, w_ih, w_hh, bias, h, c, self.reverse, self.keep)
            return out, h_n, c_n
        pre = x.reshape(steps * batch, features) @ w_ih.T
        if b_ih is not None:
            pre += b_ih if mode == "GRU" else b_ih + b_hh
        pre = pre.reshape(steps, batch, -1)
        w_hh_t = w_hh.T
        out = xp.empty((steps, batch, w_hh.shape[1]), dtype=x.dtype)
        keep = self.keep
        states = out if keep is None else xp.empty_like(out)  # the carried h: the output except at skipped steps
        cells = xp.empty_like(out) if mode == "LSTM" else None
        recurrent = xp.empty_like(pre) if mode == "GRU" else None
        direct = keep is None  # unmasked: the cell writes straight into out[t] (and cells[t])
        for t in time_order(steps, self.reverse):  # a GEMM, an add (the GRU: its bias) and the cell, per step
            if mode == "LSTM":
                gates = pre[t]
                gates += h @ w_hh_t
                h_new, c_new = backend.lstm_cell(gates, c, out=(out[t], cells[t]) if direct else None)
            elif mode == "GRU":
                gh = recurrent[t]
                xp.matmul(h, w_hh_t, out=gh)
                if b_hh is not None:
                    gh += b_hh
                h_new = backend.gru_cell(pre[t], gh, h, out=out[t] if direct else None)
            else:
                a = pre[t]
                a += h @ w_hh_t
                target = out[t] if direct else xp.empty_like(h)
                h_new = xp.tanh(a, out=target) if mode == "RNN_TANH" else xp.maximum(a, 0, out=target)
            if keep is None:
                h, c = h_new, (c_new if mode == "LSTM" else None)
            else:
                real = keep[t] != 0
                h = xp.where(real, h_new, h)
                c = xp.where(real, c_new, c) if mode == "LSTM" else None
                states[t] = h
                xp.multiply(h_new, keep[t], out=out[t])
                if mode == "LSTM":
                    cells[t] = c
        self.saved = (pre, cells, recurrent, states)
        last = 0 if self.reverse else steps - 1
        return (out, states[last], cells[last]) if mode == "LSTM" else (out, states[last])

    def backward(self, grad_out, grad_h, grad_c=None):
        if is_grad_enabled():
            return self._recorded_backward(grad_out, grad_h, grad_c)
        backend = self.backend
        x, h0, c0, w_ih, w_hh, _, _ = self._split(t.data for t in self.inputs)
        grad_out, grad_h, grad_c = (None if g is None else g.data for g in (grad_out, grad_h, grad_c))
        needs = self._split(self.needs_input_grad)
        if self.layer_saved is not None:
            grad_x, grad_w_ih, grad_w_hh, grad_bias, dh, dc = backend.lstm_layer_backward(
                self.layer_saved, x, w_ih, w_hh, h0, c0, grad_out, grad_h, grad_c, self.reverse, self.keep)
            grads = (grad_x, dh, dc, grad_w_ih, grad_w_hh, grad_bias, grad_bias.copy())
            grads = (g if need else None for g, need in zip(grads, needs))
        else:
            grads = self._step_grads(x, h0, c0, w_ih, w_hh, grad_out, grad_h, grad_c, needs)
        return self._pack(*(None if g is None else Tensor(g, backend) for g in grads))

    def _step_grads(self, x, h0, c0, w_ih, w_hh, grad_out, grad_h, grad_c, needs):
        """The gradients (in _split order) of the per-step forward."""
        xp, mode = self.backend.xp, self.mode
        pre, cells, recurrent, states = self.saved
        h_prev = previous_states(xp, h0, states, self.reverse)
        d_pre, d_rec, dh, dc = self._backward_steps(pre, cells, recurrent, h0, c0, h_prev, w_hh, grad_out, grad_h,
                                                    grad_c)
        need_x, need_h0, need_c0, need_w_ih, need_w_hh, need_b_ih, need_b_hh = needs
        rows = d_pre.reshape(-1, d_pre.shape[-1])  # (L*N, G*H): every step at once
        rec_rows = d_rec.reshape(-1, d_rec.shape[-1])
        return ((rows @ w_ih).reshape(x.shape) if need_x else None,
                dh if need_h0 else None,
                dc if need_c0 else None,
                rows.T @ x.reshape(-1, x.shape[-1]) if need_w_ih else None,
                rec_rows.T @ h_prev.reshape(-1, h_prev.shape[-1]) if need_w_hh else None,
                *self._bias_grads(rows, rec_rows, need_b_ih, need_b_hh))

    def _backward_steps(self, pre, cells, recurrent, h0, c0, h_prev, w_hh, grad_out, grad_h, grad_c):
        """The backward step by step through the fused cells: (d_pre, d_rec, grad_h0, grad_c0)."""
        backend, mode = self.backend, self.mode
        xp, out, steps, keep = backend.xp, self.outputs_data[0], pre.shape[0], self.keep
        c_prev = previous_states(xp, c0, cells, self.reverse) if mode == "LSTM" else None
        dh = xp.zeros_like(h0) if grad_h is None else grad_h
        dc = (xp.zeros_like(c0) if grad_c is None else grad_c) if mode == "LSTM" else None
        d_pre = xp.empty_like(pre)
        d_rec = xp.empty_like(recurrent) if mode == "GRU" else d_pre  # gradient of the recurrent product
        for t in reversed(time_order(steps, self.reverse)):  # unmasked: the cell (it adds grad_out[t]), the GEMM
            extra = None if grad_out is None else grad_out[t]  # (the GRU: and an add), at most 3 launches per step
            dh_t = dh
            if keep is not None:  # a skipped step passes the state's gradient straight back
                dh_t = dh if extra is None else dh + extra
                extra, skip = None, 1 - keep[t]
                carried_h, dh_t = dh * skip, dh_t * keep[t]
                if mode == "LSTM":
                    carried_c, dc = dc * skip, dc * keep[t]
            if mode == "LSTM":
                _, dc = backend.lstm_cell_backward(pre[t], c_prev[t], dh_t, dc, extra, out=(d_pre[t], None))
                dh = d_pre[t] @ w_hh
            elif mode == "GRU":
                _, _, dh = backend.gru_cell_backward(pre[t], recurrent[t], h_prev[t], dh_t, extra,
                                                     out=(d_pre[t], d_rec[t], None))
                dh += d_rec[t] @ w_hh
            else:
                if extra is not None:
                    dh_t = dh_t + extra
                d_pre[t] = dh_t * (1 - out[t] * out[t]) if mode == "RNN_TANH" else dh_t * (out[t] > 0)
                dh = d_pre[t] @ w_hh
            if keep is not None:
                dh = dh + carried_h
                if mode == "LSTM":
                    dc = dc + carried_c
        return d_pre, d_rec, dh, dc

    def _bias_grads(self, rows, rec_rows, need_b_ih, need_b_hh):
        if self.mode == "GRU":
            return (rows.sum(axis=0) if need_b_ih else None), (rec_rows.sum(axis=0) if need_b_hh else None)
        grad = rows.sum(axis=0) if need_b_ih or need_b_hh else None  # both biases add before the cell: equal
        return (grad if need_b_ih else None), (None if not need_b_hh else grad.copy() if need_b_ih else grad)

    def _pack(self, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        """The inverse of _split: values in the order of the inputs."""
        return ((x, h0) + ((c0,) if self.mode == "LSTM" else ()) + (w_ih, w_hh)
                + ((b_ih, b_hh) if self.bias else ()))

    def _recorded_backward(self, *grads):
        keep = None if self.keep is None else Tensor(self.keep, self.backend)
        outputs = recurrent_steps(self.mode, *self._split(self.inputs), reverse=self.reverse, keep=keep)
        pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None]
        wanted = [i for i, need in enumerate(self.needs_input_grad) if need]
        got = _grad([o for o, _ in pairs], [self.inputs[i] for i in wanted], [g for _, g in pairs],
                    create_graph=True, allow_unused=True)
        result = [None] * len(self.inputs)
        for i, g in zip(wanted, got):
            result[i] = g
        return tuple(result)


def recurrent_layer(mode, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, reverse=False, mask=None):
    """Run one recurrent layer in one direction over x (L, N, in) from h0 (and c0 for "LSTM") (N, H), with
    PyTorch's weights w_ih (G*H, in), w_hh (G*H, H), optional biases (G*H); ``mode`` is "RNN_TANH", "RNN_RELU",
    "LSTM" or "GRU". Returns (outputs (L, N, H), h_n) or, for the LSTM, (outputs, h_n, c_n).

    ``mask`` (L, N), true at real steps: a false (padding) step is skipped, its output is 0 and the state passes it
    unchanged, so h_n is the state after each sequence's last real step (as PyTorch's packed sequences)."""
    if mode not in MODES:
        raise ValueError(f"recurrent_layer: mode must be one of {', '.join(MODES)}, got {mode!r}")
    if (b_ih is None) != (b_hh is None):
        raise ValueError("recurrent_layer: give both biases (b_ih and b_hh) or neither")
    rows = MODES[mode] * w_hh.shape[-1]
    if x.ndim != 3 or x.shape[0] == 0:
        raise ValueError(f"recurrent_layer: x must be (L, N, in) with L >= 1, got shape {tuple(x.shape)}")
    expected = {"h0": (x.shape[1], w_hh.shape[-1]), "c0": (x.shape[1], w_hh.shape[-1]), "w_ih": (rows, x.shape[2]),
                "w_hh": (rows, w_hh.shape[-1]), "b_ih": (rows,), "b_hh": (rows,)}
    for name, t in (("h0", h0), ("c0", c0), ("w_ih", w_ih), ("w_hh", w_hh), ("b_ih", b_ih), ("b_hh", b_hh)):
        if t is None:
            if name == "h0" or (name == "c0" and mode == "LSTM"):
                raise ValueError(f"recurrent_layer: {name} is required for mode {mode!r}")
            continue
        if tuple(t.shape) != expected[name]:
            raise ValueError(f"recurrent_layer: {name} must have shape {expected[name]} for x {tuple(x.shape)} and "
                             f"w_hh {tuple(w_hh.shape)} in mode {mode!r}, got {tuple(t.shape)}")
        if t.dtype != x.dtype:
            raise TypeError(f"recurrent_layer: x has dtype {x.dtype} but {name} has {t.dtype}; convert one with "
                            f".to(dtype=...)")
    node = RecurrentLayer(mode, reverse, b_ih is not None, _keep(mask, x))
    return node.apply(*node._pack(x, h0, c0, w_ih, w_hh, b_ih, b_hh))


def _keep(mask, x):
    """The (L, N) boolean ``mask`` as x's backend array (L, N, 1) of 1 (real step) and 0 (skipped), in x's dtype."""
    if mask is None:
        return None
    data = mask.data if isinstance(mask, Tensor) else x.backend.asarray(mask)
    if tuple(data.shape) != tuple(x.shape[:2]) or data.dtype.kind != "b":
        raise ValueError(f"recurrent_layer: mask must be a boolean array of shape (L, N) = {tuple(x.shape[:2])}, "
                         f"got {data.dtype} of shape {tuple(data.shape)}")
    return data.astype(x.dtype)[..., None]
