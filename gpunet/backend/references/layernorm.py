"""Reference of the LayerNorm family (xp-generic), mirrors ``kernels/layernorm.cu``: x is (rows, cols), each row one
sample's normalized_shape; weight and bias are (cols,) or None."""
from __future__ import annotations


def layer_norm(xp, x, weight, bias, eps):
    """``(y, mean, rstd)``: y = (x - mean) * rstd * weight + bias per row, with the row's mean and
    rstd = 1 / sqrt(biased variance + eps) (the backward's saved statistics)."""
    mean = x.mean(axis=1)
    centred = x - mean[:, None]
    rstd = 1.0 / xp.sqrt((centred * centred).mean(axis=1) + eps)
    y = centred
    y *= rstd[:, None]
    if weight is not None:
        y *= weight
    if bias is not None:
        y += bias
    return y, mean.astype(x.dtype, copy=False), rstd.astype(x.dtype, copy=False)


def layer_norm_backward(xp, gy, x, weight, mean, rstd):
    """``(gx, gweight, gbias)`` of ``layer_norm`` for the output gradient ``gy`` (rows, cols):
    gx = rstd * (g - mean(g) - xhat * mean(g * xhat)) per row with g = gy * weight and xhat = (x - mean) * rstd;
    gweight = sum over rows of gy * xhat, gbias = sum of gy."""
    xhat = (x - mean[:, None]) * rstd[:, None]
    g = gy * weight if weight is not None else gy
    gx = g - g.mean(axis=1, keepdims=True)
    gx -= xhat * (g * xhat).mean(axis=1, keepdims=True)
    gx *= rstd[:, None]
    return gx, (gy * xhat).sum(axis=0), gy.sum(axis=0)
