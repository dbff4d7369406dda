"""CuPy launchers of ``kernels/optimizers.cu``: fused SGD and Adam/AdamW steps, one launch per parameter.

float32 parameters with C-contiguous state launch the kernels; anything else runs the xp reference
(``gpunet.backend.references.optimizers``), which the kernels match bit for bit. The hyper-parameters are
combined on the host in double and rounded to float32 exactly where the reference's NumPy operations round them.
"""
from __future__ import annotations

import math

import numpy

from .common import RUN_REFERENCE, launch_per_element


def _on_kernel(param, grad, *state) -> bool:
    """Whether the float32 kernels apply: float32 everywhere, param and state C-contiguous (updated in place)."""
    arrays = (param, grad, *(s for s in state if s is not None))
    if any(a.dtype != numpy.float32 for a in arrays):
        return False
    if grad.shape != param.shape:
        raise ValueError(f"optimizer step: grad has shape {tuple(grad.shape)} but its parameter has shape "
                         f"{tuple(param.shape)}")
    for s in (param, *state):
        if s is not None and (s.shape != param.shape or not s.flags.c_contiguous):
            return False
    return True


def check_sgd_update(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize,
                     first_step):
    if momentum != 0 and momentum_buffer is None:
        raise ValueError("sgd_update: momentum != 0 needs a momentum_buffer of the parameter's shape")


def sgd_update(backend, param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize,
               first_step):
    buffer = momentum_buffer if momentum != 0 else None
    if not _on_kernel(param, grad, buffer):
        return RUN_REFERENCE
    kernel, scalars = sgd_scalars(param.size, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step)
    arrays = (param, backend.xp.ascontiguousarray(grad)) + ((buffer,) if buffer is not None else ())
    launch_per_element(backend, "optimizers", kernel, param.size, arrays + scalars)


def sgd_scalars(n, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step) -> tuple:
    """``(kernel, scalar arguments after the arrays)`` of an SGD step: the momentum kernel when momentum != 0."""
    f32, i32 = numpy.float32, numpy.int32
    if momentum == 0:
        return "sgd_update_f32", (numpy.int64(n), f32(lr), f32(weight_decay), i32(bool(maximize)))
    return "sgd_momentum_update_f32", (numpy.int64(n), f32(lr), f32(momentum), f32(1 - dampening), f32(weight_decay),
                                       i32(bool(nesterov)), i32(bool(maximize)), i32(bool(first_step)))


def check_adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps, weight_decay,
                      decoupled, amsgrad, maximize):
    if amsgrad and max_exp_avg_sq is None:
        raise ValueError("adam_update: amsgrad=True needs a max_exp_avg_sq buffer of the parameter's shape")
    if not isinstance(step, (int, numpy.integer)) or step < 1:
        raise ValueError(f"adam_update: step counts from 1 (the step being taken), got {step!r}")


def adam_update(backend, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps,
                weight_decay, decoupled, amsgrad, maximize):
    max_sq = max_exp_avg_sq if amsgrad else None
    if not _on_kernel(param, grad, exp_avg, exp_avg_sq, max_sq):
        return RUN_REFERENCE
    arrays = (param, backend.xp.ascontiguousarray(grad), exp_avg, exp_avg_sq) + ((max_sq,) if max_sq is not None else ())
    kernel = "adam_update_f32" if max_sq is None else "adam_amsgrad_update_f32"
    scalars = adam_scalars(step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize)
    launch_per_element(backend, "optimizers", kernel, param.size, (*arrays, numpy.int64(param.size), *scalars))


def adam_scalars(step, lr, beta1, beta2, eps, weight_decay, decoupled, maximize) -> tuple:
    """The Adam kernels' scalar arguments after the element count: the hyper-parameters combined on the host in
    double and rounded to float32 where the reference's NumPy operations round them."""
    f32 = numpy.float32
    param_scale = 1 - lr * weight_decay if decoupled and weight_decay != 0 else 1.0
    l2_decay = 0.0 if decoupled else weight_decay
    bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
    step_size = lr / (1 - beta1 ** step)
    return (f32(beta1), f32(1 - beta1), f32(beta2), f32(1 - beta2), f32(eps), f32(param_scale), f32(l2_decay),
            f32(bias_correction2_sqrt), f32(step_size), numpy.int32(bool(maximize)))
