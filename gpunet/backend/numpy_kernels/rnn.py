"""Reference of the recurrent-cell family (fused LSTM and GRU cells), written against ``xp``.

Gate pre-activations keep PyTorch's layout along the last axis: blocks [i | f | g | o] (LSTM) and [r | z | n]
(GRU), each ``hidden`` wide. The backward functions recompute the activations from the pre-activations.
"""
from __future__ import annotations


def _sigmoid(xp, x):
    # exp of -|x| never overflows, and e / (1 + e) keeps tiny values for very negative x
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1, e) / (1 + e)


def _lstm_activations(xp, gates, hidden):
    s = _sigmoid(xp, gates)
    return s[..., :hidden], s[..., hidden:2 * hidden], xp.tanh(gates[..., 2 * hidden:3 * hidden]), s[..., 3 * hidden:]


def lstm_cell(xp, gates, c_prev):
    """``(h, c)`` of one LSTM step: c = f * c_prev + i * g, h = o * tanh(c), from gates (..., 4H), c_prev (..., H)."""
    i, f, g, o = _lstm_activations(xp, gates, c_prev.shape[-1])
    c = f * c_prev + i * g
    return o * xp.tanh(c), c


def lstm_cell_backward(xp, gates, c_prev, grad_h, grad_c):
    """``(grad_gates, grad_c_prev)`` of one LSTM step from the gradients of its outputs h and c."""
    i, f, g, o = _lstm_activations(xp, gates, c_prev.shape[-1])
    tc = xp.tanh(f * c_prev + i * g)
    gc = grad_c + grad_h * o * (1 - tc * tc)
    grad_gates = xp.concatenate((gc * g * i * (1 - i), gc * c_prev * f * (1 - f), gc * i * (1 - g * g),
                                 grad_h * tc * o * (1 - o)), axis=-1)
    return grad_gates, gc * f


def _gru_activations(xp, gi, gh, hidden):
    rz = _sigmoid(xp, gi[..., :2 * hidden] + gh[..., :2 * hidden])
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
