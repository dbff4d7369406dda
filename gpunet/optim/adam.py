"""Adam and AdamW (decoupled weight decay), with AMSGrad, exactly as PyTorch computes them."""
from __future__ import annotations

from ..kinds import Arguments, Bool, Float, ListOf
from .optimizer import LR, NON_NEGATIVE, Optimizer


class Adam(Optimizer):
    """Adam: bias-corrected first and second moment estimates; ``p -= lr * m_hat / (sqrt(v_hat) + eps)``.

    ``weight_decay`` adds ``weight_decay * p`` to the gradient (L2), or with ``decoupled_weight_decay=True``
    multiplies p by ``1 - lr * weight_decay`` before the step (AdamW). ``amsgrad`` uses the running maximum of v.
    """

    arguments = Arguments(lr=LR, betas=ListOf(Float(ge=0, lt=1), length=2), eps=NON_NEGATIVE,
                          weight_decay=NON_NEGATIVE, amsgrad=Bool(), maximize=Bool(), decoupled_weight_decay=Bool())

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay))

    def _update(self, group):
        (beta1, beta2), amsgrad = group["betas"], group["amsgrad"]
        for backend, params in self._with_grads(group):
            steps = self._count_steps(params)
            backend.adam_update([p.data for p in params], [p.grad.data for p in params],
                                self._buffers(params, "exp_avg"), self._buffers(params, "exp_avg_sq"),
                                self._buffers(params, "max_exp_avg_sq") if amsgrad else None, steps, group["lr"],
                                beta1, beta2, group["eps"], group["weight_decay"], group["decoupled_weight_decay"],
                                amsgrad, group["maximize"])


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``p *= 1 - lr * weight_decay`` before each step."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
