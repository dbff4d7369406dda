"""The CPU backend: NumPy arrays, with the fused kernels implemented in NumPy."""
from __future__ import annotations

import numpy

from .device import Device
from .fused import fused
from .references import embedding as _embedding
from .references import batchnorm as _batchnorm
from .references import conv as _conv
from .references import dropout as _dropout
from .references import erf as _erf
from .references import optimizers as _optimizers
from .references import pool as _pool
from .references import rnn as _rnn
from .references import softmax as _softmax


class NumpyBackend:
    """Array work on the CPU through NumPy; every fused kernel here is the reference for the CUDA one."""

    name = "numpy"
    xp = numpy
    implementation = "NumPy"

    def __init__(self):
        self.device = Device("cpu")

    def asarray(self, data, dtype=None):
        return numpy.asarray(data, dtype=dtype)

    def to_numpy(self, array):
        return numpy.array(array, copy=True)

    def __deepcopy__(self, memo):
        return self  # one backend per device: copied tensors must share it

    def __reduce__(self):
        from . import get_backend

        return get_backend, (str(self.device),)

    softmax = fused(_softmax.softmax)
    log_softmax = fused(_softmax.log_softmax)
    softmax_cross_entropy = fused(_softmax.softmax_cross_entropy)
    softmax_cross_entropy_backward = fused(_softmax.softmax_cross_entropy_backward)
    dropout_mask = fused(_dropout.dropout_mask)
    erf = fused(_erf.erf)
    sgd_update = fused(_optimizers.sgd_update)
    adam_update = fused(_optimizers.adam_update)
    lstm_cell = fused(_rnn.lstm_cell)
    lstm_cell_backward = fused(_rnn.lstm_cell_backward)
    gru_cell = fused(_rnn.gru_cell)
    gru_cell_backward = fused(_rnn.gru_cell_backward)
    max_pool2d = fused(_pool.max_pool2d)
    max_pool2d_backward = fused(_pool.max_pool2d_backward)
    max_pool2d_gather = fused(_pool.max_pool2d_gather)
    avg_pool2d = fused(_pool.avg_pool2d)
    avg_pool2d_backward = fused(_pool.avg_pool2d_backward)
    im2col = fused(_conv.im2col)
    col2im = fused(_conv.col2im)
    batch_norm_stats = fused(_batchnorm.batch_norm_stats)
    embedding_backward = fused(_embedding.embedding_backward)
    dropout_apply = fused(_dropout.dropout_apply)
