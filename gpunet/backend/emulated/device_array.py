"""The emulated device's array: NumPy memory that, like a CuPy array, refuses to be mixed with host NumPy arrays.

On a GPU, ``cupy_array + numpy_array`` or ``cupy.where(numpy_mask, a, b)`` raises ``TypeError``: data must be moved
explicitly (``cupy.asarray``, ``cupy.asnumpy``). ``DeviceArray`` applies the same rule to NumPy ufuncs and array
functions, so code that would mix host and device arrays on a GPU fails on "cuda-emu" too. NumPy scalars and
Python numbers mix freely, as in CuPy, and results that NumPy would give as scalars (a full reduction, one element)
are 0-d device arrays, as in CuPy. (One difference remains: ``numpy.asarray(device_array)`` succeeds here,
where CuPy refuses the implicit conversion; NumPy gives subclasses no hook for it.)

Several devices: as in CuPy, an array belongs to the device that was current when its memory was made (a view, to
its base's device), and an operation runs on the current device. CuPy refuses an operand on another device unless
peer access between the two devices is possible, and then moves the work to the current device silently (with a
PerformanceWarning); here every such operation raises, in CuPy's words, since either outcome is a bug in gpunet.

Transfers to the host: every way a CuPy array's values reach the host (``cupy.asnumpy``, ``.item()``, ``.tolist()``,
``float()``, ``int()``, ``bool()``, ``operator.index``, printing, and indexing with a boolean mask, whose result size
CuPy copies to the host) copies from the device and waits for it;
``transfers_to_host(device)`` counts them per device here, so a test can see how often a loop waits for the device.

Streams: every operation runs on the current stream; once a second stream exists, each is checked against the
work of other streams on the same memory (``streams``).
"""
from __future__ import annotations

import threading

import numpy

from . import streams
from .linalg import tf32_operands

_state = threading.local()  # as cudaSetDevice, the current device is per host thread
_transfers: dict[int, int] = {}  # device -> device-to-host transfers so far (every host thread)
_transfers_lock = threading.Lock()


def current_device() -> int:
    """The index of the current emulated device (``cupy.cuda.Device().id``)."""
    return getattr(_state, "device", 0)


def set_current_device(index: int) -> None:
    _state.device = index


def transfers_to_host(device: int) -> int:
    """How many times values of device ``device``'s arrays were copied to the host (each one a wait for the device on
    a GPU) since the process started."""
    return _transfers.get(device, 0)


def count_transfer(device: int) -> None:
    with _transfers_lock:
        _transfers[device] = _transfers.get(device, 0) + 1


def _to_host(conversion):
    """``conversion`` of a DeviceArray (``item``, ``__float__``, ...), counted as a transfer to the host."""

    def converted(self, *args, **kwargs):
        if streams.tracking:
            streams.begin(f"DeviceArray.{conversion.__name__}", (self,))
        count_transfer(self.device_id)
        return conversion(self.view(numpy.ndarray), *args, **kwargs)

    converted.__name__ = conversion.__name__
    return converted


class DeviceArray(numpy.ndarray):
    """A "device" array of the emulated CUDA device (see the module docstring); ``device_id`` is its device."""

    device_id = 0

    def __array_finalize__(self, obj):
        if isinstance(obj, DeviceArray) and self.base is not None and not self.flags.owndata:
            self.device_id = obj.device_id  # a view: the memory of its base
        else:
            self.device_id = current_device()  # new memory (a copy, a result, a transfer)

    def __deepcopy__(self, memo):
        from .cupy_standin import Device

        with Device(self.device_id):  # CuPy copies on the array's own device
            return self.copy()

    @property
    def device(self):
        from .cupy_standin import Device

        return Device(self.device_id)

    @property
    def data(self):
        """The device pointer (``.data.ptr``, ``.data.device_id``), as CuPy's ``MemoryPointer``: what NCCL takes."""
        from .nccl_standin import MemoryPointer

        return MemoryPointer(self)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        what = f"{ufunc.__name__}{'' if method == '__call__' else '.' + method}"
        check_no_host(what, inputs + (out or ()))
        check_current_device(what, inputs + (out or ()))
        queue = streams.begin(what, inputs, out or ()) if streams.tracking else None
        if out is not None:
            kwargs["out"] = tuple(host_view(a) for a in out)
        operands = tf32_operands(ufunc, host_view(inputs)) if method == "__call__" else host_view(inputs)
        result = getattr(ufunc, method)(*operands, **kwargs)
        result = to_device(result) if out is None else out[0] if len(out) == 1 else out
        if queue is not None:
            streams.end(queue, what, leaves(result))
        return result

    def __getitem__(self, key):
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, numpy.ndarray) and k.dtype == bool for k in keys):
            count_transfer(self.device_id)  # CuPy copies the mask's count to the host to size the result
        result = to_device(super().__getitem__(key))
        if streams.tracking and isinstance(result, DeviceArray) and \
                not numpy.may_share_memory(host_view(result), host_view(self)):  # not a CuPy call of the program
            streams.end(streams.begin("indexing", (self, *keys)), "indexing", (result,))  # a copy: a kernel
        return result

    def __setitem__(self, key, value):
        queue = streams.begin("assignment", leaves((key, value)), (self,)) if streams.tracking else None
        super().__setitem__(key, value)
        if queue is not None:
            streams.end(queue, "assignment", (self,))

    # Values to the host: each a device-to-host copy that waits for the device, as in CuPy.
    item = _to_host(numpy.ndarray.item)
    tolist = _to_host(numpy.ndarray.tolist)
    __float__ = _to_host(numpy.ndarray.__float__)
    __int__ = _to_host(numpy.ndarray.__int__)
    __bool__ = _to_host(numpy.ndarray.__bool__)
    __index__ = _to_host(numpy.ndarray.__index__)
    __complex__ = _to_host(numpy.ndarray.__complex__)
    __format__ = _to_host(numpy.ndarray.__format__)
    __repr__ = _to_host(numpy.ndarray.__repr__)  # CuPy's repr reads "array([...])" too
    __str__ = _to_host(numpy.ndarray.__str__)

    def __array_function__(self, func, types, args, kwargs):
        check_no_host(func.__name__, (args, kwargs))
        check_current_device(func.__name__, (args, kwargs))
        out = kwargs.get("out")
        queue = streams.begin(func.__name__, leaves((args, kwargs)), leaves(out)) if streams.tracking else None
        result = to_device(func(*host_view(args), **host_view(kwargs)))
        if queue is not None:
            streams.end(queue, func.__name__, leaves((result, out)))
        return result


def check_no_host(what: str, values) -> None:
    """Raise TypeError when ``values`` (nested tuples, lists, dicts) hold a host NumPy array (CuPy would)."""
    for value in leaves(values):
        if isinstance(value, numpy.ndarray) and not isinstance(value, DeviceArray):
            raise TypeError(
                f"{what}: got a host NumPy array (shape {value.shape}, {value.dtype}) among device arrays; CuPy "
                f"refuses to mix them: move it with backend.asarray(...) (or the device array to the host)"
            )


def check_current_device(what: str, values) -> None:
    """Raise ValueError when a device array in ``values`` lives on another device than the current one (CuPy's
    message when the two devices have no peer access; with peer access CuPy would silently work across them)."""
    current = current_device()
    for value in leaves(values):
        if isinstance(value, DeviceArray) and value.device_id != current:
            raise ValueError(
                f"{what}: the device where the array resides ({value.device_id}) is different from the current "
                f"device ({current}). Peer access is unavailable between these devices. (gpunet: an operation on "
                f"cuda-emu:{value.device_id} ran outside `with cupy.cuda.Device({value.device_id})`)"
            )


def leaves(values):
    if isinstance(values, (tuple, list)):
        for v in values:
            yield from leaves(v)
    elif isinstance(values, dict):
        for v in values.values():
            yield from leaves(v)
    else:
        yield values


def host_view(value):
    """``value`` with every DeviceArray inside replaced by a plain NumPy view of the same memory."""
    if isinstance(value, DeviceArray):
        return value.view(numpy.ndarray)
    if isinstance(value, tuple):
        return tuple(host_view(v) for v in value)
    if isinstance(value, list):
        return [host_view(v) for v in value]
    if isinstance(value, dict):
        return {k: host_view(v) for k, v in value.items()}
    return value


def to_device(value):
    """``value`` with every plain NumPy array inside viewed as a DeviceArray (same memory); NumPy scalars become
    0-d device arrays, as CuPy's reductions and element accesses return 0-d arrays, never scalars."""
    if type(value) is numpy.ndarray:
        return value.view(DeviceArray)
    if isinstance(value, numpy.generic):
        return numpy.asarray(value).view(DeviceArray)
    if isinstance(value, tuple):
        return type(value)(*map(to_device, value)) if hasattr(value, "_fields") else tuple(map(to_device, value))
    if isinstance(value, list):
        return [to_device(v) for v in value]
    return value
