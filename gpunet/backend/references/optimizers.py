"""Reference of the fused optimizer steps, ``sgd_update`` and ``adam_update`` (PyTorch's update rules), against ``xp``.

Each updates ``param`` and its state buffers in place, only reads ``grad`` (it may be a read-only view), and
allocates at most two temporaries of the parameter's size. Hyper-parameters are Python numbers.
"""
from __future__ import annotations


def _signed_decayed_grad(xp, param, grad, weight_decay, maximize):
    """``(-grad if maximize else grad) + weight_decay * param``; ``grad`` itself when nothing changes it."""
    if weight_decay != 0:
        d = xp.multiply(param, weight_decay)
        return xp.subtract(d, grad, out=d) if maximize else xp.add(d, grad, out=d)
    return xp.negative(grad) if maximize else grad


def sgd_update(xp, param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize,
               first_step):
    """One SGD step. ``momentum_buffer`` (None when momentum is 0) is set to the gradient on ``first_step``."""
    d = _signed_decayed_grad(xp, param, grad, weight_decay, maximize)
    direction, scratch = d, d is not grad
    if momentum != 0:
        buf = momentum_buffer
        if first_step:
            buf[...] = d
        else:
            buf *= momentum
            buf += d if dampening == 0 else xp.multiply(d, 1 - dampening)
        if nesterov:
            direction = xp.multiply(buf, momentum)
            direction += d
            scratch = True
        else:
            direction, scratch = buf, False
    if scratch:
        direction *= lr
        param -= direction
    else:
        param -= xp.multiply(direction, lr)


def adam_update(xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                decoupled, amsgrad, maximize):
    """One Adam step (AdamW when ``decoupled``); ``step`` is the step number after incrementing (1 at first)."""
    if decoupled:
        if weight_decay != 0:
            param *= 1 - lr * weight_decay
        g = xp.negative(grad) if maximize else grad
    else:
        g = _signed_decayed_grad(xp, param, grad, weight_decay, maximize)
    exp_avg *= beta1
    t = xp.multiply(g, 1 - beta1)
    exp_avg += t
    exp_avg_sq *= beta2
    xp.multiply(g, g, out=t)
    t *= 1 - beta2
    exp_avg_sq += t
    if amsgrad:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        second = max_exp_avg_sq
    else:
        second = exp_avg_sq
    bias_correction1 = 1 - beta1 ** step
    bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
    xp.sqrt(second, out=t)
    t /= bias_correction2_sqrt
    t += eps
    xp.divide(exp_avg, t, out=t)
    t *= lr / bias_correction1
    param -= t
