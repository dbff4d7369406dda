"""Reference of the fused optimizer steps (PyTorch's update rules), against ``xp``: ``sgd_update``, ``adam_update``,
``rmsprop_update``, ``adagrad_update`` and ``adadelta_update``.

Each takes a parameter group's tensors as lists (params, grads, then one list per state buffer, None for a buffer
the options do not use), updates every param and its buffers in place, only reads the grads (they may be
read-only views), and allocates at most two temporaries of a parameter's size at a time. Hyper-parameters are
Python numbers; a per-tensor fact (SGD's first step, the step count of Adam and Adagrad) is a list. The CUDA
kernels (``kernels/optimizers.cu``) repeat these operations in this order, element by element.
"""
from __future__ import annotations


def _signed_decayed_grad(xp, param, grad, weight_decay, maximize):
    """``(-grad if maximize else grad) + weight_decay * param``; ``grad`` itself when nothing changes it."""
    if weight_decay != 0:
        d = xp.multiply(param, weight_decay)
        return xp.subtract(d, grad, out=d) if maximize else xp.add(d, grad, out=d)
    return xp.negative(grad) if maximize else grad


def _blend_(average, scale, value, value_scale):
    """``average = average * scale + value * value_scale`` in place (``value`` is consumed)."""
    average *= scale
    value *= value_scale
    average += value


def _square(xp, g):
    return xp.multiply(g, g)


def sgd_update(xp, params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov, maximize,
               first_steps):
    """One SGD step. ``momentum_buffers`` (None when momentum is 0): a buffer is set to the gradient where
    ``first_steps`` (a bool per tensor) is true."""
    for k, (param, grad) in enumerate(zip(params, grads)):
        d = _signed_decayed_grad(xp, param, grad, weight_decay, maximize)
        direction, scratch = d, d is not grad
        if momentum != 0:
            buf = momentum_buffers[k]
            if first_steps[k]:
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


def adam_update(xp, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay,
                decoupled, amsgrad, maximize):
    """One Adam step (AdamW when ``decoupled``); ``steps[k]`` is tensor k's step number after incrementing (1 at
    first); ``max_exp_avg_sqs`` is None without AMSGrad."""
    for k, (param, grad, exp_avg, exp_avg_sq) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        if decoupled:
            if weight_decay != 0:
                param *= 1 - lr * weight_decay
            g = xp.negative(grad) if maximize else grad
        else:
            g = _signed_decayed_grad(xp, param, grad, weight_decay, maximize)
        exp_avg *= beta1
        t = xp.multiply(g, 1 - beta1)
        exp_avg += t
        xp.multiply(g, g, out=t)
        _blend_(exp_avg_sq, beta2, t, 1 - beta2)
        if amsgrad:
            second = max_exp_avg_sqs[k]
            xp.maximum(second, exp_avg_sq, out=second)
        else:
            second = exp_avg_sq
        bias_correction1 = 1 - beta1 ** steps[k]
        bias_correction2_sqrt = (1 - beta2 ** steps[k]) ** 0.5
        xp.sqrt(second, out=t)
        t /= bias_correction2_sqrt
        t += eps
        xp.divide(exp_avg, t, out=t)
        t *= lr / bias_correction1
        param -= t


def rmsprop_update(xp, params, grads, square_avgs, grad_avgs, momentum_buffers, lr, alpha, eps, weight_decay,
                   momentum, centered, maximize):
    """One RMSprop step; ``grad_avgs`` is None unless ``centered``, ``momentum_buffers`` None unless momentum > 0."""
    for k, (param, grad, square_avg) in enumerate(zip(params, grads, square_avgs)):
        g = _signed_decayed_grad(xp, param, grad, weight_decay, maximize)
        _blend_(square_avg, alpha, _square(xp, g), 1 - alpha)
        if centered:
            grad_avg = grad_avgs[k]
            t = xp.subtract(g, grad_avg)
            t *= 1 - alpha
            grad_avg += t
            xp.multiply(grad_avg, grad_avg, out=t)
            avg = xp.subtract(square_avg, t, out=t)
            xp.sqrt(avg, out=avg)
        else:
            avg = xp.sqrt(square_avg)
        avg += eps
        if momentum != 0:
            buf = momentum_buffers[k]
            buf *= momentum
            buf += xp.divide(g, avg, out=avg)
            param -= xp.multiply(buf, lr, out=avg)
        else:
            step = xp.divide(g, avg, out=avg)
            step *= lr
            param -= step


def adagrad_update(xp, params, grads, state_sums, steps, lr, lr_decay, weight_decay, eps, maximize):
    """One Adagrad step; ``steps[k]`` is tensor k's step number after incrementing (its learning-rate decay)."""
    for k, (param, grad, state_sum) in enumerate(zip(params, grads, state_sums)):
        g = _signed_decayed_grad(xp, param, grad, weight_decay, maximize)
        state_sum += _square(xp, g)
        std = xp.sqrt(state_sum)
        std += eps
        step = xp.divide(g, std, out=std)
        step *= lr / (1 + (steps[k] - 1) * lr_decay)
        param -= step


def adadelta_update(xp, params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay, maximize):
    """One Adadelta step."""
    for param, grad, square_avg, acc_delta in zip(params, grads, square_avgs, acc_deltas):
        g = _signed_decayed_grad(xp, param, grad, weight_decay, maximize)
        _blend_(square_avg, rho, _square(xp, g), 1 - rho)
        std = xp.add(square_avg, eps)
        xp.sqrt(std, out=std)
        delta = xp.add(acc_delta, eps)
        xp.sqrt(delta, out=delta)
        delta /= std
        delta *= g
        _blend_(acc_delta, rho, xp.multiply(delta, delta, out=std), 1 - rho)
        param -= xp.multiply(delta, lr, out=delta)
