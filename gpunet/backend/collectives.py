"""The process group of a data-parallel run, for layers that reduce across ranks (``nn.SyncBatchNorm``).

The training layer (``gpunet.train.distributed.DataParallel``) registers the group when a run is data-parallel;
layers ask ``group()`` and act as on one process when it is None. The group sums float64 host arrays over every
rank (``all_reduce``) and knows this rank's index and the number of ranks.
"""
from __future__ import annotations

_GROUP = None


def set_group(group) -> None:
    """Make ``group`` (an object with ``rank``, ``size`` and ``all_reduce(array) -> summed array``, or None) the
    one layers reduce over."""
    global _GROUP
    _GROUP = group


def group():
    return _GROUP
