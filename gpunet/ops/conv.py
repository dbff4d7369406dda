"""Convolution (cross-correlation, as in PyTorch): conv1d, conv2d, conv_transpose2d, unfold and fold.

conv2d is one graph node: forward = the backend's fused ``im2col`` + one matrix product with the weight per
group over the whole batch (cuBLAS through ``xp.matmul`` on CuPy). Its backward is written in differentiable ops:
the input gradient is ``Col2Im(weight^T @ gy)`` and the weight gradient ``gy @ Im2Col(x)^T``, where ``Im2Col``
and ``Col2Im`` are graph nodes that are each other's backward, so derivatives of any order work. conv1d is conv2d
with H = 1.
"""
from __future__ import annotations

import numpy

from ..autograd.function import Function
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.grad_mode import state as _grad_state
from ..autograd.tensor import Tensor
from ..backend import cuda_settings
from ..backend.geometry import conv_output_size
from ..backend.references.conv import transposed
from ..kinds import integral
from .arithmetic import add, matmul
from .reduction import sum
from .shape import getitem, permute, reshape, transpose


class Im2Col(Function):
    """x (N, C, H, W) -> cols (N, C*kh*kw, OH*OW); the backward is Col2Im."""

    def __init__(self, x_shape, kernel, stride, padding, dilation):
        self.x_shape, self.geometry = tuple(x_shape), (kernel, stride, padding, dilation)

    def forward(self, backend, x):
        return backend.im2col(x, *self.geometry)

    def backward(self, gcols):
        return Col2Im(self.x_shape, *self.geometry).apply(gcols)


class Col2Im(Function):
    """cols (N, C*kh*kw, OH*OW) -> x (N, C, H, W), the adjoint of im2col; the backward is Im2Col."""

    def __init__(self, x_shape, kernel, stride, padding, dilation):
        self.x_shape, self.geometry = tuple(x_shape), (kernel, stride, padding, dilation)

    def forward(self, backend, cols):
        return backend.col2im(cols, self.x_shape, *self.geometry)

    def backward(self, gx):
        return Im2Col(self.x_shape, *self.geometry).apply(gx)


class Conv2d(Function):
    """y = conv2d(x, weight[, bias]) for x (N, C, H, W), weight (O, C/groups, kh, kw), symmetric zero padding.

    On the CPU the columns are stored batch-innermost (see ``gpunet.backend.references.conv``), so each group's
    product is one GEMM over the whole batch: weight (O/G, C/G*kh*kw) @ cols (C/G*kh*kw, OH*OW*N), in the forward
    pass and in both gradients (batched over the G groups); the bias is added to its (O, OH*OW, N) result, which
    is then copied block by block into the (N, O, OH, OW) output (``transposed``). On CUDA the forward's columns
    are batch-major and one batched GEMM (cuBLAS, the weight broadcast over the samples) writes the output in
    place, the bias added in place: the output is written once. (NumPy's matmul leaves BLAS for a broadcast operand: 4-9x slower on the CPU. CuPy runs
    a broadcast float32 matmul as ``cublasSgemmBatched``, which its TF32 compute type does not reach, so with TF32
    allowed the CUDA forward keeps the one-GEMM form, whose ``gemmEx`` honours it.)

    Memory: the graph keeps the input anyway; on CUDA the columns (kh*kw/(sh*sw) times the input, 9x for a 3x3
    convolution) are kept for the weight gradient only when they are no larger than the input (1x1 kernels,
    strides at least the kernel), and otherwise rebuilt from the input in the backward (one im2col). The CPU keeps
    them: rebuilding cost the digits CNN's epoch about 7% (scripts/bench_cpu.py, 0.89x -> 0.83x PyTorch), and host
    memory is rarely what limits these networks."""

    def __init__(self, kernel, stride, padding, dilation, groups, out_shape):
        self.geometry = (kernel, stride, padding, dilation)
        self.groups, self.out_shape = groups, out_shape

    def _sizes(self, x_shape, weight_shape):
        """N, O, G, O/G, C/G*kh*kw and L (explicit: a -1 cannot be resolved when the batch is empty)."""
        n, o, g = x_shape[0], weight_shape[0], self.groups
        return n, o, g, o // g, x_shape[1] // g * weight_shape[2] * weight_shape[3], self.out_shape[0] * self.out_shape[1]

    def forward(self, backend, x, weight, bias=None):
        xp = backend.xp
        n, o, g, og, ckg, l = self._sizes(x.shape, weight.shape)
        batch_major = backend.name == "cupy" and not (x.dtype == numpy.float32 and cuda_settings.allow_tf32())
        cols = backend.im2col(x, *self.geometry, batch_major)  # (N, C*K, L)
        self.cols = cols if cols.size <= x.size or backend.name != "cupy" else None  # else rebuilt in backward
        if batch_major:  # one batched GEMM writes the output: (G, O/G, CK/G) @ (N, G, CK/G, L) -> (N, G, O/G, L)
            out = xp.empty((n, o) + self.out_shape, dtype=x.dtype)
            xp.matmul(weight.reshape(g, og, ckg), cols.reshape(n, g, ckg, l), out=out.reshape(n, g, og, l))
            if bias is not None:
                out += bias.reshape(1, o, 1, 1)
            return out
        y = xp.matmul(weight.reshape(g, og, ckg), cols.transpose(1, 2, 0).reshape(g, ckg, l * n))  # (G, O/G, L*N)
        if bias is not None:
            rows = y.reshape(o, l * n)
            rows += bias.reshape(o, 1)
        out = xp.empty((n, o) + self.out_shape, dtype=y.dtype)
        transposed(xp, y.reshape(o * l, n), out.reshape(n, o * l))  # (O, L, N) -> (N, O, OH, OW)
        return out

    def backward(self, gy):
        if not _grad_state.enabled:
            return self._first_order_backward(gy)
        x, weight = self.inputs[0], self.inputs[1]
        need = self.needs_input_grad
        n, o, g, og, ckg, l = self._sizes(x.shape, weight.shape)

        def per_group(t, rows, columns):  # (G, rows, columns), 2-D for one group: matrix products of 2-D operands
            return reshape(t, (rows, columns) if g == 1 else (g, rows, columns))  # take transposes without a copy

        gy3 = reshape(gy, (n, o, l))
        gy_g = per_group(permute(gy3, (1, 2, 0)), og, l * n)  # (O, L, N): the columns' batch-innermost order
        gx = gw = gb = None
        if need[0]:
            gcols = matmul(transpose(per_group(weight, og, ckg), -1, -2), gy_g)  # (G, C/G*K, L*N)
            gcols = permute(reshape(gcols, (g * ckg, l, n)), (2, 0, 1))  # (N, C*K, L), stored batch-innermost
            gx = Col2Im(x.shape, *self.geometry).apply(gcols)
        if need[1]:
            if self.cols is None or (is_grad_enabled() and x.requires_grad):  # rebuilt, or a node of x in a graph
                cols = Im2Col(x.shape, *self.geometry).apply(x)
            else:
                cols = Tensor(self.cols, x.backend)
            cols_g = per_group(permute(cols, (1, 2, 0)), ckg, l * n)  # a view when batch-innermost
            gw = reshape(matmul(gy_g, transpose(cols_g, -1, -2)), weight.shape)
        if len(need) > 2 and need[2]:
            gb = sum(gy3, (0, 2))
        return (gx, gw) if len(need) == 2 else (gx, gw, gb)

    def _first_order_backward(self, gy):
        """The same products on arrays, when the backward itself is not recorded (every training step): no graph
        nodes, and the bias gradient summed over gy's contiguous (O, L*N) copy."""
        x, weight = self.inputs[0], self.inputs[1]
        backend, need = x.backend, self.needs_input_grad
        n, o, g, og, ckg, l = self._sizes(x.shape, weight.shape)
        shape = (og, l * n) if g == 1 else (g, og, l * n)  # 2-D for one group, as in backward
        gy_g = transposed(backend.xp, gy.data.reshape(n, o * l)).reshape(shape)  # (O, L, N)
        gx = gw = None
        if need[0]:
            w_g = weight.data.reshape(shape[:-2] + (og, ckg))
            gcols = (w_g.swapaxes(-1, -2) @ gy_g).reshape(g * ckg, l, n).transpose(2, 0, 1)  # batch-innermost
            gx = Tensor(backend.col2im(gcols, x.shape, *self.geometry), backend)
        if need[1]:
            cols = self.cols if self.cols is not None else backend.im2col(x.data, *self.geometry)
            cols_g = cols.transpose(1, 2, 0).reshape(shape[:-2] + (ckg, l * n))  # a view when batch-innermost
            gw = Tensor((gy_g @ cols_g.swapaxes(-1, -2)).reshape(weight.shape), backend)
        if len(need) == 2:
            return gx, gw
        return gx, gw, (Tensor(gy_g.sum(-1).reshape(o), backend) if need[2] else None)


# ----- arguments ------------------------------------------------------------------------------------------------
def _is_int(value) -> bool:
    return type(value) is not bool and integral(value)


def int_tuple(value, n: int, name: str, where, minimum: int) -> tuple:
    """An int or a sequence of n ints as a tuple of n ints >= minimum. ``where`` (in errors): a name, or the layer."""
    if _is_int(value):
        values = (int(value),) * n
    elif isinstance(value, (tuple, list)) and len(value) == n and all(_is_int(v) for v in value):
        values = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{where}: {name} must be an int or a tuple of {n} int(s), got {value!r}")
    if min(values) < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return values


def conv_padding(padding, n, kernel, stride, dilation, where):
    """(symmetric padding, crop: a slice of the output per axis). padding='same' with an odd total pads one more on
    the right, as PyTorch; here both sides get the larger half and the first output (the one extra on the left) is
    cropped. padding='causal' (1-D): the left padding d(k-1) on both sides, the last d(k-1) outputs cropped, so
    output t depends only on inputs <= t."""
    whole = (slice(None),) * n
    if not isinstance(padding, str):
        return int_tuple(padding, n, "padding", where, 0), whole
    if padding == "valid":
        return (0,) * n, whole
    if padding not in ("same", "causal"):
        causal = ", 'causal'" if n == 1 else ""
        raise ValueError(f"{where}: padding must be an int, a tuple of {n} int(s), 'same'{causal} or 'valid', got "
                         f"{padding!r}")
    if padding == "causal" and n != 1:
        raise ValueError(f"{where}: padding='causal' is for 1-D convolutions (Conv1d, conv1d) only")
    if any(s != 1 for s in stride):
        raise ValueError(f"{where}: padding={padding!r} is not supported for strided convolutions (stride={stride}); "
                         f"give the padding as numbers")
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    if padding == "causal":
        return tuple(totals), tuple(slice(None, -t) if t else slice(None) for t in totals)
    return tuple((t + 1) // 2 for t in totals), tuple(slice(1, None) if t % 2 else slice(None) for t in totals)


def _check_operands(where, x, weight, bias, n, groups, transposed=False):
    dims = "(N, C, L)" if n == 1 else "(N, C, H, W)"
    wdims = ("(in_channels, out_channels/groups, " if transposed else "(out_channels, in_channels/groups, ") + \
        ("k)" if n == 1 else "kh, kw)")
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"{where}: input and weight must be gpunet Tensors, got {type(x).__name__} and "
                        f"{type(weight).__name__}")
    if weight.ndim != n + 2:
        raise ValueError(f"{where}: weight must be {n + 2}-D {wdims}, got shape {tuple(weight.shape)}")
    if x.ndim not in (n + 1, n + 2):
        raise ValueError(f"{where}: input must be {n + 2}-D {dims} or {n + 1}-D without the batch dimension, "
                         f"got shape {tuple(x.shape)} (weight {tuple(weight.shape)})")
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != x.dtype):
        raise TypeError(f"{where}: input has dtype {x.dtype} but the weight has {weight.dtype}"
                        + (f" and the bias {bias.dtype}" if bias is not None else "")
                        + "; convert the input with .to(dtype=...) or the layer with .to(dtype=...)")
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"{where}: groups must be a positive int, got {groups!r}")
    channels = x.shape[0] if x.ndim == n + 1 else x.shape[1]
    per_group = weight.shape[0] if transposed else weight.shape[1]
    outs = weight.shape[1] * groups if transposed else weight.shape[0]
    if transposed:
        if channels != per_group:
            raise ValueError(f"{where}: input of shape {tuple(x.shape)} has {channels} channels but weight of shape "
                             f"{tuple(weight.shape)} expects in_channels = {per_group}")
        if per_group % groups:
            raise ValueError(f"{where}: in_channels = {per_group} (weight {tuple(weight.shape)}) is not divisible "
                             f"by groups = {groups}")
    else:
        if outs % groups:
            raise ValueError(f"{where}: out_channels = {outs} (weight {tuple(weight.shape)}) is not divisible by "
                             f"groups = {groups}")
        if channels != per_group * groups:
            raise ValueError(f"{where}: input of shape {tuple(x.shape)} has {channels} channels but weight of shape "
                             f"{tuple(weight.shape)} with groups = {groups} expects in_channels = "
                             f"{per_group} * {groups} = {per_group * groups}")
    if bias is not None and tuple(bias.shape) != (outs,):
        raise ValueError(f"{where}: bias must have shape ({outs},) (out_channels), got {tuple(bias.shape)}")


def convolution(x, weight, bias, stride, padding, dilation, groups, n, where):
    """conv1d (n = 1) or conv2d (n = 2): validation, then the Conv2d node on 4-D views."""
    _check_operands(where, x, weight, bias, n, groups)
    kernel = tuple(weight.shape[2:])
    stride = int_tuple(stride, n, "stride", where, 1)
    dilation = int_tuple(dilation, n, "dilation", where, 1)
    pad, crop = conv_padding(padding, n, kernel, stride, dilation, where)
    unbatched = x.ndim == n + 1
    size = tuple(x.shape[-n:])
    for a in range(n):
        if size[a] + 2 * pad[a] < dilation[a] * (kernel[a] - 1) + 1:
            padded = "x".join(str(s + 2 * p) for s, p in zip(size, pad))
            span = "x".join(str(d * (k - 1) + 1) for k, d in zip(kernel, dilation))
            raise ValueError(f"{where}: the padded input ({padded}) of input {tuple(x.shape)} is smaller than the "
                             f"dilated kernel ({span}) of weight {tuple(weight.shape)}; pad more or use a smaller "
                             f"kernel or dilation")
    if n == 1:  # (N, C, L) as (N, C, 1, L)
        kernel, stride, pad, dilation = (1,) + kernel, (1,) + stride, (0,) + pad, (1,) + dilation
        crop = (slice(None),) + crop
        weight = reshape(weight, weight.shape[:2] + (1,) + kernel[1:])
    x4 = reshape(x, (1,) * unbatched + x.shape[:-n] + (1,) * (2 - n) + size)
    out = tuple(conv_output_size(x4.shape[2 + a], kernel[a], stride[a], pad[a], dilation[a]) for a in (0, 1))
    node = Conv2d(kernel, stride, pad, dilation, groups, out)
    y = node.apply(x4, weight) if bias is None else node.apply(x4, weight, bias)
    if any(c != slice(None) for c in crop):
        y = getitem(y, (slice(None), slice(None)) + crop)
    return reshape(y, (y.shape[1:2] if unbatched else y.shape[:2]) + y.shape[4 - n:])


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation, PyTorch's ``F.conv2d``: input (N, C, H, W) or (C, H, W), weight
    (out_channels, C/groups, kh, kw); padding an int, a pair, 'valid' or 'same' (stride 1)."""
    return convolution(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D cross-correlation, PyTorch's ``F.conv1d``: input (N, C, L) or (C, L), weight (out_channels, C/groups, k);
    padding an int, 'valid', 'same' or 'causal' (stride 1: left padding d(k-1), output t depends only on inputs
    <= t, output length L)."""
    return convolution(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """The adjoint of conv2d with respect to its input, PyTorch's ``F.conv_transpose2d``: weight
    (in_channels, out_channels/groups, kh, kw); output size (H - 1) s - 2 p + d (k - 1) + output_padding + 1
    (output_padding < stride). Built as Col2Im(weight^T @ x) from differentiable ops, the columns batch-innermost
    as conv2d's (one GEMM per group over the whole batch)."""
    return convolution_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation,
                             "conv_transpose2d")


def convolution_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation, where):
    _check_operands(where, input, weight, bias, 2, groups, transposed=True)
    kernel = tuple(weight.shape[2:])
    stride = int_tuple(stride, 2, "stride", where, 1)
    dilation = int_tuple(dilation, 2, "dilation", where, 1)
    padding = int_tuple(padding, 2, "padding", where, 0)
    output_padding = int_tuple(output_padding, 2, "output_padding", where, 0)
    if any(op >= s for op, s in zip(output_padding, stride)):
        raise ValueError(f"{where}: output_padding {output_padding} must be smaller than stride {stride}")
    unbatched = input.ndim == 3
    x = reshape(input, (1,) + input.shape) if unbatched else input
    n, c, h, w = x.shape
    g = groups
    out_c = weight.shape[1] * g
    size = tuple((s_in - 1) * s - 2 * p + d * (k - 1) + op + 1
                 for s_in, k, s, p, d, op in zip((h, w), kernel, stride, padding, dilation, output_padding))
    if min(size) < 1:
        raise ValueError(f"{where}: input {tuple(input.shape)} with weight {tuple(weight.shape)}, stride {stride}, "
                         f"padding {padding} gives an empty output {size}; use less padding")
    k = kernel[0] * kernel[1]
    w_g = reshape(weight, (c, -1) if g == 1 else (g, c // g, -1))  # (G, C/G, O/G * K)
    x_g = reshape(permute(x, (1, 2, 3, 0)), (c, h * w * n) if g == 1 else (g, c // g, h * w * n))
    cols = matmul(transpose(w_g, -1, -2), x_g)  # one GEMM per group for the batch: (G, O/G * K, H*W*N)
    cols = permute(reshape(cols, (out_c * k, h * w, n)), (2, 0, 1))  # (N, O*K, H*W), stored batch-innermost
    y = Col2Im((n, out_c) + size, kernel, stride, padding, dilation).apply(cols)
    if bias is not None:
        y = add(y, reshape(bias, (1, out_c, 1, 1)))
    return reshape(y, y.shape[1:]) if unbatched else y


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    """PyTorch's ``F.unfold``: sliding blocks of input (N, C, H, W) as columns (N, C*kh*kw, L)."""
    if not isinstance(input, Tensor) or input.ndim != 4:
        raise ValueError(f"unfold: input must be a 4-D Tensor (N, C, H, W), got {getattr(input, 'shape', input)!r}")
    args = (int_tuple(kernel_size, 2, "kernel_size", "unfold", 1), int_tuple(stride, 2, "stride", "unfold", 1),
            int_tuple(padding, 2, "padding", "unfold", 0), int_tuple(dilation, 2, "dilation", "unfold", 1))
    return Im2Col(input.shape, *args).apply(input)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    """PyTorch's ``F.fold``: columns (N, C*kh*kw, L) summed back into an image (N, C, *output_size)."""
    kernel = int_tuple(kernel_size, 2, "kernel_size", "fold", 1)
    size = int_tuple(output_size, 2, "output_size", "fold", 1)
    if not isinstance(input, Tensor) or input.ndim != 3 or input.shape[1] % (kernel[0] * kernel[1]):
        raise ValueError(f"fold: input must be a 3-D Tensor (N, C*kh*kw, L) with kernel_size {kernel}, got "
                         f"{getattr(input, 'shape', input)!r}")
    x_shape = (input.shape[0], input.shape[1] // (kernel[0] * kernel[1])) + size
    return Col2Im(x_shape, kernel, int_tuple(stride, 2, "stride", "fold", 1), int_tuple(padding, 2, "padding", "fold", 0),
                  int_tuple(dilation, 2, "dilation", "fold", 1)).apply(input)
