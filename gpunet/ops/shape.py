"""Operations that move or select elements: reshape, transpose, broadcast, indexing, concatenation."""
from __future__ import annotations

import numbers

from ..autograd.function import Function
from ..kinds import integral


def _normalize_dim(dim, ndim, op):
    if not integral(dim):
        raise TypeError(f"{op}: dim must be an integer, got {dim!r}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):  # a 0-d tensor takes dim 0 or -1, as in PyTorch
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimension(s)")
    return dim % ndim if ndim else 0


class SumTo(Function):
    """Sum a broadcast gradient back down to the shape of the operand it was broadcast from."""

    def __init__(self, shape):
        self.shape = shape

    def forward(self, backend, x):
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(self.shape) if n == 1 and x.shape[i + lead] != 1)
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(self.shape)

    def backward(self, gy):
        return broadcast_to(gy, self.inputs[0].shape)


class BroadcastTo(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, backend, x):
        return backend.xp.broadcast_to(x, self.shape)

    def backward(self, gy):
        return sum_to(gy, self.inputs[0].shape)


def sum_to(x, shape):
    """``x`` summed over broadcast dimensions so that it has ``shape``."""
    shape = tuple(shape)
    return x if x.shape == shape else SumTo(shape).apply(x)


def broadcast_to(x, shape):
    """``x`` broadcast (without copying) to ``shape``; -1 keeps a dimension, as in Tensor.expand."""
    shape = tuple(shape)
    lead = len(shape) - x.ndim
    shape = tuple(x.shape[i - lead] if n == -1 else n for i, n in enumerate(shape))
    if x.shape == shape:
        return x
    try:
        x.backend.xp.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {tuple(x.shape)} to {shape}") from None
    return BroadcastTo(shape).apply(x)


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, backend, x):
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.inputs[0].shape)


def reshape(x, shape):
    """``x`` with a new shape of the same number of elements (one dimension may be -1)."""
    if type(shape) is not tuple and isinstance(shape, numbers.Integral):  # (an ABC check is slow: not for tuples)
        shape = (shape,)
    shape = tuple(map(int, shape))
    if shape == x.data.shape:
        return x
    if min(shape, default=0) >= -1:  # NumPy would read any negative size as the unknown one, PyTorch only -1
        try:  # the array's reshape checks the element count (and one -1 at most): not checked again in Python
            return Reshape(shape).apply(x)
        except ValueError:
            pass
    raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(x.shape)} ({x.data.size} elements) to {shape}")


def flatten(x, start_dim=0, end_dim=-1):
    """Merge dimensions ``start_dim`` to ``end_dim`` into one."""
    if x.ndim == 0:
        return reshape(x, (1,))
    start = _normalize_dim(start_dim, x.ndim, "flatten")
    end = _normalize_dim(end_dim, x.ndim, "flatten")
    merged = 1
    for n in x.shape[start:end + 1]:
        merged *= n
    return reshape(x, x.shape[:start] + (merged,) + x.shape[end + 1:])


def squeeze(x, dim=None):
    """Drop dimensions of size one (all of them, or only ``dim``)."""
    if dim is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    d = _normalize_dim(dim, x.ndim, "squeeze")
    return x if x.shape[d] != 1 else reshape(x, x.shape[:d] + x.shape[d + 1:])


def unsqueeze(x, dim):
    """Insert a dimension of size one at ``dim``."""
    d = _normalize_dim(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


class Permute(Function):
    def __init__(self, dims):
        self.dims = dims

    def forward(self, backend, x):
        return x.transpose(self.dims)

    def backward(self, gy):
        inverse = [0] * len(self.dims)
        for i, d in enumerate(self.dims):
            inverse[d] = i
        return permute(gy, tuple(inverse))


def permute(x, dims):
    """Reorder the dimensions of ``x`` (a view)."""
    ndim = x.data.ndim
    dims = tuple([_normalize_dim(d, ndim, "permute") for d in dims])
    identity = tuple(range(ndim))
    if dims == identity:
        return x
    if tuple(sorted(dims)) != identity:
        raise ValueError(f"permute: {dims} is not a permutation of the {ndim} dimensions of shape {tuple(x.shape)}")
    return Permute(dims).apply(x)


def transpose(x, dim0, dim1):
    """Swap two dimensions of ``x``."""
    dims = list(range(x.ndim))
    a, b = _normalize_dim(dim0, x.ndim, "transpose"), _normalize_dim(dim1, x.ndim, "transpose")
    dims[a], dims[b] = dims[b], dims[a]
    return permute(x, dims)


def _index_key(key):
    """An indexing key with tensors replaced by their arrays."""
    from ..autograd.tensor import Tensor

    if isinstance(key, tuple):
        return tuple(k.data if isinstance(k, Tensor) else k for k in key)
    return key.data if isinstance(key, Tensor) else key


def _is_basic(key):
    parts = key if isinstance(key, tuple) else (key,)
    return all(isinstance(k, (slice, numbers.Integral, type(None), type(Ellipsis))) for k in parts)


class GetItem(Function):
    def __init__(self, key):
        self.key = key

    def forward(self, backend, x):
        return x[self.key]

    def backward(self, gy):
        return GetItemGrad(self.key, self.inputs[0].shape).apply(gy)


class GetItemGrad(Function):
    """The adjoint of indexing: scatter-add a gradient into zeros of the indexed tensor's shape."""

    def __init__(self, key, shape):
        self.key = key
        self.shape = shape

    def forward(self, backend, gy):
        gx = backend.xp.zeros(self.shape, dtype=gy.dtype)
        if _is_basic(self.key):
            gx[self.key] = gy
        else:
            backend.xp.add.at(gx, self.key, gy)
        return gx

    def backward(self, ggx):
        return GetItem(self.key).apply(ggx)


def getitem(x, key):
    """``x[key]`` with NumPy's rules: slices, integers, None, Ellipsis, integer and boolean index arrays."""
    try:
        return GetItem(_index_key(key)).apply(x)
    except IndexError as exc:
        raise IndexError(f"indexing a tensor of shape {tuple(x.shape)}: {exc}") from None


class Concatenate(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, backend, *xs):
        return backend.xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        grads, start = [], 0
        for x in self.inputs:
            stop = start + x.shape[self.axis]
            key = (slice(None),) * self.axis + (slice(start, stop),)
            grads.append(getitem(gy, key))
            start = stop
        return tuple(grads)


def cat(tensors, dim=0):
    """Join tensors of equal shape except along ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    first = tensors[0]
    axis = _normalize_dim(dim, first.ndim, "cat")
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim or t.shape[:axis] + t.shape[axis + 1:] != first.shape[:axis] + first.shape[axis + 1:]:
            raise ValueError(
                f"cat: tensors[{i}] has shape {tuple(t.shape)}, which does not match tensors[0] "
                f"{tuple(first.shape)} outside dim {dim}"
            )
    return Concatenate(axis).apply(*tensors)


def stack(tensors, dim=0):
    """Join tensors of identical shape along a new dimension ``dim``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise ValueError(f"stack: tensors[{i}] has shape {tuple(t.shape)} but tensors[0] has {tuple(tensors[0].shape)}")
    return cat([unsqueeze(t, dim) for t in tensors], dim)


def split(x, split_size_or_sections, dim=0):
    """Pieces of ``x`` along ``dim``: equal chunks of a given size, or a list of sizes."""
    axis = _normalize_dim(dim, x.ndim, "split")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, numbers.Integral):
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, but dim {dim} has size {n}")
    pieces, start = [], 0
    for size in sizes:
        pieces.append(getitem(x, (slice(None),) * axis + (slice(start, start + size),)))
        start += size
    return tuple(pieces)


def chunk(x, chunks, dim=0):
    """``x`` split into ``chunks`` nearly equal pieces along ``dim``."""
    n = x.shape[_normalize_dim(dim, x.ndim, "chunk")]
    return split(x, -(-n // chunks), dim)
