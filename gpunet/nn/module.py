"""Module: the base class of layers and networks, with PyTorch's registration, traversal and state_dict rules."""
from __future__ import annotations

from collections import OrderedDict

import numpy

from .. import backend as _backend
from ..autograd.tensor import Tensor
from .parameter import Parameter


class Module:
    """Base class of every layer and network.

    Assigning a ``Parameter`` or a ``Module`` to an attribute registers it; ``register_buffer`` registers
    state that is not learned (saved in ``state_dict`` when persistent). Subclasses define ``forward``.
    """

    def __init__(self):
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "_modules", OrderedDict())

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward(); define forward(self, ...) in the subclass")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ----- registration ---------------------------------------------------------------------------------------
    def _check_initialised(self, name):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {name!r} before Module.__init__() call: call super().__init__() first in "
                f"{type(self).__name__}.__init__"
            )

    def __setattr__(self, name, value):
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._check_initialised(name)
            self._forget(name, "_parameters")
            params[name] = value
        elif isinstance(value, Module):
            self._check_initialised(name)
            self._forget(name, "_modules")
            self._modules[name] = value
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} (a Parameter or None is required); "
                    f"wrap it as gpunet.nn.Parameter(...)"
                )
            params[name] = None
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} (a Module or None is required)")
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (a Tensor or None is required)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name, keep):
        """Drop ``name`` from the instance dict and the registries other than ``keep`` (which keeps its order)."""
        self.__dict__.pop(name, None)
        for registry in ("_parameters", "_modules", "_buffers"):
            if registry != keep:
                getattr(self, registry).pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name):
        """Parameters, buffers and children (reached only when ordinary lookup fails: every ``self.weight``)."""
        d = self.__dict__
        if "_parameters" in d:  # else Module.__init__ has not run yet
            for registry in (d["_parameters"], d["_buffers"], d["_modules"]):
                if name in registry:
                    return registry[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    def register_parameter(self, name: str, param) -> None:
        """Register ``param`` (a Parameter or None) under ``name``."""
        self._register("register_parameter", "_parameters", name, param, Parameter, "a gpunet.nn.Parameter")

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register ``tensor`` (a Tensor or None) as state that is not learned; persistent ones go in state_dict."""
        self._register("register_buffer", "_buffers", name, tensor, Tensor, "a Tensor")
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module) -> None:
        """Register ``module`` (a Module or None) as a child under ``name``."""
        self._register("add_module", "_modules", name, module, Module, "a Module")

    register_module = add_module

    def _register(self, method: str, registry: str, name, value, kind: type, kind_text: str) -> None:
        """Store ``value`` (a ``kind`` or None) under ``name`` in ``registry`` (and nowhere else), after checking
        both; errors name ``method``."""
        self._check_name(name, registry[1:-1])  # "_buffers" -> "buffer"
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"{method}: {name!r} must be {kind_text} or None, got {type(value).__name__}")
        self._forget(name, registry)
        getattr(self, registry)[name] = value

    def _check_name(self, name, kind):
        self._check_initialised(name)
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"{kind} name must be a non-empty string without '.', got {name!r}")
        if name in self.__dict__ or (hasattr(type(self), name) and name not in self._registered_names()):
            raise KeyError(f"attribute {name!r} already exists on {type(self).__name__}; choose another {kind} name")

    def _registered_names(self):
        return set(self._parameters) | set(self._buffers) | set(self._modules)

    # ----- traversal ------------------------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """(qualified name, module) for this module and every descendant, depth first, each module once."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def _named_members(self, registry, prefix, recurse, remove_duplicate=True):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(qualified name such as 'fc1.weight', parameter) pairs; a shared parameter appears once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def get_submodule(self, target: str):
        """The descendant named by a dotted path such as 'encoder.0'."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (looking up {target!r})")
            module = child
        return module

    # ----- state ----------------------------------------------------------------------------------------------
    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False):
        """Parameters and persistent buffers as NumPy copies, keyed as in PyTorch ('0.weight', 'fc1.bias')."""
        if destination is None:
            destination = OrderedDict()
        for name, param in self._parameters.items():
            if param is not None:
                destination[prefix + name] = param if keep_vars else param.numpy()
        for name, buf in self._buffers.items():
            if buf is not None and name not in self._non_persistent_buffers:
                destination[prefix + name] = buf if keep_vars else buf.numpy()
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy arrays (NumPy or Tensors) into the existing parameters and buffers, keeping their dtype and device.

        With ``strict`` a missing or unexpected key is an error; a shape mismatch always is. Returns
        ``(missing_keys, unexpected_keys)`` as a named tuple.
        """
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(repr(k) for k in unexpected))
        arrays = {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            host = value.numpy() if isinstance(value, Tensor) else numpy.asarray(value)
            if host.shape != tuple(target.shape):
                problems.append(
                    f"size mismatch for {key!r}: the checkpoint has shape {host.shape}, "
                    f"the module has {tuple(target.shape)}"
                )
            arrays[key] = host
        if problems:
            raise RuntimeError(f"error(s) in loading state_dict for {type(self).__name__}:\n  " + "\n  ".join(problems))
        for key, host in arrays.items():
            target = own[key]
            target.data[...] = target.backend.asarray(host.astype(target.dtype, copy=False))
        return _IncompatibleKeys(missing, unexpected)

    # ----- modes, devices, gradients --------------------------------------------------------------------------
    def train(self, mode: bool = True):
        """Set training mode (dropout active) on this module and its descendants; returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: mode must be a bool, got {mode!r}")
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self):
        """Evaluation mode (dropout off); the same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        for param in self.parameters():
            param.requires_grad = requires_grad
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter (to None, or to zeros in place)."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                param.grad = Tensor(param.grad.backend.xp.zeros_like(param.grad.data), param.grad.backend)

    def to(self, device=None, dtype=None):
        """Move parameters and buffers to ``device`` and/or cast floating ones to ``dtype``, in place.

        The Parameter objects stay the same, so an optimizer built earlier keeps updating them.
        ``module.to(gpunet.float64)`` is read as a dtype, ``module.to('cuda')`` as a device.
        """
        if device is not None and not isinstance(device, (str, _backend.Device)):
            device, dtype = None, device if dtype is None else dtype
        target = None if device is None else _backend.get_backend(device)
        dtype = None if dtype is None else numpy.dtype(dtype)
        if dtype is not None and dtype.kind not in "fc":
            raise TypeError(f"Module.to: dtype must be a floating-point type, got {dtype}")
        for tensor in list(self.parameters()) + list(self.buffers()):
            _move(tensor, target, dtype)
            if tensor.grad is not None:
                _move(tensor.grad, target, dtype)
        return self

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device: int = 0):
        return self.to(f"cuda:{device}")

    def float(self):
        return self.to(dtype=numpy.float32)

    def double(self):
        return self.to(dtype=numpy.float64)

    def apply(self, fn):
        """Call ``fn(module)`` on every descendant, then on this module (as for custom initialisation)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ----- printing -------------------------------------------------------------------------------------------
    def summary(self, input_shape, batch_size=None, dtype="float32", device=None, print_fn=print):
        """Print the Keras-style layer table for inputs of ``input_shape`` (one sample, no batch axis) and return it.

        One row per layer: output shape, parameter count and the implementation that runs it, then the trainable
        and non-trainable totals. ``print_fn`` receives the table as one string (``None``: print nothing). The
        returned ``gpunet.nn.summary.ModelSummary`` has ``rows``, the totals and ``to_dict()``; ``str()`` of it is
        the table. ``batch_size``, ``dtype`` and ``device`` are those of ``gpunet.nn.summary.summary``.
        """
        from .summary import summary  # summary.py imports Module

        result = summary(self, input_shape, batch_size=batch_size, dtype=dtype, device=device)
        if print_fn is not None:
            print_fn(str(result))
        return result

    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr``; layers override it."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        lines = [line for line in self.extra_repr().split("\n") if line]
        for name, child in self._modules.items():
            text = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {text}")
        if not self._modules and len(lines) <= 1:
            return f"{self._get_name()}({lines[0] if lines else ''})"
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"


def _move(tensor, target, dtype):
    array = tensor.data
    if dtype is not None and array.dtype.kind == "f" and array.dtype != dtype:
        array = array.astype(dtype)
    if target is not None and target is not tensor.backend:
        array = target.asarray(tensor.backend.to_numpy(array))
        tensor.backend = target
    tensor.data = array


class _IncompatibleKeys(tuple):
    """``(missing_keys, unexpected_keys)`` returned by ``load_state_dict``."""

    def __new__(cls, missing_keys, unexpected_keys):
        return super().__new__(cls, (missing_keys, unexpected_keys))

    @property
    def missing_keys(self):
        return self[0]

    @property
    def unexpected_keys(self):
        return self[1]

    def __repr__(self):
        if not self[0] and not self[1]:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self[0]}, unexpected_keys={self[1]})"

