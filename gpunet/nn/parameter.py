"""Parameter: a leaf tensor that a Module registers as one of its learnable weights."""
from __future__ import annotations

import numpy

from .. import backend as _backend
from ..autograd.tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor with ``requires_grad=True`` (by default) that ``Module.__setattr__`` registers.

    ``Parameter(data)`` takes a Tensor (sharing its array, detached from any graph), a NumPy array or nested
    lists; ``Parameter()`` is an empty float32 parameter.
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            backend = _backend.current()
            array = backend.xp.empty((0,), dtype=numpy.float32)
        elif isinstance(data, Tensor):
            backend, array = data.backend, data.data
        else:
            backend = _backend.current()
            host = numpy.asarray(data)
            if host.dtype.kind != "f":
                host = host.astype(numpy.float32)
            array = backend.asarray(host)
        if requires_grad and array.dtype.kind not in "fc":
            raise TypeError(f"Parameter: only floating-point tensors can require gradients; got dtype {array.dtype}")
        super().__init__(array, backend, bool(requires_grad))

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()
