"""The process group of a data-parallel run, for layers that reduce across ranks (``nn.SyncBatchNorm``).

The training layer (``gpunet.train.distributed.DataParallel``) registers the group when a run is data-parallel;
layers ask ``group()`` and act as on one process when it is None. The group sums float64 host arrays over every
rank (``all_reduce``) and knows this rank's index and the number of ranks. Layers reduce through ``all_reduce``
here, naming themselves (the key ``register`` gave them) and the kind of the reduction.

Ranks without data. A rank whose share of a short last batch is empty runs no forward and no backward, yet the other
ranks' layers reduce over every rank. It *serves* instead: ``settle``, which ``DataParallel`` calls on every rank at
every update of a model with such layers (``DataParallel.watch``) before the gradient all-reduce, adds zeros to each
of the others' reductions until they say the update is done. To tell it the sizes, the first reduction of an update
is preceded by a header summed over the ranks (takes part, size, done, layer key, kind). When every rank takes part
(the usual case) nothing more is sent in that update; otherwise every reduction gets its header and ``settle`` on
the ranks that took part sends a "done" header. The serving rank passes each result to the layer's ``served(kind,
total)``, so a layer keeps the same running statistics on every rank. Layer keys count constructions, the same on
every rank as every rank builds the same model.
"""
from __future__ import annotations

import itertools
import weakref

import numpy

_GROUP = None
_LAYERS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # key -> layer (for a serving rank)
_KEYS = itertools.count(1)
_everyone: bool | None = None  # this update so far: no reduction yet (None), every rank took part, or not


def set_group(group) -> None:
    """Make ``group`` (an object with ``rank``, ``size`` and ``all_reduce(array) -> summed array``, or None) the
    one layers reduce over."""
    global _GROUP, _everyone
    _GROUP, _everyone = group, None


def group():
    return _GROUP


def register(layer) -> int:
    """A key for ``layer`` (a module reducing across ranks, with a ``served(kind, total)`` method)."""
    key = next(_KEYS)
    _LAYERS[key] = layer
    return key


def _header(group_, values: list) -> numpy.ndarray:
    """The ranks' sum of one header; a rank that takes part checks that every other one sent the same."""
    total = group_.all_reduce(numpy.asarray(values, dtype=numpy.float64))
    if values[0] and not numpy.array_equal(total, numpy.asarray(values) * total[0]):
        raise RuntimeError(f"internal error: the ranks' cross-rank reductions are out of step (this rank sent "
                           f"{values}, the sum over the ranks is {total.tolist()}); every rank must run the same "
                           "layers in the same order")
    return total


def all_reduce(group_, values, key: int, kind: int) -> numpy.ndarray:
    """The sum over the ranks of ``group_`` of ``values`` (float64, flattened) for layer ``key``'s reduction
    ``kind`` (a small integer of the layer's own)."""
    global _everyone
    values = numpy.ascontiguousarray(values, dtype=numpy.float64).ravel()
    if group_ is _GROUP and _everyone is not True:
        ranks = _header(group_, [1, values.size, 0, key, kind])[0]
        if _everyone is None:
            _everyone = bool(ranks == group_.size)
    return group_.all_reduce(values)


def settle() -> None:
    """End the update's reductions (call on every rank at every update of a model with layers that reduce across
    ranks, before its gradient all-reduce): a rank that took part in none serves the others' until they are done;
    the others say they are done when one serves."""
    global _everyone
    if _GROUP is None:
        return
    try:
        if _everyone is False:
            _header(_GROUP, [1, 0, 1, 0, 0])
        elif _everyone is None:
            _serve(_GROUP)
    finally:
        _everyone = None


def _serve(group_) -> None:
    while True:
        total = _header(group_, [0, 0, 0, 0, 0])
        ranks = total[0]
        if ranks == 0 or total[2] == ranks:  # no rank reduced anything in this update, or they are done
            return
        size, key, kind = (int(round(v / ranks)) for v in total[1:2].tolist() + total[3:].tolist())
        result = group_.all_reduce(numpy.zeros(size))
        layer = _LAYERS.get(key)
        if layer is None:
            raise RuntimeError(f"internal error: the other ranks reduce for layer key {key}, which this rank does "
                               "not have; every rank must build the same model")
        layer.served(kind, result)
