"""Convolution family reference (xp-generic): im2col and its adjoint col2im, mirrors ``kernels/conv.cu``.

x is (N, C, H, W); ``kernel``, ``stride``, ``padding``, ``dilation`` are (h, w) pairs of ints (1-D convolution
uses H = 1). cols has shape (N, C*kh*kw, OH*OW), row c*kh*kw + i*kw + j holding input channel c at kernel offset
(i, j) for every output position (PyTorch's ``F.unfold`` layout), and is stored batch-innermost: it is a transposed
view of a contiguous (C*kh*kw, OH*OW, N) array, so that the weight product of the whole batch is one GEMM
(``cols.transpose(1, 2, 0).reshape(C*kh*kw, OH*OW*N)`` is free) and im2col and col2im move rows of OW*N
elements (for stride 1) instead of OW; ``batch_major=True`` stores it as is, for a per-sample GEMM writing the
(N, O, OH*OW) output directly (the CUDA forward). col2im accepts any layout.

im2col is one copy of x to a padded (C, H, W, N) image and one copy through a strided view of it (no Python loop
over positions); col2im adds the kh*kw column planes into a (C, H, W, N) image, one strided slice per kernel
offset in (i, j) order, the summation order of the CUDA gather, and moves the batch axis back to the front.
"""
from __future__ import annotations

import numpy

from ..geometry import conv_output_shape

TRANSPOSE_BLOCK_ROWS = 64  # transposed's blocks on the CPU


def transposed(xp, rows, out=None):
    """rows (R, C) as a C-contiguous (C, R) array (into ``out`` when given). NumPy copies blocks of 64 rows: one
    transposing copy of the whole array strides through memory for every element. Measured on (R, C) = (4704, 128),
    (1600, 128), (640, 100), (100, 640), (28800, 64), (64, 28800) float32: within 20 % of the best block size for
    each, and 1.1-3.4x faster than one copy."""
    if out is None:
        out = xp.empty(rows.shape[::-1], dtype=rows.dtype)
    if xp is not numpy:
        out[...] = rows.T
        return out
    for start in range(0, rows.shape[0], TRANSPOSE_BLOCK_ROWS):
        out[:, start:start + TRANSPOSE_BLOCK_ROWS] = rows[start:start + TRANSPOSE_BLOCK_ROWS].T
    return out


def _batch_innermost(xp, x, padding):
    """x (N, C, H, W) as a contiguous (C, H + 2 ph, W + 2 pw, N) image with zero borders."""
    ph, pw = padding
    n, c, h, w = x.shape
    if not (ph or pw):
        return xp.ascontiguousarray(x.transpose(1, 2, 3, 0))
    image = xp.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
    image[:, ph:ph + h, pw:pw + w] = x.transpose(1, 2, 3, 0)
    return image


def _padded(xp, x, padding):
    """x with zero borders (a slice assignment: several times faster than xp.pad on small images)."""
    ph, pw = padding
    if not (ph or pw):
        return x
    n, c, h, w = x.shape
    padded = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = x
    return padded


def im2col(xp, x, kernel, stride, padding, dilation, batch_major=False):
    """cols[n, c*kh*kw + i*kw + j, oh*OW + ow] = x_padded[n, c, oh*sh + i*dh, ow*sw + j*dw], stored
    batch-innermost (a view of (C*kh*kw, OH*OW, N)), or contiguous with ``batch_major``."""
    n, c = x.shape[:2]
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = conv_output_shape(x.shape, kernel, stride, padding, dilation)
    if batch_major:
        padded = _padded(xp, x, padding)
        s_n, s_c, s_h, s_w = padded.strides
        windows = xp.lib.stride_tricks.as_strided(
            padded, (n, c, kh, kw, oh, ow), (s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw))
        return xp.ascontiguousarray(windows).reshape(n, c * kh * kw, oh * ow)  # one copy
    image = _batch_innermost(xp, x, padding)
    s_c, s_h, s_w, s_n = image.strides
    windows = xp.lib.stride_tricks.as_strided(
        image, (c, kh, kw, oh, ow, n), (s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw, s_n))
    return xp.ascontiguousarray(windows).reshape(c * kh * kw, oh * ow, n).transpose(2, 0, 1)  # one copy


def _inside(size, out, stride, offset):
    """The output positions [first, last) whose input position o*stride + offset lies in [0, size)."""
    first = max(0, -(offset // stride))  # ceil(-offset / stride)
    last = min(out, (size - 1 - offset) // stride + 1)
    return first, last


def col2im(xp, cols, x_shape, kernel, stride, padding, dilation):
    """The adjoint of im2col: x[n, c, h, w] = sum of the cols entries that read input pixel (h, w)."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh, ow = conv_output_shape(x_shape, kernel, stride, padding, dilation)
    if cols.shape != (n, c * kh * kw, oh * ow):
        raise ValueError(f"col2im: cols of shape {tuple(cols.shape)} do not fit x_shape {tuple(x_shape)} with "
                         f"kernel {tuple(kernel)}: expected {(n, c * kh * kw, oh * ow)}")
    planes = cols.transpose(1, 2, 0).reshape(c, kh, kw, oh, ow, n)  # a view for batch-innermost cols
    image = xp.zeros((c, h, w, n), dtype=cols.dtype)  # batch-innermost too: rows of OW*N elements
    for i in range(kh):  # offsets (i, j) write disjoint pixels within one slice: no aliasing
        top, bottom = _inside(h, oh, sh, i * dh - ph)
        for j in range(kw):
            left, right = _inside(w, ow, sw, j * dw - pw)
            if top < bottom and left < right:  # the window positions that read inside the image (not padding)
                h0, w0 = top * sh + i * dh - ph, left * sw + j * dw - pw
                image[:, h0:h0 + sh * (bottom - top - 1) + 1:sh, w0:w0 + sw * (right - left - 1) + 1:sw] += \
                    planes[:, i, j, top:bottom, left:right]
    return transposed(xp, image.reshape(c * h * w, n)).reshape(x_shape)
