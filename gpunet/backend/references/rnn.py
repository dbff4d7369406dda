"""Reference of the recurrent-cell family (fused LSTM and GRU cells), written against ``xp``.

Gate pre-activations keep PyTorch's layout along the last axis: blocks [i | f | g | o] (LSTM) and [r | z | n]
(GRU), each ``hidden`` wide. The cell backward functions recompute the activations from the pre-activations
(the contract of the per-step CUDA kernels). ``lstm_layer`` / ``lstm_layer_backward`` run a whole sequence where
the cell kernels do not launch (the CPU, float64): the activations kept from forward, a few whole-array calls per
step on preallocated buffers in a layout where every gate block is contiguous, and everything that does not
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


def _into(out, results):
    """``results``, each copied into its array of ``out`` (the cells' ``out`` argument: None, or one array or None per
    result) and replaced by it."""
    if out is None:
        return results
    return tuple(r if o is None else _copy(o, r) for o, r in zip(out, results))


def _copy(target, value):
    target[...] = value
    return target


def _with_extra(grad_h, grad_h_extra):
    return grad_h if grad_h_extra is None else grad_h + grad_h_extra


def lstm_cell(xp, gates, c_prev, out=None):
    """``(h, c)`` of one LSTM step: c = f * c_prev + i * g, h = o * tanh(c), from gates (..., 4H), c_prev (..., H).
    ``out``: (h, c) arrays (or None each) to write them into, such as a layer's step slices out[t] and cells[t]."""
    i, f, g, o = _blocks(_lstm_activations(xp, gates, c_prev.shape[-1]), 4, c_prev.shape[-1])
    c = f * c_prev
    c += i * g
    h = xp.tanh(c)
    h *= o
    return _into(out, (h, c))


def lstm_cell_backward(xp, gates, c_prev, grad_h, grad_c, grad_h_extra=None, out=None):
    """``(grad_gates, grad_c_prev)`` of one LSTM step from the gradients of its outputs h (``grad_h``, plus
    ``grad_h_extra`` when given) and c; ``out``: arrays (or None each) to write them into."""
    grad_h = _with_extra(grad_h, grad_h_extra)
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
    return _into(out, (grad_gates, gc * f))


def time_order(steps, reverse):
    """The step indices in the order a layer runs them."""
    return range(steps - 1, -1, -1) if reverse else range(steps)


def previous_states(xp, first, states, reverse):
    """The state entering each step, in time order: ``first``, then ``states`` shifted by one along the run."""
    return xp.concatenate((states[1:], first[None]) if reverse else (first[None], states[:-1]))


GATE_MAJOR_BELOW = 32  # hidden sizes below this run with the gates as rows: (4H, N) per step, not (N, 4H)


class _Layout:
    """How ``lstm_layer`` holds a step's gates and states: batch-major, PyTorch's (N, 4H) and (N, H), or
    gate-major, (4H, N) and (H, N), where every gate block is one contiguous run (for a small hidden size, NumPy's
    per-row overhead on the batch-major slices would dominate). Inputs and outputs keep PyTorch's layout: a
    gate-major state is the transposed view of a batch-major one, and the input projection and the weight
    gradients are batched products that read x and write the gates in the layout wanted, no copies between."""

    def __init__(self, xp, hidden):
        self.xp, self.hidden, self.gate_major = xp, hidden, hidden < GATE_MAJOR_BELOW

    def state(self, a):
        """A (N, H) state (or its gradient) of PyTorch's layout as this layout's view."""
        return a.T if self.gate_major else a

    def along_gates(self, v):
        """A (4H,) vector shaped to broadcast along the gate axis of this layout."""
        return v[:, None] if self.gate_major else v

    def gates_first(self, a):
        """(L, 4, N, H) or (L, 4, H, N) views of (L, ...) gates: block k is ``view[:, k]``."""
        if self.gate_major:
            return a.reshape(a.shape[0], 4, self.hidden, a.shape[-1])
        return self.xp.swapaxes(a.reshape(a.shape[:2] + (4, self.hidden)), 1, 2)

    def project(self, x, w_ih, bias):
        """The input projection of every step, x W_ih^T + bias, as a new (L, ...) gates array."""
        xp = self.xp
        if self.gate_major:
            pre = xp.matmul(w_ih, xp.swapaxes(x, 1, 2))
        else:
            pre = (x.reshape(-1, x.shape[-1]) @ w_ih.T).reshape(x.shape[:2] + (w_ih.shape[0],))
        if bias is not None:
            pre += self.along_gates(bias)
        return pre

    def matmul(self, states, w, out):
        """The recurrent product states @ w^T (batch-major) or w @ states (gate-major), w (4H, H), into ``out``."""
        return self.xp.matmul(w, states, out=out) if self.gate_major else self.xp.matmul(states, w.T, out=out)

    def matmul_back(self, grad_gates, w, out):
        """The transposed product: grad_gates @ w (batch-major) or w^T @ grad_gates (gate-major), into ``out``."""
        if self.gate_major:
            return self.xp.matmul(w.T, grad_gates, out=out)
        return self.xp.matmul(grad_gates, w, out=out)

    def weight_grads(self, grad, x, w_ih, h_prev):
        """(grad_x, grad_w_ih, grad_w_hh, grad_bias) from the gradient of every step's gates."""
        xp = self.xp
        if self.gate_major:  # (L, 4H, N): products per step, summed over the steps
            return (xp.matmul(xp.swapaxes(grad, 1, 2), w_ih), xp.matmul(grad, x).sum(axis=0),
                    xp.matmul(grad, h_prev).sum(axis=0), grad.sum(axis=(0, 2)))
        rows = grad.reshape(-1, grad.shape[-1])  # (L*N, 4H): every step at once
        return ((rows @ w_ih).reshape(x.shape[:2] + (w_ih.shape[1],)), rows.T @ x.reshape(-1, x.shape[-1]),
                rows.T @ h_prev.reshape(-1, h_prev.shape[-1]), rows.sum(axis=0))


def _exp_limit(dtype):
    """The largest argument of exp below overflow, with room: the argument of each sigmoid's exp is clamped to it."""
    return 80.0 if dtype.itemsize <= 4 else 700.0


def lstm_layer(xp, x, w_ih, w_hh, bias, h0, c0, reverse=False, keep=None):
    """One LSTM layer over a sequence: x (L, N, I), PyTorch's w_ih (4H, I), w_hh (4H, H), bias = b_ih + b_hh
    (4H,) or None, h0 and c0 (N, H); steps run backwards with ``reverse``. Returns ``(out, h_n, c_n, saved)``: the
    hidden states of every step (L, N, H), the last hidden and cell states (N, H), and what
    ``lstm_layer_backward`` needs (the gate activations, cell states and their tanh, kept from forward).
    ``keep`` (L, N, 1), 1 at real steps and 0 at skipped (padding) ones, or None: a skipped step outputs 0 and
    carries h and c over unchanged.

    sigmoid(a) = 1 / (1 + exp(-a)) for i, f, o and tanh(g) = 2 sigmoid(2 g) - 1: one exp over all gates (the
    factors -1 and -2 are folded into the weights and bias, exactly); the argument of exp is clamped at
    ``_exp_limit`` (a sigmoid below ~1e-35 in float32, ~1e-304 in float64, is that value instead of 0)."""
    steps, batch = x.shape[:2]
    hidden, dtype = w_hh.shape[1], x.dtype
    layout = _Layout(xp, hidden)
    scale = xp.full(4 * hidden, -1, dtype=dtype)
    scale[2 * hidden:3 * hidden] = -2
    # the activations are computed in place, from the projection with the scales folded into the weights
    act = layout.project(x, w_ih * scale[:, None], None if bias is None else bias * scale)
    w = w_hh * scale[:, None]
    out = xp.empty((steps, batch, hidden), dtype=dtype)
    cells = xp.empty((steps,) + layout.state(out[0]).shape, dtype=dtype)
    tanh_c = xp.empty_like(cells)
    recurrent, ig, limit = xp.empty(act.shape[1:], dtype=dtype), xp.empty_like(cells[0]), _exp_limit(dtype)
    blocks = layout.gates_first(act)
    states = out if keep is None else xp.empty_like(out)  # the carried h: the output except at skipped steps
    h, c = layout.state(h0), layout.state(c0)
    for t in time_order(steps, reverse):
        a = act[t]
        layout.matmul(h, w, recurrent)
        a += recurrent
        xp.minimum(a, limit, out=a)
        xp.exp(a, out=a)
        a += 1
        xp.reciprocal(a, out=a)
        i, f, g, o = blocks[t]
        g *= 2
        g -= 1
        c_t, h_t = cells[t], layout.state(out[t])
        xp.multiply(f, c, out=c_t)
        xp.multiply(i, g, out=ig)
        c_t += ig
        xp.tanh(c_t, out=tanh_c[t])
        xp.multiply(o, tanh_c[t], out=h_t)
        if keep is not None:  # the carried states: previous + k (new - previous); the output: k * new
            k, carried = layout.state(keep[t]), layout.state(states[t])
            c_t -= c
            c_t *= k
            c_t += c
            xp.subtract(h_t, h, out=carried)
            carried *= k
            carried += h
            h_t *= k
            h_t = carried
        h, c = h_t, c_t
    last = 0 if reverse else steps - 1
    c_n = xp.ascontiguousarray(layout.state(cells[last]))
    return out, states[last], c_n, (layout, act, cells, tanh_c, states)


def lstm_layer_backward(xp, saved, x, w_ih, w_hh, h0, c0, grad_out, grad_h, grad_c, reverse=False, keep=None):
    """The gradients ``(grad_x, grad_w_ih, grad_w_hh, grad_bias, grad_h0, grad_c0)`` of ``lstm_layer`` (grad_bias
    that of b_ih and of b_hh alike) from those of its outputs: ``grad_out`` (L, N, H) or None, and of the last
    step's h and c (N, H) or None; ``saved``, x, the weights, h0, c0 and ``keep`` as in forward. Per step only the
    recurrence runs (the gradients flowing back through h and c); every factor that needs no gradient is formed
    once for all steps, and the weight gradients once at the end."""
    layout, act, cells, tanh_c, states = saved
    i, f, g, o = xp.moveaxis(layout.gates_first(act), 1, 0)
    # grad of the gates = [gc * g * i'(.), gc * c_prev * f'(.), gc * i * g'(.), dh * tanh(c) * o'(.)], gc that of c
    factor = 1 - act
    factor *= act  # s (1 - s) for the sigmoid gates
    factors = layout.gates_first(factor)
    fi, ff, fg, fo = xp.moveaxis(factors, 1, 0)
    xp.multiply(g, g, out=fg)
    xp.subtract(1, fg, out=fg)
    fi *= g
    ff *= previous_states(xp, layout.state(c0), cells, reverse)
    fg *= i
    fo *= tanh_c
    through_h = 1 - tanh_c * tanh_c  # gc = grad_c + dh * o * (1 - tanh(c)^2)
    through_h *= o
    grad = xp.empty_like(act)
    grads = layout.gates_first(grad)
    dh = xp.zeros_like(cells[0]) if grad_h is None else layout.state(grad_h).copy()
    dc = xp.zeros_like(cells[0]) if grad_c is None else layout.state(grad_c).copy()
    gc = xp.empty_like(dc)
    for t in reversed(time_order(act.shape[0], reverse)):
        if keep is not None:  # a skipped step passes the carried states' gradients straight back
            k = layout.state(keep[t])
            skip = 1 - k
            carried_h, carried_c = dh * skip, dc * skip
            dc *= k
        if grad_out is not None:
            dh += layout.state(grad_out[t])
        if keep is not None:
            dh *= k
        xp.multiply(dh, through_h[t], out=gc)
        gc += dc
        xp.multiply(gc, factors[t, :3], out=grads[t, :3])
        xp.multiply(dh, factors[t, 3], out=grads[t, 3])
        xp.multiply(gc, f[t], out=dc)
        layout.matmul_back(grad[t], w_hh, dh)
        if keep is not None:
            dh += carried_h
            dc += carried_c
    h_prev = previous_states(xp, h0, states, reverse)
    return (*layout.weight_grads(grad, x, w_ih, h_prev), xp.ascontiguousarray(layout.state(dh)),
            xp.ascontiguousarray(layout.state(dc)))


def _gru_activations(xp, gi, gh, hidden):
    rz = gi[..., :2 * hidden] + gh[..., :2 * hidden]
    rz *= 0.5
    rz = _sigmoid_(xp.tanh(rz, out=rz))
    r, z = rz[..., :hidden], rz[..., hidden:]
    ghn = gh[..., 2 * hidden:]
    return r, z, ghn, xp.tanh(gi[..., 2 * hidden:] + r * ghn)


def gru_cell(xp, gi, gh, h_prev, out=None):
    """h of one GRU step (PyTorch's: the reset gate multiplies the recurrent product, bias included):
    r, z = sigmoid(gi_rz + gh_rz), n = tanh(gi_n + r * gh_n), h = (1 - z) * n + z * h_prev; written into ``out``
    when given (a layer's step slice out[t])."""
    _, z, _, n = _gru_activations(xp, gi, gh, h_prev.shape[-1])
    return _into((out,), (n + z * (h_prev - n),))[0]


def gru_cell_backward(xp, gi, gh, h_prev, grad_h, grad_h_extra=None, out=None):
    """``(grad_gi, grad_gh, grad_h_prev)`` of one GRU step from the gradient of h (``grad_h``, plus ``grad_h_extra``
    when given); ``out``: arrays (or None each) to write them into."""
    grad_h = _with_extra(grad_h, grad_h_extra)
    r, z, ghn, n = _gru_activations(xp, gi, gh, h_prev.shape[-1])
    dan = grad_h * (1 - z) * (1 - n * n)
    drz = xp.concatenate((dan * ghn * r * (1 - r), grad_h * (h_prev - n) * z * (1 - z)), axis=-1)
    return _into(out, (xp.concatenate((drz, dan), axis=-1), xp.concatenate((drz, dan * r), axis=-1), grad_h * z))
