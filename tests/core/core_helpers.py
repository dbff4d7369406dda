"""Shared helpers for the core tests: inputs in several memory layouts on the current device, value domains."""
from __future__ import annotations

import contextlib

import numpy as np
import torch
from hypothesis import strategies as st

import gpunet as gn
from gpunet import backend

LAYOUTS = ("contiguous", "transposed", "strided")


def leaf(array, layout="contiguous", requires_grad=True, dtype=np.float64):
    """A leaf on the current device holding ``array`` (in ``dtype``, float64 by default); its data is a contiguous
    array, a transposed view or a strided slice."""
    array = np.asarray(array, dtype=dtype)
    if layout == "transposed" and array.ndim >= 2:
        data = gn.tensor(np.ascontiguousarray(array.T), dtype=dtype).T
    elif layout == "strided" and array.ndim >= 1:
        wide = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=dtype)
        wide[..., ::2] = array
        data = gn.tensor(wide, dtype=dtype)[..., ::2]
    else:
        data = gn.tensor(array, dtype=dtype)
    out = data.detach().requires_grad_(requires_grad)
    np.testing.assert_array_equal(out.numpy(), array)
    return out


@contextlib.contextmanager
def on_device(name):
    """Make ``name`` the current device inside the block (tensors created there live on it)."""
    previous = backend.current().device
    backend.set_device(name)
    try:
        yield
    finally:
        backend.set_device(previous)


def values(rng, shape, domain="any"):
    """Random float64 values in a domain where finite differences are valid for the op under test."""
    if domain == "any":
        return rng.standard_normal(shape)
    if domain == "positive":
        return rng.uniform(0.3, 2.0, shape)
    if domain == "nonzero":  # away from the kink or pole at 0
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)
    if domain == "distinct":  # no ties (max/min), spaced far more than the finite-difference step
        n = int(np.prod(shape, dtype=int))
        return (rng.permutation(n) * 0.25 - n * 0.125 + rng.uniform(-0.05, 0.05, n)).reshape(shape)
    raise ValueError(domain)


def shapes(min_dims=0, max_dims=3, max_side=3):
    return st.lists(st.integers(1, max_side), min_size=min_dims, max_size=max_dims).map(tuple)


def torch_leaf(array):
    return torch.tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def as_list(outputs):
    return list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
