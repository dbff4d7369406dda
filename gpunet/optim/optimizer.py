"""The optimizer base: parameter groups, per-parameter state, ``zero_grad`` and ``state_dict`` as in PyTorch.

A subclass gives its ``defaults`` (hyper-parameter name -> default), its hyper-parameters' kinds and rules
(``arguments``, ``gpunet.kinds``: every group is checked through them, so a config reads the same ones), and ``_update(group)`` that updates every parameter of the group with a gradient, in place on
the parameter arrays (no graph is recorded), with one fused multi-tensor call per backend (``backend.sgd_update``
and its siblings: one kernel launch for the whole group on CUDA). Hyper-parameters are read from ``param_groups`` at every step, so
schedulers and users can change them between steps.
"""
from __future__ import annotations

import collections
import contextlib
import numpy

from ..autograd.grad_mode import enable_grad, no_grad
from ..autograd.tensor import Tensor
from ..kinds import Arguments, Float

LR = Float(ge=0)  # the learning rate
NON_NEGATIVE = Float(ge=0)  # weight decay, eps, momentum, ...


class Optimizer:
    """Base class of gpunet's optimizers (PyTorch's ``torch.optim.Optimizer`` API)."""

    arguments = Arguments()

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = collections.defaultdict(dict)  # parameter -> {name: Tensor | number}
        self.param_groups = []
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of tensors or of dicts, got a single Tensor; "
                f"wrap it in a list: [tensor]"
            )
        params = list(params)
        if not params:
            raise ValueError(
                f"{type(self).__name__} got an empty parameter list: pass model.parameters() of a model that has "
                f"parameters, or a list of tensors created with requires_grad=True"
            )
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines) + "\n)"

    # ----- groups -------------------------------------------------------------------------------------------------
    def add_param_group(self, param_group: dict):
        """Add a group of parameters with its own hyper-parameters (missing ones take the defaults)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}.add_param_group: expected a dict with a 'params' key, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise KeyError(f"{name}.add_param_group: the group dict has no 'params' key")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(f"{name}: parameters must be given in an ordered collection (a list), not a set")
        params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: params[{i}] is a {type(p).__name__}, not a Tensor")
            if not p.is_leaf:
                raise ValueError(f"{name}: params[{i}] is not a leaf tensor (it was computed from others): "
                                 f"optimize the tensors you created, or .detach().requires_grad_() a copy")
            if p.dtype.kind != "f":
                raise TypeError(f"{name}: params[{i}] has dtype {p.dtype}; only floating-point tensors can be optimized")
        group = dict(param_group, params=params)
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear more than once (in one group or in several groups)")
        self._check(group)
        self.param_groups.append(group)

    def _check(self, group):
        """A ValueError naming the optimizer and the hyper-parameter if ``group`` has one its kind or rules refuse."""
        type(self).arguments.check(type(self).__name__, group)

    # ----- stepping -----------------------------------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True):
        """Clear the gradients of all parameters (to None by default; to zero tensors with set_to_none=False)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                elif p.grad.creator is None and getattr(p.grad.data, "flags", None) is not None \
                        and getattr(p.grad.data.flags, "writeable", True):
                    p.grad.zero_()
                else:  # a gradient with a graph (create_graph=True), or a read-only array: a fresh zero tensor
                    p.grad = Tensor(p.backend.xp.zeros_like(p.grad.data), p.backend)

    def step(self, closure=None):
        """Update every parameter that has a gradient; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                with _device_of(group):  # CuPy's current device must be the parameters' (cuda:N)
                    self._update(group)
        return loss

    def _update(self, group):
        raise NotImplementedError

    def _with_grads(self, group):
        """``[(backend, params)]``: the parameters of ``group`` that have a gradient, by backend in group order, so
        that each backend updates its share in one fused multi-tensor call."""
        shares = {}
        for p in group["params"]:
            if p.grad is not None:
                shares.setdefault(p.backend, []).append(p)
        return list(shares.items())

    def _count_steps(self, params) -> list:
        """Count a step in each parameter's state; their step numbers (1 at the first step)."""
        steps = []
        for p in params:
            state = self.state[p]
            state["step"] = state.get("step", 0) + 1
            steps.append(state["step"])
        return steps

    def _buffers(self, params, key, fill=0.0) -> list:
        """``state[key]`` of each parameter as arrays, created like the parameter filled with ``fill`` when missing."""
        return [self._buffer(self.state[p], key, p, fill) for p in params]

    def _buffer(self, state, key, p, fill=0.0):
        """``state[key]``, created as a tensor like ``p`` filled with ``fill`` when missing."""
        buf = state.get(key)
        if buf is None:
            buf = state[key] = Tensor(p.backend.xp.full(p.shape, fill, dtype=p.dtype), p.backend)
        return buf.data

    # ----- checkpoints --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """``{"state": {index: {name: ndarray | number}}, "param_groups": [{..., "params": [indices]}]}`` as in
        PyTorch, with host (NumPy) copies of every state tensor, so it can be saved without pickle."""
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index[id(p)] = len(index)
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {}
        for p, values in self.state.items():
            state[index[id(p)]] = {k: (v.numpy() if isinstance(v, Tensor) else v) for k, v in values.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict):
        """Restore hyper-parameters and state saved by ``state_dict`` (from this optimizer's class and groups)."""
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the state dict has {len(saved_groups)} parameter groups, "
                             f"this optimizer has {len(self.param_groups)}")
        by_index = {}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: parameter group {i} has {len(saved['params'])} parameters "
                                 f"in the state dict but {len(group['params'])} in this optimizer")
            by_index.update(zip(saved["params"], group["params"]))
        self.state = collections.defaultdict(dict)
        for key, values in state_dict["state"].items():
            p = by_index.get(int(key))
            if p is None:
                raise KeyError(f"{name}.load_state_dict: state for parameter index {key}, which no group has")
            self.state[p] = {k: self._restore(k, v, p) for k, v in values.items()}
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            restored = {k: v for k, v in saved.items() if k != "params"}
            if isinstance(restored.get("betas"), list):
                restored["betas"] = tuple(restored["betas"])
            self.param_groups[i] = dict(restored, params=group["params"])

    @staticmethod
    def _restore(key, value, p):
        if key == "step":
            return int(numpy.asarray(value).item())
        if isinstance(value, (numpy.ndarray, list, tuple)) or hasattr(value, "__array__"):
            host = numpy.array(value, dtype=p.dtype if numpy.asarray(value).dtype.kind == "f" else None, copy=True)
            if host.shape != p.shape:
                raise ValueError(f"state '{key}' has shape {host.shape} but its parameter has shape {tuple(p.shape)}")
            return Tensor(p.backend.asarray(host), p.backend)
        return value


def _device_of(group):
    """The context making the device of ``group``'s parameters current (nothing for an empty group)."""
    params = group["params"]
    return params[0].backend.activate() if params else contextlib.nullcontext()
