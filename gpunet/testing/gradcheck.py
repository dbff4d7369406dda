"""Gradient checking: compare autograd's derivatives with central finite differences, in float64.

``gradcheck(fn, inputs)`` checks the full Jacobian of every floating output of ``fn`` with respect to every
input tensor that requires grad; ``gradgradcheck`` does the same for the gradient of ``fn`` (second derivatives,
built with ``gpunet.grad(..., create_graph=True)``). Both follow ``torch.autograd.gradcheck``'s conventions:
an element passes when ``|analytical - numerical| <= atol + rtol * |numerical|``.
"""
from __future__ import annotations

import numpy

from ..autograd import Tensor, enable_grad, grad


class GradcheckError(RuntimeError):
    """Autograd's derivative of a function disagrees with its finite-difference derivative."""


def _as_tuple(values):
    return tuple(values) if isinstance(values, (tuple, list)) else (values,)


def _differentiable(inputs):
    """Indices of the inputs to differentiate: tensors that require grad, which must be float64."""
    indices = []
    for i, x in enumerate(inputs):
        if not (isinstance(x, Tensor) and x.requires_grad):
            continue
        if x.dtype != numpy.float64:
            raise TypeError(
                f"gradcheck: inputs[{i}] has dtype {x.dtype}; finite differences need float64 to be accurate: "
                f"pass x.double() (or create it with dtype=gpunet.float64)"
            )
        indices.append(i)
    if not indices:
        raise ValueError("gradcheck: no input requires grad; create the inputs to check with requires_grad=True")
    return indices


def _outputs(fn, inputs):
    outputs = _as_tuple(fn(*inputs))
    for k, out in enumerate(outputs):
        if not isinstance(out, Tensor):
            raise TypeError(f"gradcheck: output {k} of {_name(fn)} is a {type(out).__name__}, not a Tensor")
    return outputs


def _name(fn):
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _numerical(fn, inputs, wrt, eps):
    """jac[k][i]: (output k elements, input i elements) from central differences, inputs perturbed in place."""
    outputs = _outputs(fn, inputs)
    jac = [[numpy.zeros((out.numel(), inputs[i].numel())) for i in wrt] for out in outputs]
    for col, i in enumerate(wrt):
        x = inputs[i]
        if not getattr(x.data.flags, "writeable", True):  # a broadcast view: perturb a private copy instead
            x.data = x.data.copy()
        for flat in range(x.numel()):
            idx = numpy.unravel_index(flat, x.shape)
            original = x.data[idx].copy()
            x.data[idx] = original + eps
            plus = [out.numpy().astype(numpy.float64).ravel() for out in _outputs(fn, inputs)]
            x.data[idx] = original - eps
            minus = [out.numpy().astype(numpy.float64).ravel() for out in _outputs(fn, inputs)]
            x.data[idx] = original
            for k in range(len(outputs)):
                jac[k][col][:, flat] = (plus[k] - minus[k]) / (2 * eps)
    return outputs, jac


def _analytical(outputs, inputs, wrt):
    """jac[k][i] from one reverse pass per output element (one-hot grad_outputs)."""
    targets = [inputs[i] for i in wrt]
    jac = []
    for k, out in enumerate(outputs):
        rows = [numpy.zeros((out.numel(), inputs[i].numel())) for i in wrt]
        jac.append(rows)
        if out.dtype.kind != "f" or not out.requires_grad:
            continue  # no path to any input: the analytical Jacobian is zero
        for m in range(out.numel()):
            onehot = numpy.zeros(out.numel(), dtype=out.dtype)
            onehot[m] = 1
            seed = Tensor(out.backend.asarray(onehot.reshape(out.shape)), out.backend)
            grads = grad([out], targets, [seed], retain_graph=True, allow_unused=True)
            for col, (i, g) in enumerate(zip(wrt, grads)):
                if g is None:
                    continue
                if g.shape != inputs[i].shape or g.dtype != inputs[i].dtype:
                    raise GradcheckError(
                        f"gradcheck: the gradient for inputs[{i}] has shape {tuple(g.shape)} and dtype {g.dtype}, "
                        f"but the input has shape {tuple(inputs[i].shape)} and dtype {inputs[i].dtype}"
                    )
                rows[col][m] = g.numpy().ravel()
    return jac


def _compare(fn, outputs, inputs, wrt, numerical, analytical, atol, rtol, what):
    for k, out in enumerate(outputs):
        for col, i in enumerate(wrt):
            n, a = numerical[k][col], analytical[k][col]
            excess = numpy.abs(a - n) - (atol + rtol * numpy.abs(n))
            bad = ~(excess <= 0)  # NaN counts as a failure
            if not bad.any():
                continue
            score = numpy.where(bad, numpy.nan_to_num(excess, nan=numpy.inf), -numpy.inf)
            row, column = numpy.unravel_index(int(numpy.argmax(score)), n.shape)
            out_idx = numpy.unravel_index(row, out.shape) if out.ndim else ()
            in_idx = numpy.unravel_index(column, inputs[i].shape) if inputs[i].ndim else ()
            op = f" (last op {type(out.creator).__name__})" if out.creator is not None else ""
            return (
                f"{what} failed for {_name(fn)}{op}: Jacobian of output {k} (shape {tuple(out.shape)}) with "
                f"respect to inputs[{i}] (shape {tuple(inputs[i].shape)}) differs in {int(bad.sum())} of {bad.size} "
                f"elements; worst at output{list(map(int, out_idx))} / input{list(map(int, in_idx))}: "
                f"numerical {float(n[row, column]):.10g}, analytical {float(a[row, column]):.10g} "
                f"(atol={atol}, rtol={rtol})\n"
                f"numerical Jacobian:\n{n}\nanalytical Jacobian:\n{a}"
            )
    return None


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Check autograd's gradients of ``fn(*inputs)`` against central finite differences.

    ``inputs`` is a tensor or a tuple; those with ``requires_grad=True`` (float64) are checked, other values are
    passed through. Returns True, or on a mismatch raises GradcheckError (or returns False when
    ``raise_exception`` is false) naming the function, the output, the input and the worst element.
    """
    return _check(fn, _as_tuple(inputs), eps, atol, rtol, raise_exception, "gradcheck")


def _check(fn, inputs, eps, atol, rtol, raise_exception, what):
    wrt = _differentiable(inputs)
    with enable_grad():
        outputs, numerical = _numerical(fn, inputs, wrt, eps)
        analytical = _analytical(outputs, inputs, wrt)
    message = _compare(fn, outputs, inputs, wrt, numerical, analytical, atol, rtol, what)
    if message is None:
        return True
    if raise_exception:
        raise GradcheckError(message)
    return False


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """Check second derivatives: gradcheck of ``(inputs, grad_outputs) -> grad(fn(inputs), inputs, grad_outputs)``.

    ``grad_outputs`` default to random float64 tensors (drawn with ``seed``) shaped like the outputs; they are
    differentiated too, as in PyTorch.
    """
    inputs = _as_tuple(inputs)
    wrt = _differentiable(inputs)
    with enable_grad():
        outputs = [out for out in _outputs(fn, inputs) if out.dtype.kind == "f"]
    if grad_outputs is None:
        rng = numpy.random.default_rng(seed)
        grad_outputs = tuple(
            Tensor(out.backend.asarray(rng.standard_normal(out.shape)), out.backend, requires_grad=True)
            for out in outputs
        )
    grad_outputs = _as_tuple(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"gradgradcheck: got {len(grad_outputs)} grad_outputs for {len(outputs)} floating outputs")
    n = len(inputs)

    def first_derivatives(*args):
        ins, seeds = args[:n], args[n:]
        outs = [out for out in _outputs(fn, ins) if out.dtype.kind == "f"]
        live = [j for j, out in enumerate(outs) if out.requires_grad]
        grads = [None] * len(wrt)
        if live:
            grads = grad([outs[j] for j in live], [ins[i] for i in wrt], [seeds[j] for j in live],
                         create_graph=True, allow_unused=True)
        return tuple(g if g is not None else Tensor(ins[i].backend.xp.zeros(ins[i].shape), ins[i].backend)
                     for i, g in zip(wrt, grads))

    first_derivatives.__qualname__ = f"grad of {_name(fn)}"
    return _check(first_derivatives, inputs + grad_outputs, eps, atol, rtol, raise_exception, "gradgradcheck")
