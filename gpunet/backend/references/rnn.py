"""Reference of the recurrent-cell family (fused LSTM and GRU cells), written against ``xp``.

Gate pre-activations keep PyTorch's layout along the last axis: blocks [i | f | g | o] (LSTM) and [r | z | n]
(GRU), each ``hidden`` wide. The cell backward functions recompute the activations from the pre-activations
(the contract of the per-step CUDA kernels); ``lstm_layer`` / ``lstm_layer_backward`` run a whole sequence with the
activations kept from forward, few NumPy calls per step on preallocated buffers, and everything that does not
depend on the previous step done once for all steps.
"""
from __future__ import annotations


def _sigmoid_(t):
    """sigmoid(a) in place, from t = tanh(a / 2): sigmoid(a) = (1 + tanh(a / 2)) / 2, one transcendental per
    element and no overflow (absolute error ~1 ulp of 1, so values below ~1e-8 in float32 round to 0)."""
    t *= 0.5
    t += 0.5
    return t


def _lstm_activations(xp, gates, hidden):
    """The activations [sigmoid(a_i) | sigmoid(a_f) | tanh(a_g) | sigmoid(a_o)] as one (..., 4H) array."""
    t = gates * 0.5
    _sigmoid_(xp.tanh(t, out=t))  # every block as a sigmoid first: whole-array passes are the fast ones
    t[..., 2 * hidden:3 * hidden] = xp.tanh(gates[..., 2 * hidden:3 * hidden])
    return t


def _blocks(t, count, hidden):
    return [t[..., k * hidden:(k + 1) * hidden] for k in range(count)]


def lstm_cell(xp, gates, c_prev):
    """``(h, c)`` of one LSTM step: c = f * c_prev + i * g, h = o * tanh(c), from gates (..., 4H), c_prev (..., H)."""
    i, f, g, o = _blocks(_lstm_activations(xp, gates, c_prev.shape[-1]), 4, c_prev.shape[-1])
    c = f * c_prev
    c += i * g
    h = xp.tanh(c)
    h *= o
    return h, c


def lstm_cell_backward(xp, gates, c_prev, grad_h, grad_c):
    """``(grad_gates, grad_c_prev)`` of one LSTM step from the gradients of its outputs h and c."""
    hidden = c_prev.shape[-1]
    act = _lstm_activations(xp, gates, hidden)
    i, f, g, o = _blocks(act, 4, hidden)
    tc = f * c_prev
    tc += i * g
    tc = xp.tanh(tc, out=tc)
    gc = tc * tc
    gc -= 1
    gc *= grad_h
    gc *= o
    gc = xp.subtract(grad_c, gc, out=gc)  # grad_c + grad_h * o * (1 - tanh(c)^2)
    grad_gates = xp.concatenate((gc * g, gc * c_prev, gc * i, grad_h * tc), axis=-1)  # d loss / d activation
    slope = 1 - act  # d activation / d pre-activation: s (1 - s), and 1 - g^2 for the tanh gate
    slope *= act
    slope[..., 2 * hidden:3 * hidden] = 1 - g * g
    grad_gates *= slope
    return grad_gates, gc * f


def _gate_scale(xp, hidden, dtype):
    """(scale, shift) over the 4H gate axis: sigmoid(a) = tanh(a / 2) / 2 + 1 / 2 for i, f, o; tanh(a) for g."""
    scale = xp.full(4 * hidden, 0.5, dtype=dtype)
    scale[2 * hidden:3 * hidden] = 1
    shift = scale.copy()
    shift[2 * hidden:3 * hidden] = 0
    return scale, shift


def time_order(steps, reverse):
    """The step indices in the order a layer runs them."""
    return range(steps - 1, -1, -1) if reverse else range(steps)


def previous_states(xp, first, states, reverse):
    """The state entering each step, in time order: ``first``, then ``states`` shifted by one along the run."""
    return xp.concatenate((states[1:], first[None]) if reverse else (first[None], states[:-1]))


def lstm_layer(xp, pre, w_hh, h0, c0, reverse=False):
    """One LSTM layer over a sequence after the input projection: ``pre`` (L, N, 4H) = x W_ih^T + b_ih + b_hh,
    w_hh (4H, H), h0 and c0 (N, H); steps run backwards with ``reverse``. Returns ``(out, cells, act, tanh_c)``:
    the hidden and cell states of every step (L, N, H), and for the backward the activations
    [sigmoid(i) | sigmoid(f) | tanh(g) | sigmoid(o)] (L, N, 4H), computed in ``pre``'s memory (overwritten), and
    tanh of the cell states (L, N, H). The same arithmetic as ``lstm_cell`` per step (scaling by 1/2 is exact)."""
    steps, batch, gates = pre.shape
    hidden = gates // 4
    scale, shift = _gate_scale(xp, hidden, pre.dtype)
    act = pre
    act *= scale  # the activations are computed in place: first the (scaled) pre-activations of every step
    w_scaled = (w_hh * scale[:, None]).T
    out = xp.empty((steps, batch, hidden), dtype=pre.dtype)
    cells, tanh_c = xp.empty_like(out), xp.empty_like(out)
    recurrent, ig = xp.empty((batch, gates), dtype=pre.dtype), xp.empty((batch, hidden), dtype=pre.dtype)
    h, c = h0, c0
    for t in time_order(steps, reverse):
        a = act[t]
        xp.matmul(h, w_scaled, out=recurrent)
        a += recurrent
        xp.tanh(a, out=a)
        a *= scale
        a += shift
        i, f, g, o = _blocks(a, 4, hidden)
        c_t, h = cells[t], out[t]
        xp.multiply(f, c, out=c_t)
        xp.multiply(i, g, out=ig)
        c_t += ig
        xp.tanh(c_t, out=tanh_c[t])
        xp.multiply(o, tanh_c[t], out=h)
        c = c_t
    return out, cells, act, tanh_c


def lstm_layer_backward(xp, act, cells, tanh_c, c0, w_hh, grad_out, grad_h, grad_c, reverse=False):
    """The gradients ``(grad_pre (L, N, 4H), grad_h0, grad_c0)`` of ``lstm_layer`` from those of its outputs:
    ``grad_out`` (L, N, H) or None, and of the last step's h and c (N, H) or None; ``act``, ``cells``, ``tanh_c``
    as ``lstm_layer`` returned them. Per step only the recurrence runs (the gradients flowing through the
    previous h and c); every factor that needs no gradient is formed once for all steps."""
    steps, batch, gates = act.shape
    hidden = gates // 4
    i, f, g, o = _blocks(act, 4, hidden)
    # grad_pre = [gc * g * i'(.), gc * c_prev * f'(.), gc * i * g'(.), dh * tanh(c) * o'(.)], gc the gradient of c
    factor = 1 - act
    factor *= act  # s (1 - s) for the sigmoid gates
    factor[..., 2 * hidden:3 * hidden] = 1 - g * g
    factor[..., :hidden] *= g
    factor[..., hidden:2 * hidden] *= previous_states(xp, c0, cells, reverse)
    factor[..., 2 * hidden:3 * hidden] *= i
    factor[..., 3 * hidden:] *= tanh_c
    through_h = 1 - tanh_c * tanh_c  # gc = grad_c + dh * o * (1 - tanh(c)^2)
    through_h *= o
    factor4 = factor.reshape(steps, batch, 4, hidden)
    grad_pre = xp.empty_like(act)
    grad_pre4 = grad_pre.reshape(steps, batch, 4, hidden)
    dh = xp.zeros_like(c0) if grad_h is None else grad_h.copy()
    dc = xp.zeros_like(c0) if grad_c is None else grad_c.copy()
    gc = xp.empty_like(dc)
    for t in reversed(time_order(steps, reverse)):
        if grad_out is not None:
            dh += grad_out[t]
        xp.multiply(dh, through_h[t], out=gc)
        gc += dc
        xp.multiply(gc[:, None, :], factor4[t, :, :3], out=grad_pre4[t, :, :3])
        xp.multiply(dh, factor4[t, :, 3], out=grad_pre4[t, :, 3])
        xp.multiply(gc, f[t], out=dc)
        xp.matmul(grad_pre[t], w_hh, out=dh)
    return grad_pre, dh, dc


def _gru_activations(xp, gi, gh, hidden):
    rz = gi[..., :2 * hidden] + gh[..., :2 * hidden]
    rz *= 0.5
    rz = _sigmoid_(xp.tanh(rz, out=rz))
    r, z = rz[..., :hidden], rz[..., hidden:]
    ghn = gh[..., 2 * hidden:]
    return r, z, ghn, xp.tanh(gi[..., 2 * hidden:] + r * ghn)


def gru_cell(xp, gi, gh, h_prev):
    """h of one GRU step (PyTorch's: the reset gate multiplies the recurrent product, bias included):
    r, z = sigmoid(gi_rz + gh_rz), n = tanh(gi_n + r * gh_n), h = (1 - z) * n + z * h_prev."""
    _, z, _, n = _gru_activations(xp, gi, gh, h_prev.shape[-1])
    return n + z * (h_prev - n)


def gru_cell_backward(xp, gi, gh, h_prev, grad_h):
    """``(grad_gi, grad_gh, grad_h_prev)`` of one GRU step from the gradient of h."""
    r, z, ghn, n = _gru_activations(xp, gi, gh, h_prev.shape[-1])
    dan = grad_h * (1 - z) * (1 - n * n)
    drz = xp.concatenate((dan * ghn * r * (1 - r), grad_h * (h_prev - n) * z * (1 - z)), axis=-1)
    return xp.concatenate((drz, dan), axis=-1), xp.concatenate((drz, dan * r), axis=-1), grad_h * z
