"""Every differentiable op: forward against float64 NumPy and PyTorch, gradients against PyTorch, and gradcheck plus
gradgradcheck, on random shapes (with broadcasting) drawn by hypothesis and inputs whose data is contiguous,
transposed or a strided slice."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gpunet as gn
from core_helpers import LAYOUTS, as_list, leaf, shapes, torch_leaf, values
from gpunet.testing import assert_close, gradcheck, gradgradcheck


def convert(M, array):
    """An index or condition array in the form module ``M`` takes (a gpunet tensor, a torch tensor, or NumPy)."""
    if M is gn:
        return gn.tensor(array)
    if M is torch:
        return torch.as_tensor(array)
    return array


@dataclass
class Case:
    name: str
    gen: Callable  # (draw, rng) -> (arrays, params)
    fn: Callable  # fn(M, *inputs, **params) for M = gpunet (and torch and NumPy unless overridden)
    ref: Callable | None = None  # float64 NumPy reference ref(*arrays, **params); default fn(np, ...)
    torch_fn: Callable | None = None  # default fn(torch, ...); False: PyTorch lacks the operation

    def reference(self, arrays, params):
        return self.ref(*arrays, **params) if self.ref else self.fn(np, *arrays, **params)

    def torch(self, tensors, params):
        return self.torch_fn(*tensors, **params) if self.torch_fn else self.fn(torch, *tensors, **params)


# ----- input generators ---------------------------------------------------------------------------------------
def unary(domain="any", min_dims=0, max_dims=3, **fixed):
    def gen(draw, rng):
        return [values(rng, draw(shapes(min_dims, max_dims)), domain)], dict(fixed)
    return gen


def binary(domain_a="any", domain_b="any"):
    def gen(draw, rng):
        sa, sb = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3)).input_shapes
        return [values(rng, sa, domain_a), values(rng, sb, domain_b)], {}
    return gen


def with_dim(domain="any", min_dims=1, dims="int", keepdim=True, min_side=1):
    """One array and a reduction dimension (an int, or also None and tuples when ``dims`` is "any")."""
    def gen(draw, rng):
        shape = draw(shapes(min_dims, 3).map(lambda s: tuple(max(n, min_side) for n in s)))
        nd = len(shape)
        choices = [st.integers(-nd, nd - 1)] if nd else []
        if dims == "any":
            choices += [st.none(), st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True).map(tuple)] \
                if nd else [st.none()]
        params = {"dim": draw(st.one_of(*choices))}
        if keepdim:
            params["keepdim"] = draw(st.booleans())
        return [values(rng, shape, domain)], params
    return gen


def matmul_shapes(draw, rng):
    n, k, p, b, m = (draw(st.integers(1, 3)) for _ in range(5))
    sa, sb = draw(st.sampled_from([
        ((n, k), (k, p)), ((k,), (k, p)), ((n, k), (k,)), ((k,), (k,)), ((b, 1, n, k), (m, k, p)),
        ((k,), (b, k, p)), ((b, n, k), (k,)), ((n, k), (b, k, p)),
    ]))
    return [values(rng, sa), values(rng, sb)], {}


def where_inputs(draw, rng):
    sc, sa, sb = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3)).input_shapes
    return [values(rng, sa), values(rng, sb)], {"cond": rng.random(sc) < 0.5}


def clamp_inputs(draw, rng):
    low, high = draw(st.sampled_from([(-0.5, 0.5), (-0.5, None), (None, 0.5), (0.25, 0.25)]))
    x = values(rng, draw(shapes()))
    for bound in (low, high):
        if bound is not None:  # keep finite differences off the kinks
            near = np.abs(x - bound) < 0.05
            x = np.where(near, x + 0.1, x)
    return [x], {"low": low, "high": high}


def var_inputs(draw, rng):
    arrays, params = with_dim(min_side=2, dims="any")(draw, rng)
    params["unbiased"] = draw(st.booleans())
    return arrays, params


def reshape_inputs(draw, rng):
    shape = draw(shapes(1, 3))
    size = int(np.prod(shape))
    options = [(-1,), (size, 1), (1, -1), tuple(reversed(shape)), (-1,) + shape[1:]] + ([()] if size == 1 else [])
    new = draw(st.sampled_from(options))
    return [values(rng, shape)], {"shape": new}


def flatten_inputs(draw, rng):
    shape = draw(shapes(1, 4))
    nd = len(shape)
    start = draw(st.integers(-nd, nd - 1))
    end = draw(st.integers(start % nd, nd - 1))
    return [values(rng, shape)], {"start": start, "end": end}


def squeeze_inputs(draw, rng):
    shape = draw(st.lists(st.sampled_from([1, 1, 2, 3]), min_size=1, max_size=4).map(tuple))
    dim = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    return [values(rng, shape)], {"dim": dim}


def unsqueeze_inputs(draw, rng):
    shape = draw(shapes(0, 3))
    return [values(rng, shape)], {"dim": draw(st.integers(-len(shape) - 1, len(shape)))}


def transpose_inputs(draw, rng):
    shape = draw(shapes(1, 3))
    nd = len(shape)
    return [values(rng, shape)], {"d0": draw(st.integers(-nd, nd - 1)), "d1": draw(st.integers(-nd, nd - 1))}


def permute_inputs(draw, rng):
    shape = draw(shapes(1, 4))
    return [values(rng, shape)], {"dims": tuple(draw(st.permutations(range(len(shape)))))}


def _ref_squeeze(x, dim):
    if dim is None:
        return x.squeeze()
    return x.squeeze(dim) if x.shape[dim] == 1 else x


def _ref_flatten(x, start, end):
    nd = x.ndim
    start, end = start % nd, end % nd
    return x.reshape(x.shape[:start] + (-1,) + x.shape[end + 1:])


# getitem: keys built per module so that gpunet gets tensor index arrays, torch tensors and NumPy arrays
KEYS = {
    "int_and_slice": lambda M, s, rng: (1, slice(None, None, 2)),
    "negative_int": lambda M, s, rng: (-1, slice(1, None)),
    "negative_step": lambda M, s, rng: (slice(None, None, -1), slice(None, None, -2)),
    "negative_step_flipped": lambda M, s, rng: (slice(None), slice(None, None, 2)),  # torch's negative_step
    "ellipsis_none": lambda M, s, rng: (Ellipsis, None, 0),
    "int_array_repeats": lambda M, s, rng: (convert(M, np.array([0, -1, 0, 1, 0])), slice(None)),
    "two_int_arrays": lambda M, s, rng: (convert(M, np.array([[0, 1], [1, 0]])), convert(M, np.array([2, 2]))),
    "bool_mask_full": lambda M, s, rng: convert(M, np.asarray(rng.random(s) < 0.5)),
    "bool_mask_rows": lambda M, s, rng: convert(M, np.array([True, False, True])),
    "list_index": lambda M, s, rng: [2, 0, 2],
}


def getitem_inputs(draw, rng):
    shape = (3, draw(st.integers(3, 4)), draw(st.integers(1, 3)))
    kind = draw(st.sampled_from(sorted(KEYS)))
    mask_seed = int(rng.integers(2**31))
    return [values(rng, shape)], {"kind": kind, "mask_seed": mask_seed}


def getitem(M, x, kind, mask_seed):
    return x[KEYS[kind](M, tuple(x.shape), np.random.default_rng(mask_seed))]


def join_inputs(new_dim):
    def gen(draw, rng):
        shape = draw(shapes(1, 3))
        nd = len(shape)
        count = draw(st.integers(1, 3))
        dim = draw(st.integers(-nd - new_dim, nd - 1 + new_dim))
        arrays = []
        for _ in range(count):
            s = list(shape)
            if not new_dim:
                s[dim] = draw(st.integers(1, 3))
            arrays.append(values(rng, tuple(s)))
        return arrays, {"dim": dim}
    return gen


def split_inputs(draw, rng):
    shape = draw(shapes(1, 3, max_side=5))
    nd = len(shape)
    dim = draw(st.integers(-nd, nd - 1))
    n = shape[dim]
    sizes = draw(st.one_of(st.integers(1, n + 1), st.lists(st.integers(0, n), min_size=1, max_size=3)
                           .filter(lambda s: sum(s) <= n).map(lambda s: s + [n - sum(s)])))
    return [values(rng, shape)], {"sizes": sizes, "dim": dim}


def _ref_split(x, sizes, dim):
    n = x.shape[dim]
    if isinstance(sizes, int):
        sizes = [min(sizes, n - s) for s in range(0, n, sizes)]
    bounds = np.cumsum(sizes)[:-1]
    return np.split(x, bounds, axis=dim)


def chunk_inputs(draw, rng):
    shape = draw(shapes(1, 3, max_side=5))
    nd = len(shape)
    return [values(rng, shape)], {"chunks": draw(st.integers(1, 4)), "dim": draw(st.integers(-nd, nd - 1))}


def _ref_chunk(x, chunks, dim):
    n = x.shape[dim]
    size = -(-n // chunks)
    return _ref_split(x, size, dim)


def expand_inputs(draw, rng):
    shape = draw(shapes(0, 3))
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    target = lead + tuple(draw(st.sampled_from([n, -1])) if n != 1 else draw(st.sampled_from([1, 2, 3, -1]))
                          for n in shape)
    return [values(rng, shape)], {"shape": target}


def _ref_expand(x, shape):
    lead = len(shape) - x.ndim
    return np.broadcast_to(x, tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape)))


def linear_inputs(draw, rng):
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    fin, fout = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    arrays = [values(rng, batch + (fin,)), values(rng, (fout, fin))]
    if draw(st.booleans()):
        arrays.append(values(rng, (fout,)))
    return arrays, {}


def _np_softmax(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def _np_logsumexp(x, dim, keepdim):
    m = x.max(axis=dim, keepdims=True)
    out = np.log(np.exp(x - m).sum(axis=dim, keepdims=True)) + m
    return out if keepdim else out.squeeze(dim)


def _np_extreme(kind, x, dim=None, keepdim=False):
    if dim is None:
        return getattr(np, kind)(x)
    arg = np.argmax if kind == "max" else np.argmin
    return getattr(np, kind)(x, axis=dim, keepdims=keepdim), arg(x, axis=dim, keepdims=keepdim)


def _extreme(kind):
    def fn(M, x, dim=None, keepdim=False):
        f = getattr(M, kind)
        return f(x) if dim is None else tuple(f(x, dim, keepdim))
    return fn


def _torch_var(kind):
    def fn(x, dim, keepdim, unbiased):
        return getattr(torch, kind)(x, dim=dim, keepdim=keepdim, correction=int(unbiased))
    return fn


CASES = [
    Case("add", binary(), lambda M, a, b: a + b),
    Case("sub", binary(), lambda M, a, b: a - b),
    Case("mul", binary(), lambda M, a, b: a * b),
    Case("div", binary("any", "nonzero"), lambda M, a, b: a / b),
    Case("neg", unary(), lambda M, x: -x),
    Case("scalar_arithmetic", unary("nonzero"), lambda M, x: 2.5 - x * 3 + 1.5 / x - (x - 0.5) + (1 + x) / 4),
    Case("pow_scalar", lambda d, rng: ([values(rng, d(shapes()), "positive")],
                                       {"p": d(st.sampled_from([0, 1, 2, 3, 0.5, -1.5]))}),
         lambda M, x, p: x ** p),
    Case("pow_function", unary("positive", p=2.5), lambda M, x, p: M.pow(x, p)),
    Case("pow_tensor", binary("positive", "any"), lambda M, a, b: M.pow(a, b)),
    Case("rpow", unary(), lambda M, x: 2.0 ** x),
    Case("matmul", matmul_shapes, lambda M, a, b: a @ b),
    Case("matmul_function", matmul_shapes, lambda M, a, b: M.matmul(a, b)),
    Case("exp", unary(), lambda M, x: M.exp(x)),
    Case("log", unary("positive"), lambda M, x: M.log(x)),
    Case("sqrt", unary("positive"), lambda M, x: M.sqrt(x)),
    Case("abs", unary("nonzero"), lambda M, x: M.abs(x)),
    Case("clamp", clamp_inputs, lambda M, x, low, high: M.clamp(x, min=low, max=high),
         ref=lambda x, low, high: np.clip(x, low, high)),
    Case("where", where_inputs, lambda M, a, b, cond: M.where(convert(M, cond), a, b)),
    Case("sigmoid", unary(), lambda M, x: M.sigmoid(x), ref=lambda x: 1 / (1 + np.exp(-x))),
    Case("tanh", unary(), lambda M, x: M.tanh(x)),
    Case("relu", unary("nonzero"), lambda M, x: M.relu(x), ref=lambda x: np.maximum(x, 0)),
    Case("sum", with_dim(dims="any", min_dims=0), lambda M, x, dim, keepdim: M.sum(x, dim=dim, keepdim=keepdim),
         ref=lambda x, dim, keepdim: np.sum(x, axis=dim, keepdims=keepdim)),
    Case("sum_method", with_dim(), lambda M, x, dim, keepdim: x.sum(dim, keepdim),
         ref=lambda x, dim, keepdim: np.sum(x, axis=dim, keepdims=keepdim)),
    Case("mean", with_dim(dims="any", min_dims=0), lambda M, x, dim, keepdim: M.mean(x, dim=dim, keepdim=keepdim),
         ref=lambda x, dim, keepdim: np.mean(x, axis=dim, keepdims=keepdim)),
    Case("var", var_inputs, lambda M, x, dim, keepdim, unbiased: M.var(x, dim, keepdim, unbiased),
         ref=lambda x, dim, keepdim, unbiased: np.var(x, axis=dim, ddof=int(unbiased), keepdims=keepdim),
         torch_fn=_torch_var("var")),
    Case("std", var_inputs, lambda M, x, dim, keepdim, unbiased: M.std(x, dim, keepdim, unbiased),
         ref=lambda x, dim, keepdim, unbiased: np.std(x, axis=dim, ddof=int(unbiased), keepdims=keepdim),
         torch_fn=_torch_var("std")),
    Case("max_all", unary("distinct"), _extreme("max"), ref=lambda x: _np_extreme("max", x)),
    Case("min_all", unary("distinct"), _extreme("min"), ref=lambda x: _np_extreme("min", x)),
    Case("max_dim", with_dim("distinct"), _extreme("max"), ref=lambda x, **p: _np_extreme("max", x, **p)),
    Case("min_dim", with_dim("distinct"), _extreme("min"), ref=lambda x, **p: _np_extreme("min", x, **p)),
    Case("softmax", with_dim(keepdim=False), lambda M, x, dim: M.softmax(x, dim), ref=_np_softmax),
    Case("log_softmax", with_dim(keepdim=False), lambda M, x, dim: M.log_softmax(x, dim),
         ref=lambda x, dim: np.log(_np_softmax(x, dim))),
    Case("logsumexp", with_dim(), lambda M, x, dim, keepdim: M.logsumexp(x, dim, keepdim), ref=_np_logsumexp),
    Case("reshape", reshape_inputs, lambda M, x, shape: x.reshape(shape)),
    Case("reshape_function", reshape_inputs, lambda M, x, shape: M.reshape(x, shape)),
    Case("flatten", flatten_inputs, lambda M, x, start, end: M.flatten(x, start, end), ref=_ref_flatten),
    Case("squeeze", squeeze_inputs, lambda M, x, dim: x.squeeze() if dim is None else x.squeeze(dim),
         ref=_ref_squeeze),
    Case("unsqueeze", unsqueeze_inputs, lambda M, x, dim: M.unsqueeze(x, dim),
         ref=lambda x, dim: np.expand_dims(x, dim)),
    Case("transpose", transpose_inputs, lambda M, x, d0, d1: M.transpose(x, d0, d1),
         ref=lambda x, d0, d1: np.swapaxes(x, d0, d1)),
    Case("permute", permute_inputs, lambda M, x, dims: x.permute(*dims), ref=lambda x, dims: np.transpose(x, dims)),
    Case("T", unary(min_dims=2, max_dims=2), lambda M, x: x.T),
    Case("getitem", getitem_inputs, getitem,
         torch_fn=lambda x, kind, mask_seed: getitem(torch, x.flip(0, 1), "negative_step_flipped", 0)
         if kind == "negative_step" else getitem(torch, x, kind, mask_seed)),
    Case("cat", join_inputs(False), lambda M, *xs, dim: M.cat(list(xs), dim),
         ref=lambda *xs, dim: np.concatenate(xs, axis=dim)),
    Case("stack", join_inputs(True), lambda M, *xs, dim: M.stack(list(xs), dim),
         ref=lambda *xs, dim: np.stack(xs, axis=dim)),
    Case("split", split_inputs, lambda M, x, sizes, dim: M.split(x, sizes, dim), ref=_ref_split),
    Case("chunk", chunk_inputs, lambda M, x, chunks, dim: M.chunk(x, chunks, dim), ref=_ref_chunk),
    Case("expand", expand_inputs, lambda M, x, shape: x.expand(*shape) if shape else x.expand(shape), ref=_ref_expand),
    Case("broadcast_to", expand_inputs, lambda M, x, shape: gn.ops.broadcast_to(x, shape), ref=_ref_expand,
         torch_fn=lambda x, shape: torch.broadcast_to(x, shape)),
    Case("linear", linear_inputs, lambda M, x, w, b=None: gn.ops.linear(x, w, b),
         ref=lambda x, w, b=None: x @ w.T + (0 if b is None else b),
         torch_fn=lambda x, w, b=None: torch.nn.functional.linear(x, w, b)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                                                 HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_op(case, device, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    arrays, params = case.gen(data.draw, rng)
    layouts = [data.draw(st.sampled_from(LAYOUTS), label=f"layout{i}") for i in range(len(arrays))]
    xs = [leaf(a, layout) for a, layout in zip(arrays, layouts)]

    outs = as_list(case.fn(gn, *xs, **params))
    for i, (out, ref) in enumerate(zip(outs, as_list(case.reference(arrays, params)), strict=True)):
        assert_close(out, ref, dtype="float64", what=f"{case.name} output {i} vs NumPy")
        assert out.device == gn.device(device), f"{case.name}: output {i} on {out.device}, inputs on {device}"
        if out.dtype.kind == "f":
            assert out.dtype == np.float64, f"{case.name}: float64 inputs gave a {out.dtype} output"

    txs = [torch_leaf(a) for a in arrays]
    touts = as_list(case.torch(txs, params))
    for i, (out, tout) in enumerate(zip(outs, touts, strict=True)):
        assert_close(out, tout, dtype="float64", what=f"{case.name} output {i} vs torch")
    floats = [(o, t) for o, t in zip(outs, touts) if o.dtype.kind == "f"]
    weights = [rng.standard_normal(o.shape) for o, _ in floats]
    loss = sum(((o * gn.tensor(w, dtype=gn.float64)).sum() for (o, _), w in zip(floats, weights)),
               gn.tensor(0.0, dtype=gn.float64))
    tloss = sum(((t * torch.tensor(w)).sum() for (_, t), w in zip(floats, weights)),
                torch.tensor(0.0, dtype=torch.float64))
    if loss.requires_grad:
        loss.backward()
    if tloss.requires_grad:
        tloss.backward()
    for i, (x, tx) in enumerate(zip(xs, txs)):
        expected = np.zeros(tx.shape) if tx.grad is None else tx.grad.numpy()
        assert_close(np.zeros(x.shape) if x.grad is None else x.grad, expected, dtype="float64",
                     what=f"{case.name} grad of input {i} vs torch")

    def f(*inputs):
        return tuple(o for o in as_list(case.fn(gn, *inputs, **params)) if o.dtype.kind == "f")

    assert gradcheck(f, tuple(xs))
    assert gradgradcheck(f, tuple(xs))


def test_layouts_give_the_promised_memory_layouts(device):
    array = np.arange(6.0).reshape(2, 3)
    assert leaf(array).data.flags.c_contiguous
    transposed = leaf(array, "transposed").data
    assert transposed.flags.f_contiguous and not transposed.flags.c_contiguous
    strided = leaf(array, "strided").data
    assert not strided.flags.c_contiguous and strided.strides[-1] == 2 * strided.itemsize
