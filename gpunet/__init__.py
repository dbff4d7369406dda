"""gpunet: neural networks you can read down to the CUDA kernels; NumPy on the CPU, CuPy on NVIDIA GPUs.

    import gpunet as gn
    net = gn.nn.Sequential(gn.nn.Linear(64, 50), gn.nn.Sigmoid(), gn.nn.Linear(50, 10))
"""
import numpy as _numpy

from .backend import Device, DeviceError, set_device
from .autograd import (DeviceMismatchError, Function, Tensor, enable_grad, grad, is_grad_enabled, no_grad,
                       set_grad_enabled)
from .random import manual_seed
from .ops import (abs, arange, argmax, argmin, cat, chunk, clamp, empty, exp, eye, flatten, full, full_like,
                  linspace, log, log_softmax, logsumexp, matmul, max, mean, min, ones, ones_like, permute, pow, rand,
                  rand_like, randint, randn, randn_like, relu, reshape, sigmoid, softmax, split, sqrt, squeeze, stack,
                  std, sum, tanh, tensor, transpose, unsqueeze, var, where, zeros, zeros_like)
from . import random
from . import nn
from . import optim
from . import testing

float32 = _numpy.dtype("float32")
float64 = _numpy.dtype("float64")
float16 = _numpy.dtype("float16")
int32 = _numpy.dtype("int32")
int64 = _numpy.dtype("int64")
bool = _numpy.dtype("bool")
float = float32
double = float64
long = int64

__version__ = "0.1.0"


def device(spec) -> Device:
    """A Device from a string such as 'cpu' or 'cuda:0'."""
    from .backend import parse_device

    return parse_device(spec)


def get_device() -> Device:
    """The device new tensors are created on."""
    from .backend import current

    return current().device
