"""Neural-network building blocks with PyTorch's API: Module, containers, layers, activations, init, functional."""
from . import functional, init
from .parameter import Parameter
from .module import Module
from .containers import ModuleDict, ModuleList, Sequential
from .linear import Linear
from .flatten import Flatten
from .conv import Conv1d, Conv2d, ConvTranspose2d
from .pool import AdaptiveAvgPool1d, AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, MaxPool1d, MaxPool2d
from .dropout import Dropout, Dropout2d
from .embedding import Embedding
from .batchnorm import BatchNorm1d, BatchNorm2d, SyncBatchNorm
from .normalization import GroupNorm, LayerNorm
from .separable_conv import DepthwiseSeparableConv2d
from .upsample import Upsample
from .rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell
from .rbm import BernoulliRBM
from .convlstm import ConvLSTM, ConvLSTMCell
from .attention import AdditiveAttention, MultiheadAttention
from .transformer import TransformerEncoder, TransformerEncoderLayer
from .positional import LearnedPositionalEncoding, PositionalEncoding
from .activation import (ELU, GELU, BipolarSigmoid, BipolarStep, Hardtanh, Identity, LeakyReLU, LogSoftmax, PReLU,
                         ReLU, Sigmoid, Softmax, Softplus, Step, Tanh)
from . import utils
from .losses import *  # noqa: F401,F403  (the loss modules; the functions are in functional)
