"""CuPy launchers of ``kernels/layernorm.cu``: LayerNorm forward and backward over the rows of x (rows, cols).

float32 launches the kernels (the row kernels with the launch shape of ``row_groups``: a warp per row up to 1024
columns, several rows per block); float64 runs the xp reference (``gpunet.backend.references.layernorm``).
"""
from __future__ import annotations

import numpy

from .common import launch_per_element, require_float, row_groups

PARAM_GRAD_CHUNK = 64  # rows summed by one thread of the weight/bias gradient kernel (then the chunks are added)


def _check_rows(op, x, *vectors):
    require_float(op, "x", x)
    if x.ndim != 2:
        raise ValueError(f"{op}: x must be (rows, cols), got shape {tuple(x.shape)}")
    for name, v in vectors:
        if v is not None and tuple(v.shape) != (x.shape[1],):
            raise ValueError(f"{op}: {name} must have shape ({x.shape[1]},) (one value per column), got "
                             f"{tuple(v.shape)}")


def _parameter(xp, value, dtype):
    """``value`` as a contiguous array, or a one-element placeholder for an absent parameter."""
    return xp.zeros((1,), dtype=dtype) if value is None else xp.ascontiguousarray(value.astype(dtype, copy=False))


def check_layer_norm(x, weight, bias, eps):
    _check_rows("layer_norm", x, ("weight", weight), ("bias", bias))


def layer_norm(backend, x, weight, bias, eps):
    xp = backend.xp
    rows, cols = x.shape
    x = xp.ascontiguousarray(x)
    y = xp.empty_like(x)
    mean, rstd = xp.empty((rows,), dtype=x.dtype), xp.empty((rows,), dtype=x.dtype)
    if rows and cols:
        blocks, threads, group = row_groups(rows, cols)
        backend.launch("layernorm", "layer_norm_forward_f32", blocks, threads,
                       (x, _parameter(xp, weight, x.dtype), _parameter(xp, bias, x.dtype), y, mean, rstd,
                        numpy.int64(rows), numpy.int64(cols), numpy.float32(eps), numpy.int64(weight is not None),
                        numpy.int64(bias is not None), numpy.int64(group)))
    return y, mean, rstd


def check_layer_norm_backward(gy, x, weight, mean, rstd):
    _check_rows("layer_norm_backward", x, ("weight", weight))
    if tuple(gy.shape) != tuple(x.shape):
        raise ValueError(f"layer_norm_backward: gy of shape {tuple(gy.shape)} must have x's shape {tuple(x.shape)}")


def layer_norm_backward(backend, gy, x, weight, mean, rstd):
    xp = backend.xp
    rows, cols = x.shape
    gy, x = xp.ascontiguousarray(gy.astype(x.dtype, copy=False)), xp.ascontiguousarray(x)
    mean, rstd = xp.ascontiguousarray(mean), xp.ascontiguousarray(rstd)
    gx = xp.empty_like(x)
    chunks = -(-rows // PARAM_GRAD_CHUNK)
    partial_w, partial_b = xp.empty((chunks, cols), dtype=x.dtype), xp.empty((chunks, cols), dtype=x.dtype)
    if rows and cols:
        blocks, threads, group = row_groups(rows, cols)
        backend.launch("layernorm", "layer_norm_backward_f32", blocks, threads,
                       (gy, x, _parameter(xp, weight, x.dtype), mean, rstd, gx, numpy.int64(rows), numpy.int64(cols),
                        numpy.int64(weight is not None), numpy.int64(group)))
        launch_per_element(backend, "layernorm", "layer_norm_param_grad_f32", chunks * cols,
                           (gy, x, mean, rstd, partial_w, partial_b, numpy.int64(rows), numpy.int64(cols),
                            numpy.int64(PARAM_GRAD_CHUNK)))
    return gx, partial_w.sum(axis=0), partial_b.sum(axis=0)
