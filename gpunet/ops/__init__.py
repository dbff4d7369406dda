"""Differentiable operations, each declared once: forward through the backend, backward in other ops."""
from .conversion import as_tensor, cast, full_like, ones_like, tensor, transfer, zeros_like
from .arithmetic import add, div, matmul, mul, neg, pow, sub
from .shape import (broadcast_to, cat, chunk, flatten, getitem, permute, reshape, split, squeeze, stack, sum_to,
                    transpose, unsqueeze)
from .elementwise import abs, clamp, compare, exp, log, relu, sigmoid, sqrt, tanh, where
from .reduction import argmax, argmin, log_softmax, logsumexp, max, mean, min, softmax, std, sum, var
from .factories import arange, empty, eye, full, linspace, ones, rand, rand_like, randint, randn, randn_like, zeros
from .linear import linear
from .rnn import gru_cell, lstm_cell, recurrent_layer, unbind
from .conv import conv1d, conv2d, conv_transpose2d, fold, unfold
