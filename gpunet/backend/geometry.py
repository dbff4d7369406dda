"""Output sizes of sliding-window operations (convolution, pooling): shared by the ops, the kernel references and
the launchers, so that every layer computes a shape one way."""
from __future__ import annotations


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """floor((size + 2 padding - dilation (kernel - 1) - 1) / stride) + 1: the output length along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_output_shape(x_shape, kernel, stride, padding, dilation) -> tuple:
    """(OH, OW) for x of shape (N, C, H, W); a ValueError when the dilated kernel does not fit the padded input."""
    out = tuple(conv_output_size(x_shape[2 + a], kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))
    if min(out) < 1:
        padded = tuple(x_shape[2 + a] + 2 * padding[a] for a in (0, 1))
        span = tuple(dilation[a] * (kernel[a] - 1) + 1 for a in (0, 1))
        raise ValueError(f"im2col: the padded input ({padded[0]}x{padded[1]}) of x {tuple(x_shape)} is smaller than "
                         f"the dilated kernel ({span[0]}x{span[1]}); pad more or use a smaller kernel or dilation")
    return out


def pool_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """Output length along one axis, PyTorch's rule (``pooling_output_shape``): with ``ceil_mode`` the last window
    may run past the input but must start inside it or its left padding."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out
