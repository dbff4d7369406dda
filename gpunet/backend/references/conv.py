"""Convolution family reference (xp-generic): im2col and its adjoint col2im, mirrors ``kernels/conv.cu``.

x is (N, C, H, W); ``kernel``, ``stride``, ``padding``, ``dilation`` are (h, w) pairs of ints (1-D convolution
uses H = 1). cols has shape (N, C*kh*kw, OH*OW), row c*kh*kw + i*kw + j holding input channel c at kernel offset
(i, j) for every output position (PyTorch's ``F.unfold`` layout), and is stored channel-major: it is a transposed
view of a contiguous (C*kh*kw, N, OH*OW) array, so that the weight product of the whole batch is one GEMM
(``cols.transpose(1, 0, 2).reshape(C*kh*kw, N*OH*OW)`` is free); ``batch_major=True`` stores it as is, for a
per-sample GEMM writing the (N, O, OH*OW) output directly (the CUDA forward). col2im accepts any layout.

im2col is one copy through a strided view (no Python loop over positions); col2im adds the kh*kw column planes
into the padded image, one strided slice per kernel offset in (i, j) order, the summation order of the CUDA gather.
"""
from __future__ import annotations

from ..geometry import conv_output_shape


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
    """cols[n, c*kh*kw + i*kw + j, oh*OW + ow] = x_padded[n, c, oh*sh + i*dh, ow*sw + j*dw], stored channel-major
    (a view of (C*kh*kw, N, OH*OW)), or contiguous with ``batch_major``."""
    n, c = x.shape[:2]
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    oh, ow = conv_output_shape(x.shape, kernel, stride, padding, dilation)
    padded = _padded(xp, x, padding)
    s_n, s_c, s_h, s_w = padded.strides
    if batch_major:
        windows = xp.lib.stride_tricks.as_strided(
            padded, (n, c, kh, kw, oh, ow), (s_n, s_c, s_h * dh, s_w * dw, s_h * sh, s_w * sw))
        return xp.ascontiguousarray(windows).reshape(n, c * kh * kw, oh * ow)  # one copy
    windows = xp.lib.stride_tricks.as_strided(
        padded, (c, kh, kw, n, oh, ow), (s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw))
    return xp.ascontiguousarray(windows).reshape(c * kh * kw, n, oh * ow).transpose(1, 0, 2)  # one copy


def col2im(xp, cols, x_shape, kernel, stride, padding, dilation):
    """The adjoint of im2col: x[n, c, h, w] = sum of the cols entries that read input pixel (h, w)."""
    n, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh, ow = conv_output_shape(x_shape, kernel, stride, padding, dilation)
    if cols.shape != (n, c * kh * kw, oh * ow):
        raise ValueError(f"col2im: cols of shape {tuple(cols.shape)} do not fit x_shape {tuple(x_shape)} with "
                         f"kernel {tuple(kernel)}: expected {(n, c * kh * kw, oh * ow)}")
    planes = cols.transpose(1, 0, 2).reshape(c, kh, kw, n, oh, ow)  # a view for channel-major cols
    image = xp.zeros((c, n, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)  # channel-major too: sequential adds
    for i in range(kh):  # offsets (i, j) write disjoint pixels within one slice: no aliasing
        for j in range(kw):
            image[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw] += planes[:, i, j]
    return xp.ascontiguousarray(image[:, :, ph:ph + h, pw:pw + w].transpose(1, 0, 2, 3))
