"""Functional forms of the layers and activations (``gpunet.nn.functional``), with PyTorch's names and defaults.

Arguments named ``inplace`` are accepted for PyTorch compatibility; the result is always a new tensor.
"""
from __future__ import annotations

import warnings

from .. import random as _random
from ..kinds import Arguments, Float
from ..ops.activation import (bipolar_sigmoid, bipolar_step, elu, erf, gelu, hardtanh, leaky_relu, prelu, softplus,
                              step)
from ..ops.elementwise import relu, sigmoid, tanh
from ..ops.linear import linear
from ..ops.dropout import channel_dropout as _channel_dropout
from ..ops.dropout import dropout as _dropout
from ..ops.embedding import embedding  # noqa: F401
from ..ops.normalization import batch_norm, group_norm, layer_norm  # noqa: F401
from ..ops.interpolate import interpolate  # noqa: F401
from ..ops.conv import conv1d, conv2d, conv_transpose2d, fold, unfold  # noqa: F401
from ..ops.pool import (adaptive_avg_pool1d, adaptive_avg_pool2d, avg_pool1d, avg_pool2d, max_pool1d,  # noqa: F401
                        max_pool2d)
from ..ops.reduction import log_softmax as _log_softmax
from ..ops.reduction import softmax as _softmax
from ..ops.attention import scaled_dot_product_attention  # noqa: F401
from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, huber_loss,  # noqa: F401
                     kl_div, l1_loss, mse_loss, nll_loss, smooth_l1_loss)

__all__ = ["linear", "dropout", "sigmoid", "tanh", "relu", "leaky_relu", "prelu", "elu", "gelu", "softplus",
           "hardtanh", "softmax", "log_softmax", "step", "bipolar_step", "bipolar_sigmoid", "erf",
           "max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d"]

__all__ += ["conv1d", "conv2d", "conv_transpose2d", "unfold", "fold"]
__all__ += ["batch_norm", "layer_norm", "group_norm", "dropout2d", "interpolate"]
__all__ += ["embedding"]
__all__ += ["scaled_dot_product_attention"]


DROPOUT_P = Float(ge=0, lt=1)  # a dropout probability: the kind of every dropout argument (layers and functions)


def _check_p(p, where, name="p"):
    Arguments(**{name: DROPOUT_P}).check(where, {name: p})


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Inverted dropout: in training, zero each element with probability ``p`` and scale the rest by 1/(1-p).

    The mask comes from the backend's counter-based generator (``dropout_apply``, which never stores it; the
    backward regenerates it) with a seed drawn from gpunet's generator, so ``gpunet.manual_seed`` fixes it on
    every backend.
    """
    _check_p(p, "dropout")
    if not training or p == 0.0:
        return input
    return _dropout(input, p, _random.next_seed())


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Channel dropout of (N, C, H, W): in training, zero each whole channel of each sample with probability ``p``
    and scale the rest by 1/(1-p). The mask has one entry per (sample, channel), from the same counter-based
    generator as ``dropout`` (``backend.dropout_mask``), so ``gpunet.manual_seed`` fixes it on every backend. A 3-D
    input is taken as (N, C, L), with PyTorch's warning."""
    _check_p(p, "dropout2d")
    if input.ndim not in (3, 4):
        raise ValueError(f"dropout2d: expected a 4-D input (N, C, H, W) (or 3-D (N, C, L)), got shape "
                         f"{tuple(input.shape)}")
    if input.ndim == 3:
        warnings.warn("dropout2d: a 3-D input is taken as (N, C, L), as PyTorch does: whole channels of length L "
                      "are dropped, not those of an unbatched (C, H, W) image; add the batch dimension for an image",
                      UserWarning, stacklevel=2)
    if not training or p == 0.0:
        return input
    return _channel_dropout(input, p, _random.next_seed())


def _legacy_dim(x, name):
    dim = 0 if x.ndim in (0, 1, 3) else 1
    warnings.warn(f"implicit dimension choice for {name} is deprecated (as in PyTorch): pass dim=...; using dim={dim}",
                  stacklevel=3)
    return dim


def softmax(input, dim=None):
    """exp(x) / sum(exp(x)) along ``dim``."""
    return _softmax(input, _legacy_dim(input, "softmax") if dim is None else dim)


def log_softmax(input, dim=None):
    """log(softmax(x)) along ``dim``, computed stably."""
    return _log_softmax(input, _legacy_dim(input, "log_softmax") if dim is None else dim)
