"""CuPy launchers of ``kernels/rnn.cu``: fused LSTM and GRU cells, one launch per time step and direction, writing
into the arrays of ``out`` when given (a layer's sequence buffers) and taking a second gradient of h in the
backward (``grad_h_extra``, summed in the kernel) so that a layer's step needs no separate copy or add.

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


def _cell_launch(backend, kernel: str, state, args: tuple, flags: tuple = ()) -> None:
    """One thread per element of the (batch, hidden) ``state``; ``args``, the sizes, then ``flags``."""
    batch, hidden = state.shape
    launch_per_element(backend, "rnn", kernel, batch * hidden,
                       args + (numpy.int64(batch), numpy.int64(hidden)) + flags)


def _check_out(op: str, out, likes: dict) -> None:
    """``out``: None, or one array or None per output (``likes``: output name -> the array it must match), each
    C-contiguous (the kernels write it in place)."""
    if out is None:
        return
    if len(out) != len(likes):
        raise ValueError(f"{op}: out must hold {len(likes)} arrays or Nones ({', '.join(likes)}), got {len(out)}")
    for o, (name, like) in zip(out, likes.items()):
        if o is None:
            continue
        if o.shape != like.shape or o.dtype != like.dtype or not o.flags.c_contiguous:
            raise ValueError(f"{op}: out for {name} must be a C-contiguous {like.dtype} array of shape "
                             f"{tuple(like.shape)}, got {o.dtype} of shape {tuple(o.shape)}")


def _outputs(xp, out, likes: tuple) -> tuple:
    """The arrays the kernel writes: those of ``out``, new ones where it has None (or for all without it)."""
    out = (None,) * len(likes) if out is None else out
    return tuple(xp.empty_like(like) if o is None else o for o, like in zip(out, likes))


def _extra(grad_h, grad_h_extra) -> tuple:
    """The kernel arguments (grad_h_extra, has_extra): grad_h stands in, unread, when there is no extra."""
    return (grad_h, numpy.int32(0)) if grad_h_extra is None else (grad_h_extra, numpy.int32(1))


def check_lstm_cell(gates, c_prev, out=None):
    _check("lstm_cell", 4, ("gates", gates), ("c_prev", c_prev))
    _check_out("lstm_cell", out, {"h": c_prev, "c": c_prev})


def lstm_cell(backend, gates, c_prev, out=None):
    xp = backend.xp
    gates, c_prev = xp.ascontiguousarray(gates), xp.ascontiguousarray(c_prev)
    h, c = _outputs(xp, out, (c_prev, c_prev))
    _cell_launch(backend, "lstm_cell_forward_f32", c_prev, (gates, c_prev, h, c))
    return h, c


def check_lstm_cell_backward(gates, c_prev, grad_h, grad_c, grad_h_extra=None, out=None):
    extra = () if grad_h_extra is None else (("grad_h_extra", grad_h_extra),)
    _check("lstm_cell_backward", 4, ("gates", gates), ("c_prev", c_prev),
           state_like=(("grad_h", grad_h), ("grad_c", grad_c), *extra))
    _check_out("lstm_cell_backward", out, {"grad_gates": gates, "grad_c_prev": c_prev})


def lstm_cell_backward(backend, gates, c_prev, grad_h, grad_c, grad_h_extra=None, out=None):
    xp = backend.xp
    gates, c_prev, grad_h, grad_c = (xp.ascontiguousarray(a) for a in (gates, c_prev, grad_h, grad_c))
    extra = _extra(grad_h, None if grad_h_extra is None else xp.ascontiguousarray(grad_h_extra))
    grad_gates, grad_c_prev = _outputs(xp, out, (gates, c_prev))
    _cell_launch(backend, "lstm_cell_backward_f32", c_prev,
                 (gates, c_prev, grad_h, extra[0], grad_c, grad_gates, grad_c_prev), extra[1:])
    return grad_gates, grad_c_prev


def check_gru_cell(gi, gh, h_prev, out=None):
    _check("gru_cell", 3, ("gi", gi), ("h_prev", h_prev), gates_like=(("gh", gh),))
    _check_out("gru_cell", None if out is None else (out,), {"h": h_prev})


def gru_cell(backend, gi, gh, h_prev, out=None):
    xp = backend.xp
    gi, gh, h_prev = xp.ascontiguousarray(gi), xp.ascontiguousarray(gh), xp.ascontiguousarray(h_prev)
    (h,) = _outputs(xp, None if out is None else (out,), (h_prev,))
    _cell_launch(backend, "gru_cell_forward_f32", h_prev, (gi, gh, h_prev, h))
    return h


def check_gru_cell_backward(gi, gh, h_prev, grad_h, grad_h_extra=None, out=None):
    extra = () if grad_h_extra is None else (("grad_h_extra", grad_h_extra),)
    _check("gru_cell_backward", 3, ("gi", gi), ("h_prev", h_prev), gates_like=(("gh", gh),),
           state_like=(("grad_h", grad_h), *extra))
    _check_out("gru_cell_backward", out, {"grad_gi": gi, "grad_gh": gh, "grad_h_prev": h_prev})


def gru_cell_backward(backend, gi, gh, h_prev, grad_h, grad_h_extra=None, out=None):
    xp = backend.xp
    gi, gh, h_prev, grad_h = (xp.ascontiguousarray(a) for a in (gi, gh, h_prev, grad_h))
    extra = _extra(grad_h, None if grad_h_extra is None else xp.ascontiguousarray(grad_h_extra))
    grad_gi, grad_gh, grad_h_prev = _outputs(xp, out, (gi, gh, h_prev))
    _cell_launch(backend, "gru_cell_backward_f32", h_prev,
                 (gi, gh, h_prev, grad_h, extra[0], grad_gi, grad_gh, grad_h_prev), extra[1:])
    return grad_gi, grad_gh, grad_h_prev
