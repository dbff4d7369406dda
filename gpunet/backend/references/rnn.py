"""Reference of the recurrent-cell family (fused LSTM and GRU cells), written against ``xp``.

Gate pre-activations keep PyTorch's layout along the last axis: blocks [i | f | g | o] (LSTM) and [r | z | n]
(GRU), each ``hidden`` wide. The backward functions recompute the activations from the pre-activations.
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
