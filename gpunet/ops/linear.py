"""The affine map of a Linear layer, y = x W^T + b, as one graph node (PyTorch's weight layout: out x in)."""
from __future__ import annotations

from ..autograd.function import Function
from ..autograd.grad_mode import state as _grad_state
from ..autograd.tensor import Tensor
from .arithmetic import matmul
from .reduction import sum
from .shape import reshape


class Linear(Function):
    def forward(self, backend, x, weight, bias=None):
        y = x @ weight.T
        if bias is not None:
            y += bias
        return y

    def backward(self, gy):
        if not _grad_state.enabled:
            return self._first_order_backward(gy)
        x, weight = self.inputs[0], self.inputs[1]
        need = self.needs_input_grad
        gx = matmul(gy, weight) if need[0] else None
        gw = gb = None
        if need[1] or (len(need) > 2 and need[2]):
            gy2 = reshape(gy, (-1, gy.shape[-1])) if gy.ndim != 2 else gy
            if need[1]:
                x2 = reshape(x, (-1, x.shape[-1])) if x.ndim != 2 else x
                gw = matmul(gy2.T, x2)
            if len(need) > 2 and need[2]:
                gb = sum(gy2, 0)
        return (gx, gw) if len(need) == 2 else (gx, gw, gb)

    def _first_order_backward(self, gy):
        """The same three products on arrays, when the backward itself is not recorded (every training step)."""
        x, weight = self.inputs[0].data, self.inputs[1].data
        backend, need = self.inputs[0].backend, self.needs_input_grad
        g = gy.data
        g2 = g.reshape(-1, g.shape[-1]) if g.ndim != 2 else g
        gx = Tensor(g @ weight, backend) if need[0] else None
        gw = Tensor(g2.T @ (x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x), backend) if need[1] else None
        if len(need) == 2:
            return gx, gw
        return gx, gw, (Tensor(g2.sum(0), backend) if need[2] else None)


def linear(x, weight, bias=None):
    """``x @ weight.T + bias`` for x of shape (..., in_features) and weight of shape (out_features, in_features)."""
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear: input of shape {tuple(x.shape)} does not fit weight of shape {tuple(weight.shape)}: "
            f"the input's last dimension must be in_features = {weight.shape[1]}"
        )
    if x.dtype != weight.dtype:
        raise TypeError(
            f"linear: input has dtype {x.dtype} but the weight has {weight.dtype}; convert the input with "
            f".to(dtype=...) or the layer with .to(dtype=...)"
        )
    if bias is None:
        return Linear().apply(x, weight)
    return Linear().apply(x, weight, bias)
