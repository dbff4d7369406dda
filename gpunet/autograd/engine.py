"""Reverse-mode differentiation over the recorded graph: ``backward`` and ``grad``.

Nodes run in decreasing generation order, so each node's output gradients are complete before its backward; nodes
of one generation run latest-created first (as PyTorch's sequence numbers), so the order in which gradients are
summed, and with it every last bit of the result, is the same in every run.
With ``create_graph`` the backward formulas are themselves recorded, which gives higher-order derivatives.
``register_gradient_ready_hook`` calls a function as soon as a leaf's ``.grad`` is final in a ``backward`` (every
node that feeds it has run), as data-parallel training starts a bucket's all-reduce while backward goes on.
"""
from __future__ import annotations

import heapq

from .grad_mode import set_grad_enabled


_READY_HOOKS: dict = {}


class RemovableHandle:
    """Returned by ``register_gradient_ready_hook``; ``remove()`` unregisters the hook (PyTorch's name)."""

    def __init__(self, key):
        self.key = key

    def remove(self) -> None:
        _READY_HOOKS.pop(self.key, None)


def register_gradient_ready_hook(hook) -> RemovableHandle:
    """Call ``hook(leaf)`` in every ``backward`` (not ``grad``) once the ``.grad`` of ``leaf`` (a tensor that requires
    grad) is final: every node of the graph that takes it as input has run. Hooks run in registration order."""
    key = object()
    _READY_HOOKS[key] = hook
    return RemovableHandle(key)


def _leaf_uses(outputs) -> dict:
    """{id(leaf): number of graph edges into it} over the nodes reachable from ``outputs`` (leaves requiring grad)."""
    uses, seen = {}, set()
    stack = [o.creator for o in outputs if o.creator is not None]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for x in node.inputs:
            if x.creator is not None:
                stack.append(x.creator)
            elif x.requires_grad:
                uses[id(x)] = uses.get(id(x), 0) + 1
    return uses


def _seed_gradients(outputs, grad_outputs):
    from .. import ops

    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"got {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    seeds = []
    for out, g in zip(outputs, grad_outputs):
        if g is None:
            if out.data.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for a single-element output; this output has shape "
                    f"{tuple(out.shape)}: pass grad_outputs (or .backward(gradient)) of that shape"
                )
            g = ops.ones_like(out)
        else:
            g = ops.as_tensor(g, like=out)
            if g.shape != out.shape:
                raise ValueError(f"grad_output has shape {tuple(g.shape)} but the output has shape {tuple(out.shape)}")
        seeds.append(g)
    return seeds


def _needed_nodes(outputs, targets):
    """The nodes from which some target tensor can be reached (only these need to run)."""
    target_leaves = {id(t) for t in targets if t.creator is None}
    target_nodes = {id(t.creator) for t in targets if t.creator is not None}
    needed: dict = {}
    stack = [o.creator for o in outputs if o.creator is not None]
    while stack:
        node = stack[-1]
        if id(node) in needed:
            stack.pop()
            continue
        pending = [x.creator for x in node.inputs if x.creator is not None and id(x.creator) not in needed]
        if pending:
            stack.extend(pending)
            continue
        stack.pop()
        needed[id(node)] = id(node) in target_nodes or any(
            id(x) in target_leaves if x.creator is None else needed[id(x.creator)] for x in node.inputs
        )
    return {k for k, v in needed.items() if v}


RELEASED_MESSAGE = (
    "Trying to backward through the graph a second time (or directly access saved tensors after they have already "
    "been freed). Saved intermediate values of the graph are freed when you call .backward() or autograd.grad(). "
    "Specify retain_graph=True if you need to backward through the graph a second time or if you need to access "
    "saved tensors after calling backward."
)


def run_backward(outputs, grad_outputs, create_graph, targets=None, retain_graph=None):
    """Propagate gradients from ``outputs``; return {target key: grad} for ``targets``, else accumulate into leaves.

    Unless ``retain_graph`` (default: ``create_graph``), every node run is released, as PyTorch frees the graph:
    a second pass through it raises."""
    from .. import ops

    seeds = _seed_gradients(outputs, grad_outputs)
    retain = create_graph if retain_graph is None else retain_graph
    needed = None if targets is None else _needed_nodes(outputs, targets)
    captured = {}
    hooks = list(_READY_HOOKS.values()) if targets is None else []
    uses = _leaf_uses(outputs) if hooks else {}

    def used(leaf):  # one edge into ``leaf`` done: when it was the last, its gradient is final
        left = uses[id(leaf)] = uses[id(leaf)] - 1
        if left == 0:
            for hook in hooks:
                hook(leaf)

    if targets is not None:
        keys = {_key(t) for t in targets}

    pending: dict = {}  # node -> gradients of its outputs so far
    heap: list = []  # nodes with a gradient, to run latest generation first

    def deliver(tensor, g):
        creator = tensor.creator
        if creator is None:
            if not tensor.requires_grad:
                return
            if targets is None:
                if tensor.grad is not None:
                    tensor.grad = ops.add(tensor.grad, g)
                else:  # the leaf owns its .grad: a writable array shared with no other tensor
                    tensor.grad = g if create_graph else type(g)(g.data.copy(), g.backend)
            elif id(tensor) in keys:
                k = id(tensor)
                captured[k] = g if k not in captured else ops.add(captured[k], g)
            return
        if needed is not None and id(creator) not in needed:
            return
        slots = pending.get(creator)
        if slots is None:
            n = len(creator.outputs_data) if type(creator.outputs_data) is tuple else 1
            slots = pending[creator] = [None] * n
            heapq.heappush(heap, (-creator.generation, -creator.sequence, creator))
        i = tensor.output_index
        slots[i] = g if slots[i] is None else ops.add(slots[i], g)

    with set_grad_enabled(create_graph), outputs[0].backend.activate():  # CuPy works on the current device
        for out, g in zip(outputs, seeds):
            if not (out.requires_grad or out.creator is not None):
                raise RuntimeError("element 0 of tensors does not require grad and does not have a grad_fn")
            deliver(out, g)
            if hooks and out.creator is None and out.requires_grad and id(out) not in uses:
                uses[id(out)] = 1
                used(out)
        while heap:
            node = heapq.heappop(heap)[2]
            grads = pending.pop(node)
            if node.released:
                raise RuntimeError(RELEASED_MESSAGE)
            if targets is not None:
                for i, g in enumerate(grads):
                    if (id(node), i) in keys and g is not None:
                        captured[(id(node), i)] = g
            input_grads = node.backward(*grads)
            if not retain:
                node.released = True
            if type(input_grads) is not tuple:
                input_grads = (input_grads,)
            for x, gx, need in zip(node.inputs, input_grads, node.needs_input_grad):
                if need and gx is not None:
                    if gx.data.shape != x.data.shape:
                        raise RuntimeError(
                            f"internal error: {type(node).__name__}.backward gave a gradient of shape "
                            f"{tuple(gx.shape)} for an input of shape {tuple(x.shape)}"
                        )
                    deliver(x, gx)
                if hooks and x.creator is None and x.requires_grad:
                    used(x)
    return captured


def _key(t):
    return id(t) if t.creator is None else (id(t.creator), t.output_index)


def backward(outputs, grad_outputs=None, retain_graph=None, create_graph=False):
    """Accumulate gradients of ``outputs`` into the ``.grad`` of every leaf that requires grad."""
    run_backward(list(outputs), grad_outputs, create_graph, retain_graph=retain_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned as a tuple (leaves' ``.grad`` untouched)."""
    from .tensor import Tensor

    single_out = isinstance(outputs, Tensor)
    outputs = [outputs] if single_out else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    for i, x in enumerate(inputs):
        if not x.requires_grad:
            raise RuntimeError(f"inputs[{i}] does not require grad: create it with requires_grad=True")
    captured = run_backward(outputs, grad_outputs, create_graph, targets=inputs, retain_graph=retain_graph)
    result = []
    for i, x in enumerate(inputs):
        g = captured.get(_key(x))
        if g is None and not allow_unused:
            raise RuntimeError(
                f"inputs[{i}] was not used to compute the outputs; pass allow_unused=True to get None for it"
            )
        if g is not None and not create_graph:
            g = g.detach()
        result.append(g)
    return tuple(result)
