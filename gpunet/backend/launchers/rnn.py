"""CuPy launchers of ``kernels/rnn.cu``: fused LSTM and GRU cells, one launch per time step and direction.

float32 launches the kernels (one thread per hidden unit of the batch, grid-stride); float64 runs the xp reference
(``gpunet.backend.references.rnn``). Gate pre-activations keep PyTorch's layout: (batch, 4*hidden) for the
LSTM ([i | f | g | o]) and (batch, 3*hidden) for the GRU ([r | z | n]).
"""
from __future__ import annotations

import numpy

from .common import launch_per_element, require_float


def _check(op: str, gate_count: int, gates: tuple, state: tuple, gates_like: tuple = (), state_like: tuple = ()):
    """Check shapes and dtypes: ``gates`` = (name, array of (batch, gate_count*hidden)), ``state`` = (name, array of
    (batch, hidden)); ``gates_like`` / ``state_like`` more (name, array) of those shapes."""
    (gates_name, g), (state_name, s) = gates, state
    require_float(op, gates_name, g)
    if s.ndim != 2 or g.shape != (s.shape[0], gate_count * s.shape[1]):
        raise ValueError(f"{op}: {gates_name} must be (batch, {gate_count}*hidden) and {state_name} (batch, hidden); "
                         f"got {tuple(g.shape)} and {tuple(s.shape)}")
    for (name, array), shape in [(x, g.shape) for x in gates_like] + [(x, s.shape) for x in state_like]:
        if array.shape != shape:
            raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {tuple(array.shape)}")
    for name, array in (state, *gates_like, *state_like):
        if array.dtype != g.dtype:
            raise TypeError(f"{op}: {name} has dtype {array.dtype} but {gates_name} has {g.dtype}; use one dtype")


def _cell_launch(backend, kernel: str, state, args: tuple) -> None:
    """One thread per element of the (batch, hidden) ``state``."""
    batch, hidden = state.shape
    launch_per_element(backend, "rnn", kernel, batch * hidden, args + (numpy.int64(batch), numpy.int64(hidden)))


def check_lstm_cell(gates, c_prev):
    _check("lstm_cell", 4, ("gates", gates), ("c_prev", c_prev))


def lstm_cell(backend, gates, c_prev):
    xp = backend.xp
    gates, c_prev = xp.ascontiguousarray(gates), xp.ascontiguousarray(c_prev)
    h, c = xp.empty_like(c_prev), xp.empty_like(c_prev)
    _cell_launch(backend, "lstm_cell_forward_f32", c_prev, (gates, c_prev, h, c))
    return h, c


def check_lstm_cell_backward(gates, c_prev, grad_h, grad_c):
    _check("lstm_cell_backward", 4, ("gates", gates), ("c_prev", c_prev),
           state_like=(("grad_h", grad_h), ("grad_c", grad_c)))


def lstm_cell_backward(backend, gates, c_prev, grad_h, grad_c):
    xp = backend.xp
    gates, c_prev, grad_h, grad_c = (xp.ascontiguousarray(a) for a in (gates, c_prev, grad_h, grad_c))
    grad_gates, grad_c_prev = xp.empty_like(gates), xp.empty_like(c_prev)
    _cell_launch(backend, "lstm_cell_backward_f32", c_prev, (gates, c_prev, grad_h, grad_c, grad_gates, grad_c_prev))
    return grad_gates, grad_c_prev


def check_gru_cell(gi, gh, h_prev):
    _check("gru_cell", 3, ("gi", gi), ("h_prev", h_prev), gates_like=(("gh", gh),))


def gru_cell(backend, gi, gh, h_prev):
    xp = backend.xp
    gi, gh, h_prev = xp.ascontiguousarray(gi), xp.ascontiguousarray(gh), xp.ascontiguousarray(h_prev)
    h = xp.empty_like(h_prev)
    _cell_launch(backend, "gru_cell_forward_f32", h_prev, (gi, gh, h_prev, h))
    return h


def check_gru_cell_backward(gi, gh, h_prev, grad_h):
    _check("gru_cell_backward", 3, ("gi", gi), ("h_prev", h_prev), gates_like=(("gh", gh),),
           state_like=(("grad_h", grad_h),))


def gru_cell_backward(backend, gi, gh, h_prev, grad_h):
    xp = backend.xp
    gi, gh, h_prev, grad_h = (xp.ascontiguousarray(a) for a in (gi, gh, h_prev, grad_h))
    grad_gi, grad_gh, grad_h_prev = xp.empty_like(gi), xp.empty_like(gh), xp.empty_like(h_prev)
    _cell_launch(backend, "gru_cell_backward_f32", h_prev, (gi, gh, h_prev, grad_h, grad_gi, grad_gh, grad_h_prev))
    return grad_gi, grad_gh, grad_h_prev
