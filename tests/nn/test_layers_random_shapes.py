"""Every loss and layer family on random shapes drawn by hypothesis, on "cpu" and "cuda-emu": float64 values and
gradients (inputs and parameters) against PyTorch, then gradcheck and gradgradcheck. Float inputs and parameters
come contiguous, transposed or as a strided slice. (Linear is ``test_core_ops``'s ``linear`` case.)"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpunet as gn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from core_helpers import LAYOUTS, as_list, leaf, shapes, torch_leaf, values  # noqa: E402

from gpunet.testing import assert_close, gradcheck, gradgradcheck  # noqa: E402


def _const(array):
    array = np.asarray(array)
    return gn.tensor(array, dtype=gn.float64) if array.dtype.kind == "f" else gn.tensor(array)


def _gn_module(module, state, args):
    module = module.double()
    for name, tensor in state.items():  # the gradcheck inputs stand in for the parameters
        *path, leaf_name = name.split(".")
        owner = module
        for child in path:
            owner = owner._modules[child]
        owner._parameters[leaf_name] = tensor
    return module(*args)


GN = SimpleNamespace(F=gn.nn.functional, nn=gn.nn, const=_const, call=_gn_module)
TORCH = SimpleNamespace(F=torch.nn.functional, nn=torch.nn, const=torch.as_tensor,
                        call=lambda module, state, args: torch.func.functional_call(module.double(), state, args))


@dataclass
class Family:
    name: str
    gen: Callable  # (draw, rng) -> (float64 input arrays, params)
    fn: Callable  # fn(M, *inputs, **params) for M = GN or TORCH
    examples: int = 5  # hypothesis examples per device


# ----- losses ---------------------------------------------------------------------------------------------------
REDUCTIONS = st.sampled_from(["mean", "sum", "none"])


def _classes(draw, rng, ignore=True):
    """Logits (N, C, *d) or (C,), integer targets (some ignored), optional class weights."""
    shape = draw(st.sampled_from([(), (1,), (2,)]).flatmap(
        lambda extra: st.tuples(st.integers(1, 3), st.integers(1, 4)).map(lambda nc: nc + extra)))
    if draw(st.booleans(), label="unbatched"):
        shape = shape[1:2]
    classes = shape[1] if len(shape) > 1 else shape[0]
    target = rng.integers(0, classes, size=shape[:1] + shape[2:] if len(shape) > 1 else ())
    if ignore and target.ndim and draw(st.booleans(), label="ignore"):
        target.reshape(-1)[1::2] = -100  # the first target stays, so a mean is defined
    weight = rng.uniform(0.5, 2.0, classes) if draw(st.booleans(), label="weighted") else None
    return values(rng, shape), dict(target=target, weight=weight, reduction=draw(REDUCTIONS))


def _cross_entropy_gen(draw, rng):
    x, params = _classes(draw, rng)
    return [x], dict(params, label_smoothing=draw(st.sampled_from([0.0, 0.2])))


def _cross_entropy_probs_gen(draw, rng):
    x, params = _classes(draw, rng, ignore=False)
    p = np.exp(values(rng, x.shape))
    p /= p.sum(axis=1 if x.ndim > 1 else 0, keepdims=True)
    del params["target"]
    return [x, p], dict(params, label_smoothing=draw(st.sampled_from([0.0, 0.2])))


def _weighted(M, weight):
    return None if weight is None else M.const(weight)


def _pair_gen(gap=0.2, target=None, first="any"):
    """(input, target) of one random shape; by default target = input + d with |d| >= gap (off the kinks)."""
    def gen(draw, rng):
        shape = draw(shapes(0, 3))
        a = values(rng, shape, first)
        b = a + values(rng, shape, "nonzero") * (gap / 0.2) if target is None else target(rng, shape)
        return [a, b], dict(reduction=draw(REDUCTIONS))
    return gen


def _bce_gen(logits):
    def gen(draw, rng):
        shape = draw(shapes(1, 3))
        x = values(rng, shape) * 2 if logits else rng.uniform(0.1, 0.9, shape)
        params = dict(reduction=draw(REDUCTIONS), weight=rng.uniform(0.5, 2, shape) if draw(st.booleans()) else None)
        if logits:
            params["pos_weight"] = rng.uniform(0.5, 3, shape[-1:]) if draw(st.booleans()) else None
        return [x, rng.uniform(0, 1, shape)], params
    return gen


def _kl_gen(draw, rng):
    shape = draw(shapes(1, 3))
    log_target = draw(st.booleans())
    target = values(rng, shape) if log_target else values(rng, shape, "positive")
    return [values(rng, shape), target], dict(log_target=log_target,
                                              reduction=draw(st.sampled_from(["mean", "sum", "none", "batchmean"])))


LOSSES = [
    Family("cross_entropy", _cross_entropy_gen, lambda M, x, target, weight, **kw: M.F.cross_entropy(
        x, M.const(target), weight=_weighted(M, weight), **kw)),
    Family("cross_entropy_probabilities", _cross_entropy_probs_gen,
           lambda M, x, p, weight, **kw: M.F.cross_entropy(x, p, weight=_weighted(M, weight), **kw)),
    Family("nll_loss", lambda d, rng: ([(r := _classes(d, rng))[0]], r[1]),
           lambda M, x, target, weight, **kw: M.F.nll_loss(x, M.const(target), weight=_weighted(M, weight), **kw)),
    Family("mse_loss", _pair_gen(), lambda M, a, b, **kw: M.F.mse_loss(a, b, **kw)),
    Family("l1_loss", _pair_gen(), lambda M, a, b, **kw: M.F.l1_loss(a, b, **kw)),
    Family("smooth_l1_loss", _pair_gen(), lambda M, a, b, **kw: M.F.smooth_l1_loss(a, b, beta=0.7, **kw)),
    Family("huber_loss", _pair_gen(), lambda M, a, b, **kw: M.F.huber_loss(a, b, delta=1.3, **kw)),
    Family("binary_cross_entropy", _bce_gen(False), lambda M, x, y, weight, **kw: M.F.binary_cross_entropy(
        x, y, weight=_weighted(M, weight), **kw)),
    Family("binary_cross_entropy_with_logits", _bce_gen(True),
           lambda M, x, y, weight, pos_weight, **kw: M.F.binary_cross_entropy_with_logits(
               x, y, weight=_weighted(M, weight), pos_weight=_weighted(M, pos_weight), **kw)),
    Family("kl_div", _kl_gen, lambda M, x, y, **kw: M.F.kl_div(x, y, **kw)),
]


# ----- layers (parameters are inputs too, put in place of the module's own) -------------------------------------
def _module(make, args=1):
    """fn(M, *inputs, names): the module make(M.nn) called on inputs[:args] (None for an absent input), with its
    parameters replaced by the remaining inputs, in the order of ``names``."""
    def fn(M, *inputs, names=(), **params):
        module = make(M.nn, **params)
        return M.call(module, dict(zip(names, inputs[args:])), tuple(inputs[:args]))
    return fn


def _parameters(torch_module, rng):
    names = [name for name, _ in torch_module.named_parameters()]
    return [values(rng, p.shape) * 0.7 for _, p in torch_module.named_parameters()], names


def _pool_gen(kind):
    def gen(draw, rng):
        k = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
        p = tuple(draw(st.integers(0, s // 2)) for s in k)
        d = draw(st.tuples(st.integers(1, 2), st.integers(1, 2))) if kind == "max" else (1, 1)
        size = tuple(draw(st.integers(d[a] * (k[a] - 1) + 1, 6)) for a in (0, 1))
        lead = draw(st.sampled_from([(1,), (2,), (1, 2), (2, 1)]))
        params = dict(kernel_size=k, stride=draw(st.tuples(st.integers(1, 3), st.integers(1, 3))), padding=p,
                      ceil_mode=draw(st.booleans()))
        if kind == "max":
            params.update(dilation=d, return_indices=True)
        else:
            params.update(count_include_pad=draw(st.booleans()), divisor_override=draw(st.sampled_from([None, 3])))
        return [values(rng, lead + size, "distinct")], params  # no ties: max pooling's gradient is defined
    return gen


def _batchnorm_gen(dims):
    def gen(draw, rng):
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) + tuple(draw(shapes(dims - 2, dims - 2)))
        if int(np.prod(shape)) == shape[1]:  # one value per channel: no batch variance, as in PyTorch
            shape = (2,) + shape[1:]
        affine, training = draw(st.booleans()), draw(st.booleans())
        ref = (torch.nn.BatchNorm1d if dims < 4 else torch.nn.BatchNorm2d)(shape[1], affine=affine)
        weights, names = _parameters(ref, rng)
        return [values(rng, shape, "distinct"), *weights], dict(names=names, num_features=shape[1], affine=affine,
                                                               training=training, eps=draw(st.sampled_from([1e-5, 0.1])))
    return gen


def _batchnorm(cls):
    def make(nn, num_features, affine, training, eps):
        return getattr(nn, cls)(num_features, eps=eps, affine=affine).train(training)
    return _module(make)


def _embedding_gen(draw, rng):
    num, dim = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    idx = rng.integers(0, num, size=draw(shapes(1, 2)))
    return [values(rng, (num, dim))], dict(names=["weight"], idx=idx, num=num, dim=dim)


def _embedding(M, weight, names, idx, num, dim):
    return M.call(M.nn.Embedding(num, dim), {"weight": weight}, (M.const(idx),))


def _cell_gen(kind):
    def gen(draw, rng):
        inputs, hidden, batch = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.sampled_from([(), (1,), (3,)]))
        bias = draw(st.booleans())
        weights, names = _parameters(getattr(torch.nn, kind)(inputs, hidden, bias=bias), rng)
        states = [values(rng, batch + (hidden,)) for _ in range(2 if kind == "LSTMCell" else 1)]
        return [values(rng, batch + (inputs,)), *states, *weights], dict(
            names=names, kind=kind, sizes=(inputs, hidden), bias=bias)
    return gen


def _cell(M, x, *rest, names, kind, sizes, bias):
    states = 2 if kind == "LSTMCell" else 1
    hx = tuple(rest[:2]) if states == 2 else rest[0]
    return M.call(getattr(M.nn, kind)(*sizes, bias=bias), dict(zip(names, rest[states:])), (x, hx))


def _layer_gen(kind):
    def gen(draw, rng):
        config = dict(num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
                      batch_first=draw(st.booleans()), bias=draw(st.booleans()))
        inputs, hidden = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        seq, batch = draw(st.integers(1, 3)), draw(st.sampled_from([(), (1,), (2,)]))
        weights, names = _parameters(getattr(torch.nn, kind)(inputs, hidden, **config), rng)
        x_shape = (batch + (seq,) if config["batch_first"] else (seq,) + batch) + (inputs,)
        state = ((1 + config["bidirectional"]) * config["num_layers"],) + batch + (hidden,)
        states = [values(rng, state) for _ in range(2 if kind == "LSTM" else 1)]
        return [values(rng, x_shape), *states, *weights], dict(names=names, kind=kind, sizes=(inputs, hidden),
                                                               config=config)
    return gen


def _layer(M, x, *rest, names, kind, sizes, config):
    states = 2 if kind == "LSTM" else 1
    hx = tuple(rest[:2]) if states == 2 else rest[0]
    output, state = M.call(getattr(M.nn, kind)(*sizes, **config), dict(zip(names, rest[states:])), (x, hx))
    return (output, *state) if kind == "LSTM" else (output, state)


class _TorchCausalConv1d(torch.nn.Conv1d):
    """The reference of Conv1d(padding="causal"): zero padding dilation * (k - 1) on the left only."""

    def forward(self, x):
        left = self.dilation[0] * (self.kernel_size[0] - 1)
        return torch.nn.functional.conv1d(torch.nn.functional.pad(x, (left, 0)), self.weight, self.bias,
                                          dilation=self.dilation, groups=self.groups)


class _TorchSeparable(torch.nn.Module):
    """The reference of DepthwiseSeparableConv2d, from PyTorch's Conv2d with the same children."""

    def __init__(self, c_in, c_out, kernel_size, stride=1, padding=0, dilation=1, bias=True, depth_multiplier=1):
        super().__init__()
        self.depthwise = torch.nn.Conv2d(c_in, c_in * depth_multiplier, kernel_size, stride, padding, dilation,
                                         groups=c_in, bias=False)
        self.pointwise = torch.nn.Conv2d(c_in * depth_multiplier, c_out, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


def _layer_norm_gen(draw, rng):
    shape = draw(shapes(1, 4))
    normalized = shape[len(shape) - draw(st.integers(1, len(shape))):]
    config = dict(elementwise_affine=draw(st.booleans()), bias=draw(st.booleans()))
    weights, names = _parameters(torch.nn.LayerNorm(normalized, **config), rng)
    return [values(rng, shape, "distinct"), *weights], dict(names=names, normalized_shape=normalized, **config,
                                                           eps=draw(st.sampled_from([1e-5, 0.1])))


def _group_norm_gen(draw, rng):
    groups, per_group = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    shape = (draw(st.integers(1, 3)), groups * per_group) + draw(shapes(0, 2))
    if shape[0] * per_group * int(np.prod(shape[2:])) == 1:  # PyTorch refuses a single value per batch and group
        shape = (2,) + shape[1:]
    affine = draw(st.booleans())
    weights, names = _parameters(torch.nn.GroupNorm(groups, shape[1], affine=affine), rng)
    return [values(rng, shape, "distinct"), *weights], dict(names=names, num_groups=groups, num_channels=shape[1],
                                                           affine=affine, eps=draw(st.sampled_from([1e-5, 0.1])))


def _causal_conv_gen(draw, rng):
    groups = draw(st.integers(1, 2))
    config = dict(in_channels=groups * draw(st.integers(1, 2)), out_channels=groups * draw(st.integers(1, 2)),
                  kernel_size=draw(st.integers(1, 3)), dilation=draw(st.integers(1, 3)), groups=groups,
                  bias=draw(st.booleans()))
    weights, names = _parameters(torch.nn.Conv1d(**config), rng)
    batch = draw(st.sampled_from([(), (1,), (2,)]))
    x = values(rng, batch + (config["in_channels"], draw(st.integers(1, 6))))
    return [x, *weights], dict(names=names, **config)


def _causal_conv(nn, **config):
    return nn.Conv1d(**config, padding="causal") if nn is gn.nn else _TorchCausalConv1d(**config)


def _separable_gen(draw, rng):
    k = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    d = draw(st.tuples(st.integers(1, 2), st.integers(1, 2)))
    config = dict(kernel_size=k, stride=draw(st.tuples(st.integers(1, 2), st.integers(1, 2))),
                  padding=draw(st.tuples(st.integers(0, 1), st.integers(0, 1))), dilation=d,
                  bias=draw(st.booleans()), depth_multiplier=draw(st.integers(1, 2)))
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    weights, names = _parameters(_TorchSeparable(c_in, c_out, **config), rng)
    size = tuple(draw(st.integers(max(1, d[a] * (k[a] - 1) + 1 - 2 * config["padding"][a]), 5)) for a in (0, 1))
    x = values(rng, (draw(st.integers(1, 2)), c_in) + size)
    return [x, *weights], dict(names=names, c_in=c_in, c_out=c_out, **config)


def _separable(nn, c_in, c_out, **config):
    return (nn.DepthwiseSeparableConv2d if nn is gn.nn else _TorchSeparable)(c_in, c_out, **config)


def _upsample_gen(draw, rng):
    mode = draw(st.sampled_from(["nearest", "nearest-exact", "linear", "bilinear"]))
    dims = {"linear": 1, "bilinear": 2}.get(mode) or draw(st.integers(1, 2))
    size = tuple(draw(st.integers(1, 5)) for _ in range(dims))
    params = dict(mode=mode)
    if draw(st.booleans(), label="by size"):
        out = tuple(draw(st.integers(1, 8)) for _ in range(dims))
        params["size"] = out[0] if dims == 1 or draw(st.booleans()) and len(set(out)) == 1 else out
    else:
        factors = tuple(f if s * f >= 1 else 2.0 for s, f in zip(size, (draw(st.sampled_from(
            [0.5, 0.75, 1.0, 1.6, 2.0, 2.5, 3.0])) for _ in range(dims))))
        params["scale_factor"] = factors[0] if len(set(factors)) == 1 else factors
        params["recompute_scale_factor"] = draw(st.sampled_from([None, True]))
    if mode in ("linear", "bilinear"):
        params["align_corners"] = draw(st.sampled_from([None, False, True]))
    return [values(rng, (draw(st.integers(1, 2)), draw(st.integers(1, 2))) + size)], params


LAYERS = [
    Family("MaxPool2d", _pool_gen("max"), _module(lambda nn, **kw: nn.MaxPool2d(**kw))),
    Family("AvgPool2d", _pool_gen("avg"), _module(lambda nn, **kw: nn.AvgPool2d(**kw))),
    Family("BatchNorm1d", _batchnorm_gen(3), _batchnorm("BatchNorm1d")),
    Family("BatchNorm2d", _batchnorm_gen(4), _batchnorm("BatchNorm2d")),
    Family("Embedding", _embedding_gen, _embedding),
    *(Family(kind, _cell_gen(kind), _cell) for kind in ("LSTMCell", "GRUCell", "RNNCell")),
    *(Family(kind, _layer_gen(kind), _layer, examples=3) for kind in ("LSTM", "GRU", "RNN")),
    Family("LayerNorm", _layer_norm_gen, _module(lambda nn, **kw: nn.LayerNorm(**kw))),
    Family("GroupNorm", _group_norm_gen, _module(lambda nn, **kw: nn.GroupNorm(**kw))),
    Family("Conv1d_causal", _causal_conv_gen, _module(_causal_conv)),
    Family("DepthwiseSeparableConv2d", _separable_gen, _module(_separable)),
    Family("Upsample", _upsample_gen, _module(lambda nn, **kw: nn.Upsample(**kw)), examples=10),
    Family("Dropout2d_eval", lambda d, rng: ([values(rng, d(shapes(4, 4)))], dict(p=d(st.sampled_from([0.2, 0.9])))),
           _module(lambda nn, p: nn.Dropout2d(p).eval())),
    Family("Dropout_eval", lambda d, rng: ([values(rng, d(shapes(0, 3)))], dict(p=d(st.sampled_from([0.2, 0.9])))),
           _module(lambda nn, p: nn.Dropout(p).eval())),
]
FAMILIES = LOSSES + LAYERS
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")  # PyTorch's, on kl_div


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_family_on_random_shapes(family, device):
    @settings(max_examples=family.examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data):
        _check_example(family, device, data)

    check()


def _check_example(family, device, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    arrays, params = family.gen(data.draw, rng)
    layouts = [data.draw(st.sampled_from(LAYOUTS), label=f"layout{i}") for i in range(len(arrays))]
    xs = [leaf(a, layout) for a, layout in zip(arrays, layouts)]
    txs = [torch_leaf(a) for a in arrays]
    outs, touts = as_list(family.fn(GN, *xs, **params)), as_list(family.fn(TORCH, *txs, **params))
    assert len(outs) == len(touts), family.name
    for i, (out, tout) in enumerate(zip(outs, touts)):
        assert out.device == gn.device(device), f"{family.name}: output {i} on {out.device}"
        assert_close(out, tout, dtype="float64", what=f"{family.name} output {i} vs torch")
    floats = [(o, t) for o, t in zip(outs, touts) if o.dtype.kind == "f"]
    weights = [rng.standard_normal(o.shape) for o, _ in floats]
    sum((o * gn.tensor(w, dtype=gn.float64)).sum() for (o, _), w in zip(floats, weights)).backward()
    sum((t * torch.tensor(w)).sum() for (_, t), w in zip(floats, weights)).backward()
    for i, (x, tx) in enumerate(zip(xs, txs)):
        expected = np.zeros(tx.shape) if tx.grad is None else tx.grad.numpy()
        assert_close(np.zeros(x.shape) if x.grad is None else x.grad, expected, dtype="float64", what=f"{family.name} grad of input {i}")
        assert x.grad is None or x.grad.device == gn.device(device)

    def f(*inputs):
        return tuple(o for o in as_list(family.fn(GN, *inputs, **params)) if o.dtype.kind == "f")

    inputs = tuple(x.detach().requires_grad_() for x in xs)
    assert gradcheck(f, inputs)
    assert gradgradcheck(f, inputs)
