"""Automatic differentiation: the Tensor, the graph nodes (Function) and the engine that walks them back."""
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .function import DeviceMismatchError, Function
from .tensor import Tensor
from .engine import backward, grad

__all__ = ["Tensor", "Function", "DeviceMismatchError", "backward", "grad", "no_grad", "enable_grad",
           "is_grad_enabled", "set_grad_enabled"]
