"""CuPy launchers of ``kernels/optimizers.cu``: fused SGD and Adam/AdamW steps, one launch per parameter.

float32 parameters with C-contiguous state launch the kernels; anything else runs the xp reference
(``gpunet.backend.references.optimizers``), which the kernels match bit for bit. The hyper-parameters are
combined on the host in double and rounded to float32 exactly where the reference's NumPy operations round them.
"""
from __future__ import annotations

import math

import numpy

from .. import cupy_backend as _cb  # its helpers (a module reference: cupy_backend imports this mixin)


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


class OptimizerKernels:
    """``sgd_update`` and ``adam_update`` on ``kernels/optimizers.cu`` (mixin of ``CupyBackend``)."""

    def _elementwise_launch(self, kernel: str, n: int, args: tuple) -> None:
        if n:
            self._launch("optimizers", kernel, _cb._ceil_div(n, _cb.BLOCK_SIZE), min(_cb.BLOCK_SIZE, n), args)

    def sgd_update(self, param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize,
                   first_step):
        if momentum != 0 and momentum_buffer is None:
            raise ValueError("sgd_update: momentum != 0 needs a momentum_buffer of the parameter's shape")
        buffer = momentum_buffer if momentum != 0 else None
        if not _on_kernel(param, grad, buffer):
            return _cb._references()["sgd_update"](self.xp, param, grad, momentum_buffer, lr, momentum, dampening,
                                               weight_decay, nesterov, maximize, first_step)
        grad = self.xp.ascontiguousarray(grad)
        f32, n = numpy.float32, numpy.int64(param.size)
        if buffer is None:
            self._elementwise_launch("sgd_update_f32", param.size,
                                     (param, grad, n, f32(lr), f32(weight_decay), numpy.int32(bool(maximize))))
        else:
            self._elementwise_launch("sgd_momentum_update_f32", param.size,
                                     (param, grad, buffer, n, f32(lr), f32(momentum), f32(1 - dampening),
                                      f32(weight_decay), numpy.int32(bool(nesterov)), numpy.int32(bool(maximize)),
                                      numpy.int32(bool(first_step))))

    def adam_update(self, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2, eps,
                    weight_decay, decoupled, amsgrad, maximize):
        if amsgrad and max_exp_avg_sq is None:
            raise ValueError("adam_update: amsgrad=True needs a max_exp_avg_sq buffer of the parameter's shape")
        if not isinstance(step, (int, numpy.integer)) or step < 1:
            raise ValueError(f"adam_update: step counts from 1 (the step being taken), got {step!r}")
        max_sq = max_exp_avg_sq if amsgrad else None
        if not _on_kernel(param, grad, exp_avg, exp_avg_sq, max_sq):
            return _cb._references()["adam_update"](self.xp, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr,
                                                beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize)
        grad = self.xp.ascontiguousarray(grad)
        f32 = numpy.float32
        param_scale = 1 - lr * weight_decay if decoupled and weight_decay != 0 else 1.0
        l2_decay = 0.0 if decoupled else weight_decay
        bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
        step_size = lr / (1 - beta1 ** step)
        scalars = (f32(beta1), f32(1 - beta1), f32(beta2), f32(1 - beta2), f32(eps), f32(param_scale), f32(l2_decay),
                   f32(bias_correction2_sqrt), f32(step_size), numpy.int32(bool(maximize)))
        n = numpy.int64(param.size)
        if max_sq is None:
            self._elementwise_launch("adam_update_f32", param.size, (param, grad, exp_avg, exp_avg_sq, n, *scalars))
        else:
            self._elementwise_launch("adam_amsgrad_update_f32", param.size,
                                     (param, grad, exp_avg, exp_avg_sq, max_sq, n, *scalars))
