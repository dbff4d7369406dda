"""CuPy launchers of ``kernels/optimizers.cu``: multi-tensor SGD, Adam/AdamW, RMSprop, Adagrad and Adadelta steps,
one launch per parameter group (per distinct step number where the rule depends on it: practically always one).

A launch gets a table (int64, uploaded to the device; kept for the next step while the same arrays come back) of
the tensors' addresses, sizes and chunk offsets, whose layout ``kernels/optimizers.cu`` describes. Tensors whose
arrays are all float32 with C-contiguous parameter and state are updated by the kernel; the others (float64, a
strided view) by the xp reference (``gpunet.backend.references.optimizers``), which the kernels match bit for
bit. The hyper-parameters are combined on the host in double and rounded to float32 exactly where the
reference's NumPy operations round them.
"""
from __future__ import annotations

import collections
import math

import numpy

from ..references import optimizers as reference
from .common import BLOCK_SIZE, ceil_div

CHUNK = 4096  # elements of one tensor a block updates before taking its next chunk (16 per thread of 256)
_TABLES_KEPT = 16  # uploaded tables kept per process, most recently used first
_tables: collections.OrderedDict = collections.OrderedDict()  # (device, table bytes) -> device table
f32, i32 = numpy.float32, numpy.int32


def _address(array) -> int:
    """The device address of ``array``'s first element (CuPy's ``array.data.ptr``; on the emulated device, where
    device memory is host memory, NumPy's address of it)."""
    memory = array.data
    return memory.ptr if hasattr(memory, "ptr") else array.ctypes.data


def _check_lists(op: str, params, grads, **state) -> None:
    """Errors a kernel cannot raise: lists of different lengths, a gradient of another shape than its parameter."""
    if not isinstance(params, (list, tuple)) or not isinstance(grads, (list, tuple)):
        raise TypeError(f"{op}: params and grads must be lists of arrays (a parameter group), got "
                        f"{type(params).__name__} and {type(grads).__name__}")
    for name, values in (("grads", grads), *state.items()):
        if values is not None and len(values) != len(params):
            raise ValueError(f"{op}: {len(params)} params but {len(values)} {name}; give one per parameter")
    for k, (p, g) in enumerate(zip(params, grads)):
        if g.shape != p.shape:
            raise ValueError(f"{op}: grads[{k}] has shape {tuple(g.shape)} but its parameter has shape "
                             f"{tuple(p.shape)}")


def _on_kernel(backend, lists, k: int) -> bool:
    """Whether tensor ``k`` runs on the kernel: every array float32 and on this device, param and state
    C-contiguous (they are updated in place; a strided gradient is copied)."""
    arrays = [values[k] for values in lists if values is not None]
    if any(a.dtype != numpy.float32 for a in arrays):
        return False
    device = backend.device.index
    for position, a in enumerate(arrays):
        if a.device.id != device:
            raise ValueError(f"optimizer step on {backend.device}: an array of parameter {k} (shape "
                             f"{tuple(a.shape)}) lives on device {a.device.id}; keep a parameter group's "
                             f"parameters, gradients and state on one device")
        if position != 1 and not a.flags.c_contiguous:
            return False
    return True


def host_table(lists, members, chunk: int = CHUNK):
    """The kernels' table (``kernels/optimizers.cu``) of tensors ``members`` (indices) of ``lists`` (params, grads,
    state buffers; None for an unused list) cut into chunks of ``chunk`` elements, as a host int64 array, and its
    number of chunks."""
    sizes = [lists[0][k].size for k in members]
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + ceil_div(size, chunk))
    rows = [_address(values[k]) if values is not None else 0 for values in lists for k in members]
    return numpy.array(rows + sizes + offsets, dtype=numpy.int64), offsets[-1]


def _device_table(backend, lists, members):
    """``host_table`` uploaded to ``backend`` (the same upload again while the same arrays come back)."""
    host, chunks = host_table(lists, members)
    key = (str(backend.device), host.tobytes())
    table = _tables.get(key)
    if table is None:
        table = _tables[key] = backend.asarray(host)
        while len(_tables) > _TABLES_KEPT:
            _tables.popitem(last=False)
    _tables.move_to_end(key)
    return table, chunks


def _multi_tensor(backend, kernel: str, fallback, args: tuple, lists: tuple, scalars, per_tensor=None) -> None:
    """Update the tensors of ``lists`` (params, grads, state buffers in the kernel's order; None for an unused one)
    with ``kernel``, one launch per distinct ``per_tensor[k]`` (None: one launch) with ``scalars(value)`` after
    (table, tensors, chunk); tensors the kernel does not take run ``fallback(xp, *args)`` with every list argument
    cut down to them."""
    xp = backend.xp
    lists = [None if values is None else list(values) for values in lists]
    lists[1] = [xp.ascontiguousarray(g) for g in lists[1]]
    launches, rest = {}, []
    for k, p in enumerate(lists[0]):
        if p.size == 0:
            continue
        if _on_kernel(backend, lists, k):
            launches.setdefault(None if per_tensor is None else per_tensor[k], []).append(k)
        else:
            rest.append(k)
    for value, members in launches.items():
        table, chunks = _device_table(backend, lists, members)
        backend.launch("optimizers", kernel, chunks, BLOCK_SIZE,
                       (table, i32(len(members)), numpy.int64(CHUNK), *scalars(value)))
    if rest:
        fallback(xp, *(_pick(a, rest) if isinstance(a, (list, tuple)) else a for a in args))


def _pick(values, indices) -> list:
    return [values[k] for k in indices]


def check_sgd_update(params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov, maximize,
                     first_steps):
    if momentum != 0 and (momentum_buffers is None or first_steps is None):
        raise ValueError("sgd_update: momentum != 0 needs momentum_buffers and first_steps, one per parameter")
    _check_lists("sgd_update", params, grads, momentum_buffers=momentum_buffers if momentum != 0 else None,
                 first_steps=first_steps if momentum != 0 else None)


def sgd_update(backend, params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov, maximize,
               first_steps):
    use_momentum = momentum != 0
    args = (params, grads, momentum_buffers, lr, momentum, dampening, weight_decay, nesterov, maximize, first_steps)
    _multi_tensor(backend, "sgd_update_f32", reference.sgd_update, args,
                  (params, grads, momentum_buffers if use_momentum else None),
                  lambda first: sgd_scalars(lr, momentum, dampening, weight_decay, nesterov, maximize, first),
                  [bool(f) for f in first_steps] if use_momentum else None)


def sgd_scalars(lr, momentum, dampening, weight_decay, nesterov, maximize, first_step) -> tuple:
    """The SGD kernel's scalar arguments after (table, tensors, chunk)."""
    return (f32(lr), f32(momentum), f32(1 - dampening), f32(weight_decay), i32(momentum != 0), i32(bool(nesterov)),
            i32(bool(maximize)), i32(bool(first_step)))


def check_adam_update(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, eps,
                      weight_decay, decoupled, amsgrad, maximize):
    if amsgrad and max_exp_avg_sqs is None:
        raise ValueError("adam_update: amsgrad=True needs max_exp_avg_sqs, one buffer per parameter")
    _check_lists("adam_update", params, grads, exp_avgs=exp_avgs, exp_avg_sqs=exp_avg_sqs, steps=steps,
                 max_exp_avg_sqs=max_exp_avg_sqs if amsgrad else None)
    for k, step in enumerate(steps):
        if not isinstance(step, (int, numpy.integer)) or step < 1:
            raise ValueError(f"adam_update: steps[{k}] counts from 1 (the step being taken), got {step!r}")


def adam_update(backend, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, eps,
                weight_decay, decoupled, amsgrad, maximize):
    args = (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps, lr, beta1, beta2, eps, weight_decay,
            decoupled, amsgrad, maximize)
    _multi_tensor(backend, "adam_update_f32", reference.adam_update, args,
                  (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs if amsgrad else None),
                  lambda step: adam_scalars(step, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize),
                  [int(s) for s in steps])


def adam_scalars(step, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, maximize) -> tuple:
    """The Adam kernel's scalar arguments after (table, tensors, chunk): the hyper-parameters combined on the host in
    double and rounded to float32 where the reference's NumPy operations round them."""
    param_scale = 1 - lr * weight_decay if decoupled and weight_decay != 0 else 1.0
    l2_decay = 0.0 if decoupled else weight_decay
    bias_correction2_sqrt = math.sqrt(1 - beta2 ** step)
    step_size = lr / (1 - beta1 ** step)
    return (f32(beta1), f32(1 - beta1), f32(beta2), f32(1 - beta2), f32(eps), f32(param_scale), f32(l2_decay),
            f32(bias_correction2_sqrt), f32(step_size), i32(bool(amsgrad)), i32(bool(maximize)))


def check_rmsprop_update(params, grads, square_avgs, grad_avgs, momentum_buffers, lr, alpha, eps, weight_decay,
                         momentum, centered, maximize):
    if centered and grad_avgs is None:
        raise ValueError("rmsprop_update: centered=True needs grad_avgs, one buffer per parameter")
    if momentum != 0 and momentum_buffers is None:
        raise ValueError("rmsprop_update: momentum > 0 needs momentum_buffers, one buffer per parameter")
    _check_lists("rmsprop_update", params, grads, square_avgs=square_avgs, grad_avgs=grad_avgs if centered else None,
                 momentum_buffers=momentum_buffers if momentum != 0 else None)


def rmsprop_update(backend, params, grads, square_avgs, grad_avgs, momentum_buffers, lr, alpha, eps, weight_decay,
                   momentum, centered, maximize):
    scalars = rmsprop_scalars(lr, alpha, eps, weight_decay, momentum, centered, maximize)
    args = (params, grads, square_avgs, grad_avgs, momentum_buffers, lr, alpha, eps, weight_decay, momentum, centered,
            maximize)
    _multi_tensor(backend, "rmsprop_update_f32", reference.rmsprop_update, args,
                  (params, grads, square_avgs, grad_avgs if centered else None,
                   momentum_buffers if momentum != 0 else None), lambda _: scalars)


def rmsprop_scalars(lr, alpha, eps, weight_decay, momentum, centered, maximize) -> tuple:
    """The RMSprop kernel's scalar arguments after (table, tensors, chunk)."""
    return (f32(lr), f32(alpha), f32(1 - alpha), f32(eps), f32(weight_decay), f32(momentum), i32(bool(centered)),
            i32(momentum != 0), i32(bool(maximize)))


def check_adagrad_update(params, grads, state_sums, steps, lr, lr_decay, weight_decay, eps, maximize):
    _check_lists("adagrad_update", params, grads, state_sums=state_sums, steps=steps)


def adagrad_update(backend, params, grads, state_sums, steps, lr, lr_decay, weight_decay, eps, maximize):
    args = (params, grads, state_sums, steps, lr, lr_decay, weight_decay, eps, maximize)
    _multi_tensor(backend, "adagrad_update_f32", reference.adagrad_update, args, (params, grads, state_sums),
                  lambda step: adagrad_scalars(step, lr, lr_decay, weight_decay, eps, maximize),
                  [int(s) for s in steps] if lr_decay != 0 else None)


def adagrad_scalars(step, lr, lr_decay, weight_decay, eps, maximize) -> tuple:
    """The Adagrad kernel's scalar arguments after (table, tensors, chunk): the learning rate of step ``step``
    formed in double as the reference forms it (``step`` None: lr_decay is 0, every step has lr)."""
    clr = lr if step is None else lr / (1 + (step - 1) * lr_decay)
    return f32(clr), f32(weight_decay), f32(eps), i32(bool(maximize))


def check_adadelta_update(params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay, maximize):
    _check_lists("adadelta_update", params, grads, square_avgs=square_avgs, acc_deltas=acc_deltas)


def adadelta_update(backend, params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay, maximize):
    scalars = adadelta_scalars(lr, rho, eps, weight_decay, maximize)
    args = (params, grads, square_avgs, acc_deltas, lr, rho, eps, weight_decay, maximize)
    _multi_tensor(backend, "adadelta_update_f32", reference.adadelta_update, args,
                  (params, grads, square_avgs, acc_deltas), lambda _: scalars)


def adadelta_scalars(lr, rho, eps, weight_decay, maximize) -> tuple:
    """The Adadelta kernel's scalar arguments after (table, tensors, chunk)."""
    return f32(lr), f32(rho), f32(1 - rho), f32(eps), f32(weight_decay), i32(bool(maximize))
