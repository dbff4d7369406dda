"""The Tensor: an array on a device, with the graph link that autograd follows backwards."""
from __future__ import annotations

import numbers

import numpy

from .. import backend as _backend
from . import engine


class Tensor:
    """An n-dimensional array on a device (CPU or CUDA) that can record the operations made from it.

    Create tensors with ``gpunet.tensor(...)``; the constructor here is internal.
    """

    __slots__ = ("data", "grad", "requires_grad", "creator", "output_index", "backend", "generation", "__weakref__")
    __array_priority__ = 1000  # NumPy scalars and arrays defer to Tensor's reflected operators

    def __init__(self, data, backend, requires_grad=False, creator=None, output_index=0):
        self.data = data
        self.backend = backend
        self.requires_grad = requires_grad
        self.creator = creator
        self.output_index = output_index
        self.generation = 0 if creator is None else creator.generation + 1
        self.grad = None

    # ----- properties -----------------------------------------------------------------------------------------
    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return self.backend.device

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self.creator is None

    @property
    def T(self):
        return ops.permute(self, tuple(reversed(range(self.ndim))))

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        body = numpy.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extras = "" if self.device.kind == "cpu" else f", device='{self.device}'"
        if self.dtype != numpy.float32 and self.dtype.kind == "f":
            extras += f", dtype={self.dtype}"
        if self.creator is not None:
            extras += f", grad_fn=<{type(self.creator).__name__}>"
        elif self.requires_grad:
            extras += ", requires_grad=True"
        return f"tensor({body}{extras})"

    # ----- conversion -----------------------------------------------------------------------------------------
    def numpy(self):
        """A host (NumPy) copy of the data."""
        return self.backend.to_numpy(self.data)

    def item(self):
        """The one element as a Python number (a copy to the host, through the backend's ``to_numpy``)."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {tuple(self.shape)}")
        return self.backend.to_numpy(self.data.reshape(())).item()

    def tolist(self):
        return self.numpy().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError("the truth value of a tensor with more than one element is ambiguous; use .any() or .all()")
        return bool(self.item())

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data, self.backend)

    def requires_grad_(self, requires_grad: bool = True):
        if self.creator is not None and not requires_grad:
            raise RuntimeError("requires_grad_(False) is only for leaf tensors; use .detach() on a computed tensor")
        self.requires_grad = requires_grad
        return self

    def to(self, device=None, dtype=None):
        """A copy on another device and/or with another dtype (differentiable); self when nothing changes."""
        out = self
        if dtype is not None and numpy.dtype(dtype) != self.dtype:
            out = ops.cast(out, numpy.dtype(dtype))
        if device is not None:
            target = _backend.get_backend(device)
            if target is not out.backend:
                out = ops.transfer(out, target)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index: int = 0):
        return self.to(f"cuda:{index}")

    def float(self):
        return self.to(dtype=numpy.float32)

    def double(self):
        return self.to(dtype=numpy.float64)

    def long(self):
        return self.to(dtype=numpy.int64)

    def type_as(self, other):
        return self.to(dtype=other.dtype)

    # ----- autograd -------------------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=None, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``; ``grad`` defaults to 1 for a scalar. The graph is
        released unless ``retain_graph`` (default: ``create_graph``): a second backward through it raises."""
        engine.backward([self], None if grad is None else [grad], retain_graph, create_graph)

    def zero_(self):
        """Fill with zeros in place (for gradients and buffers; not recorded in the graph)."""
        self.data[...] = 0
        return self

    # ----- arithmetic -----------------------------------------------------------------------------------------
    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __getitem__(self, key):
        return ops.getitem(self, key)

    # comparisons give boolean tensors outside the graph
    def __lt__(self, other):
        return ops.compare(self, other, "less")

    def __le__(self, other):
        return ops.compare(self, other, "less_equal")

    def __gt__(self, other):
        return ops.compare(self, other, "greater")

    def __ge__(self, other):
        return ops.compare(self, other, "greater_equal")

    def __eq__(self, other):
        return ops.compare(self, other, "equal")

    def __ne__(self, other):
        return ops.compare(self, other, "not_equal")

    __hash__ = object.__hash__

    # ----- methods mirroring the functional ops ---------------------------------------------------------------
    def sum(self, dim=None, keepdim=False):
        return ops.sum(self, dim, keepdim)

    def mean(self, dim=None, keepdim=False):
        return ops.mean(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):
        return ops.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return ops.min(self, dim, keepdim)

    def var(self, dim=None, keepdim=False, unbiased=True):
        return ops.var(self, dim, keepdim, unbiased)

    def std(self, dim=None, keepdim=False, unbiased=True):
        return ops.std(self, dim, keepdim, unbiased)

    def argmax(self, dim=None, keepdim=False):
        return ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return ops.argmin(self, dim, keepdim)

    def reshape(self, *shape):
        return ops.reshape(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else shape)

    view = reshape

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def squeeze(self, dim=None):
        return ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return ops.unsqueeze(self, dim)

    def expand(self, *shape):
        return ops.broadcast_to(self, shape[0] if len(shape) == 1 and not isinstance(shape[0], numbers.Integral) else shape)

    def transpose(self, dim0, dim1):
        return ops.transpose(self, dim0, dim1)

    def t(self):
        return ops.transpose(self, 0, 1) if self.ndim == 2 else self

    def permute(self, *dims):
        return ops.permute(self, dims[0] if len(dims) == 1 and not isinstance(dims[0], numbers.Integral) else dims)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def abs(self):
        return ops.abs(self)

    def pow(self, exponent):
        return ops.pow(self, exponent)

    def clamp(self, min=None, max=None):
        return ops.clamp(self, min, max)

    clip = clamp

    def sigmoid(self):
        return ops.sigmoid(self)

    def tanh(self):
        return ops.tanh(self)

    def relu(self):
        return ops.relu(self)

    def softmax(self, dim):
        return ops.softmax(self, dim)

    def log_softmax(self, dim):
        return ops.log_softmax(self, dim)

    def all(self):
        return bool(self.data.all())

    def any(self):
        return bool(self.data.any())


from .. import ops  # noqa: E402  (ops build on Tensor; bound here for the operator methods)

