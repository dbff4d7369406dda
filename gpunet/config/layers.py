"""The layer table: which ``gpunet.nn`` layers a config may list under ``model.layers``.

Each entry is its class plus what only the config knows: a description of each offered argument, and how the layer
changes the feature count (for the Linear-chain check and the dry run's hints). Argument names, kinds, defaults and
rules are the class's own (``gpunet.config.components``). Adding a layer is one call, e.g.
``register_layer(nn.GroupNorm, "Normalises groups of channels.", {"num_groups": "number of groups", ...})``; the
schema, the validator, the docs and ``build_model`` all read this one table.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import nn
from .components import Component, component, construct
from ..kinds import Choice, Path
from .spec import Field


@dataclass(frozen=True)
class LayerSpec(Component):
    """A layer's class and offered arguments, plus how it changes the feature count (last axis).

    ``in_key``: the argument that must equal the incoming feature count; ``out_key``: the argument giving the
    outgoing count; ``keeps_features``: the layer leaves the count unchanged (activations, dropout).
    For the dry run's hints (``gpunet.config.dry_run``): ``input_size`` is ``(argument, axis)``, an argument that
    must equal the input's size along ``axis`` (in_channels along axis 1); ``input_dims`` the numbers of input
    dimensions, batch axis included, that the layer accepts (empty: any).
    """

    in_key: str | None = None
    out_key: str | None = None
    keeps_features: bool = False
    input_size: tuple | None = None
    input_dims: tuple = ()


LAYERS: dict[str, LayerSpec] = {}


def register_layer(cls, doc: str | None = None, fields: dict | None = None, *, in_key: str | None = None,
                   out_key: str | None = None, keeps_features: bool = False, input_size: tuple | None = None,
                   input_dims: tuple = ()) -> LayerSpec:
    """Allow ``{type: <cls.__name__>, ...}`` in ``model.layers``, built as ``cls(**arguments)``. ``fields`` maps
    each offered argument to its description (or a Field); names, kinds, defaults and rules come from ``cls``."""
    spec = component(cls, doc, fields or {}, spec_type=LayerSpec, in_key=in_key,
                     out_key=out_key, keeps_features=keeps_features, input_size=input_size,
                     input_dims=tuple(input_dims))
    LAYERS[cls.__name__] = spec
    return spec


def build_layers(layers: list[dict], path: Path = ("model", "layers")):
    """``gpunet.nn.Sequential`` of each checked layer mapping, built by its registered class."""
    return nn.Sequential(*(construct(LAYERS[layer["type"]].cls, LAYERS[layer["type"]].arguments(layer),
                                     path + (index,)) for index, layer in enumerate(layers)))


_EXPLICIT_DIM = ("the class axis of (N, C) scores; the class's None guesses the axis from the input's rank, "
                 "which PyTorch deprecates")
register_layer(nn.Linear, "Fully connected layer y = x W^T + b, W of shape (out_features, in_features).", {
    "in_features": "size of each input sample",
    "out_features": "size of each output sample",
    "bias": "learn an additive bias",
}, in_key="in_features", out_key="out_features", input_size=("in_features", -1))
register_layer(nn.Flatten, "Flattens dimensions start_dim..end_dim into one.", {
    "start_dim": "first dimension to flatten",
    "end_dim": "last dimension to flatten",
})
register_layer(nn.Identity, "Returns its input unchanged.", keeps_features=True)
register_layer(nn.ReLU, "max(0, x).", keeps_features=True)
register_layer(nn.Sigmoid, "1 / (1 + exp(-x)).", keeps_features=True)
register_layer(nn.Tanh, "Hyperbolic tangent.", keeps_features=True)
register_layer(nn.Dropout, "Zeroes each element with probability p while training, scales the rest by 1/(1-p).", {
    "p": "probability of an element being zeroed",
}, keeps_features=True)
register_layer(nn.Softmax, "exp(x) / sum(exp(x)) along dim.", {
    "dim": Field(doc="dimension along which the outputs sum to 1", default=1, why_default=_EXPLICIT_DIM),
}, keeps_features=True)
register_layer(nn.LogSoftmax, "log(softmax(x)) along dim, computed stably.", {
    "dim": Field(doc="dimension along which softmax is taken", default=1, why_default=_EXPLICIT_DIM),
}, keeps_features=True)
register_layer(nn.LeakyReLU, "max(0, x) + negative_slope * min(0, x).", {
    "negative_slope": "slope for negative inputs",
}, keeps_features=True)
register_layer(nn.ELU, "x if x > 0 else alpha * (exp(x) - 1).", {
    "alpha": "value the negative side saturates to (as -alpha)",
}, keeps_features=True)
register_layer(nn.GELU, "x * Phi(x), Phi the standard normal CDF (or its tanh approximation).", {
    "approximate": "'none' for the exact erf form, 'tanh' for the approximation",
}, keeps_features=True)
register_layer(nn.Softplus, "log(1 + exp(beta * x)) / beta, linear above threshold.", {
    "beta": "sharpness",
    "threshold": "beta * x above which the layer is linear",
}, keeps_features=True)
register_layer(nn.PReLU, "Leaky ReLU whose negative slope is learned (one per channel, or shared).", {
    "num_parameters": "number of slopes: 1 (shared) or the number of channels",
    "init": "initial slope",
}, keeps_features=True)
register_layer(nn.Hardtanh, "x clipped to [min_val, max_val].", {
    "min_val": "lower clip value",
    "max_val": "upper clip value",
}, keeps_features=True)

for _n in (1, 2):
    register_layer(getattr(nn, f"MaxPool{_n}d"), f"Maximum over sliding windows ({_n}-D).", {
        "kernel_size": "window size",
        "stride": "step between windows (null: kernel_size)",
        "padding": "implicit -inf padding on each side (at most half the window)",
        "dilation": "spacing between window elements",
        "ceil_mode": "round the output size up (a last partial window)",
    }, input_dims=(_n + 2,))
    register_layer(getattr(nn, f"AvgPool{_n}d"), f"Mean over sliding windows ({_n}-D).", {
        "kernel_size": "window size",
        "stride": "step between windows (null: kernel_size)",
        "padding": "implicit zero padding on each side (at most half the window)",
        "ceil_mode": "round the output size up (a last partial window)",
        "count_include_pad": "count the padding in each window's divisor",
    }, input_dims=(_n + 2,))
    register_layer(getattr(nn, f"AdaptiveAvgPool{_n}d"), f"Average pooling to a fixed output size ({_n}-D); 1 is the "
                   "global mean.", {
        "output_size": "output size" + (" (null in the list keeps that dimension's size)" if _n == 2 else ""),
    }, input_dims=(_n + 2,))

_BATCH_NORM_FIELDS = {
    "num_features": "number of channels C of the (N, C, ...) input",
    "eps": "added to the variance for numerical stability",
    "momentum": "running-statistics update factor (null: cumulative average)",
    "affine": "learn a per-channel scale (weight) and shift (bias)",
    "track_running_stats": "keep running mean/variance for eval (else batch statistics always)",
}
register_layer(nn.BatchNorm1d, "Normalises each channel of (N, C) or (N, C, L) inputs by batch statistics (running "
               "ones in eval), then scales and shifts.", _BATCH_NORM_FIELDS, in_key="num_features",
               out_key="num_features", input_size=("num_features", 1), input_dims=(2, 3))
register_layer(nn.BatchNorm2d, "Normalises each channel of (N, C, H, W) inputs by batch statistics (running ones in "
               "eval), then scales and shifts.", _BATCH_NORM_FIELDS, input_size=("num_features", 1), input_dims=(4,))
register_layer(nn.SyncBatchNorm, "BatchNorm whose training statistics are those of the global batch over every rank of "
               "a data-parallel run (--nproc); on one process a BatchNorm of its input's dimensions (2-5).",
               _BATCH_NORM_FIELDS, in_key="num_features", out_key="num_features", input_size=("num_features", 1),
               input_dims=(2, 3, 4, 5))
register_layer(nn.Embedding, "Lookup table: row i of a (num_embeddings, embedding_dim) weight for each integer index i "
               "(the model's input must be integer indices).", {
    "num_embeddings": "number of rows (the vocabulary size)",
    "embedding_dim": "size of each vector",
    "padding_idx": "row kept at zero that receives no gradient (null: none)",
}, out_key="embedding_dim")
_ZEROS_ONLY = Field(Choice(("zeros",), "padding mode"), "only 'zeros' is supported",
                    why_kind="the class names PyTorch's other modes only to refuse them")
for _n, _name, _doc in (
        (1, "Conv1d", "1-D cross-correlation over (N, C, L); weight (out_channels, in_channels/groups, k)."),
        (2, "Conv2d", "2-D cross-correlation over (N, C, H, W); weight (out_channels, in_channels/groups, kh, kw).")):
    register_layer(getattr(nn, _name), _doc, {
        "in_channels": "channels of the input",
        "out_channels": "channels produced (filters)",
        "kernel_size": "size of the kernel: an int or one per spatial dimension",
        "stride": "step between windows",
        "padding": "zeros added on each side, or 'same' (stride 1) / 'valid'" + (" / 'causal' (stride 1: left only, "
                                                                               "as Keras')" if _n == 1 else ""),
        "dilation": "spacing between kernel elements",
        "groups": "blocked connections: in and out channels are split into this many groups",
        "bias": "learn an additive bias per output channel",
        "padding_mode": _ZEROS_ONLY,
    }, input_size=("in_channels", 1), input_dims=(_n + 2,))
register_layer(nn.ConvTranspose2d, "Transposed 2-D convolution (the adjoint of Conv2d); weight (in_channels, "
               "out_channels/groups, kh, kw).", {
    "in_channels": "channels of the input",
    "out_channels": "channels produced",
    "kernel_size": "size of the kernel: an int or a pair",
    "stride": "step between windows",
    "padding": "implicit zeros removed from each side",
    "output_padding": "extra size added to one side of the output (smaller than stride)",
    "groups": "blocked connections",
    "bias": "learn an additive bias per output channel",
    "dilation": "spacing between kernel elements",
    "padding_mode": _ZEROS_ONLY,
}, input_size=("in_channels", 1), input_dims=(4,))


# Normalisation, regularisation and resampling layers of convolutional networks (issue 10).
register_layer(nn.LayerNorm, "Normalises each sample over its trailing dimensions normalized_shape, then scales and "
               "shifts (elementwise_affine); the same in training and eval.", {
    "normalized_shape": "the trailing dimensions to normalise over: an int (the last) or a list",
    "eps": "added to the variance for numerical stability",
    "elementwise_affine": "learn a weight and bias of shape normalized_shape",
    "bias": "learn the additive bias too (with elementwise_affine)",
}, keeps_features=True)
register_layer(nn.GroupNorm, "Normalises groups of channels of (N, C, ...) inputs by per-sample statistics, then "
               "scales and shifts each channel.", {
    "num_groups": "number of groups the channels are split into (divides num_channels)",
    "num_channels": "number of channels C of the input",
    "eps": "added to the variance for numerical stability",
    "affine": "learn a per-channel scale (weight) and shift (bias)",
}, keeps_features=False, input_size=("num_channels", 1))
register_layer(nn.Dropout2d, "Zeroes whole channels of (N, C, H, W) inputs with probability p while training, "
               "scales the rest by 1/(1-p).", {
    "p": "probability of a channel being zeroed",
}, keeps_features=True)
register_layer(nn.DepthwiseSeparableConv2d, "A depthwise convolution (each channel by its own kernels) then a 1x1 "
               "convolution mixing channels (Keras' SeparableConv2D).", {
    "in_channels": "channels of the input",
    "out_channels": "channels produced by the pointwise convolution",
    "kernel_size": "size of the depthwise kernel: an int or a pair",
    "stride": "step between windows",
    "padding": "zeros added on each side, or 'same' (stride 1) / 'valid'",
    "dilation": "spacing between kernel elements",
    "bias": "learn an additive bias per output channel (on the pointwise convolution)",
    "depth_multiplier": "depthwise kernels per input channel",
    "padding_mode": _ZEROS_ONLY,
}, input_size=("in_channels", 1), input_dims=(4,))
register_layer(nn.Upsample, "Resamples (N, C, L) or (N, C, H, W) inputs to size or by scale_factor (nearest, "
               "linear or bilinear interpolation); no parameters.", {
    "size": "output size: an int or one per spatial dimension (null: use scale_factor)",
    "scale_factor": "multiplier of each spatial size (null: use size)",
    "mode": "nearest, nearest-exact, linear (3-D input) or bilinear (4-D input)",
    "align_corners": "linear modes: align the corner pixels' centres (null: false)",
}, input_dims=(3, 4))


# Sequence layers. Data arrives (N, L) and an Embedding makes (N, L, E), so inside a layers list batch_first is true
# by default; and a layer of the list hands one tensor, batch first, to the next, so return_mode offers the two such
# values ('state', PyTorch's None and the LSTM's (h_n, c_n) pair are for code that calls the layer itself).
_BATCH_FIRST = Field(doc="inputs and outputs are (N, L, features), as the data and Embedding give them", default=True,
                     why_default="data arrives (N, L): a sequence in a layers list is batch first")
_ONE_TENSOR = "a layer in a list returns one tensor: not PyTorch's (output, h_n) tuple nor the state"
_RECURRENT_FIELDS = {
    "input_size": "features of each step (the Embedding's embedding_dim)",
    "hidden_size": "features of the hidden state",
    "num_layers": "stacked recurrent layers",
    "bias": "learn the biases b_ih and b_hh",
    "batch_first": _BATCH_FIRST,
    "dropout": "dropout between stacked layers (not after the last)",
    "bidirectional": "also run the sequence backwards; outputs join both directions (2 * hidden_size)",
    "return_mode": Field(Choice(("last", "sequence"), "return mode"), "last: (N, D*hidden_size), the output at "
                         "each sequence's last real step (Keras' default); sequence: (N, L, D*hidden_size), every "
                         "step (Keras' return_sequences)", "last", why_default="Keras' return_sequences=False",
                         why_kind=_ONE_TENSOR),
    "mask_value": "a step whose features all equal it is padding, skipped: 0.0 after an Embedding with padding_idx=0 "
                  "(Keras' Masking; null: no masking)",
}
register_layer(nn.RNN, "Elman RNN, h_t = tanh or relu(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (PyTorch's "
               "weights).", {**_RECURRENT_FIELDS, "nonlinearity": "the activation"},
               in_key="input_size", input_size=("input_size", -1), input_dims=(3,))
register_layer(nn.LSTM, "Long short-term memory (PyTorch's weights and gate order i, f, g, o).", _RECURRENT_FIELDS,
               in_key="input_size", input_size=("input_size", -1), input_dims=(3,))
register_layer(nn.GRU, "Gated recurrent unit (PyTorch's weights and gate order r, z, n).", _RECURRENT_FIELDS,
               in_key="input_size", input_size=("input_size", -1), input_dims=(3,))
_POSITIONAL_FIELDS = {
    "d_model": "features of each position",
    "dropout": "dropout after adding the encoding",
    "max_len": "the longest sequence",
    "batch_first": _BATCH_FIRST,
}
register_layer(nn.PositionalEncoding, "Adds the fixed sinusoidal position encoding, then dropout.", _POSITIONAL_FIELDS,
               keeps_features=True, input_size=("d_model", -1), input_dims=(3,))
register_layer(nn.LearnedPositionalEncoding, "Adds a learned position embedding, then dropout.", _POSITIONAL_FIELDS,
               keeps_features=True, input_size=("d_model", -1), input_dims=(3,))
register_layer(nn.TransformerEncoderLayer, "Self-attention and feed-forward blocks with residual connections "
               "(PyTorch's); (N, L, d_model) in and out.", {
    "d_model": "features of each position",
    "nhead": "attention heads (d_model must be divisible by nhead)",
    "dim_feedforward": "hidden features of the feed-forward block",
    "dropout": "dropout in both blocks",
    "activation": "the feed-forward activation",
    "layer_norm_eps": "added to the variance in the layer norms",
    "batch_first": _BATCH_FIRST,
    "norm_first": "layer norm before each block (pre-norm) instead of after",
    "bias": "learn the biases of the linear layers and layer norms",
}, in_key="d_model", out_key="d_model", input_size=("d_model", -1), input_dims=(3,))

register_layer(nn.ConvLSTM, "Convolutional LSTM over frame sequences (N, T, C, H, W): the LSTM's gates from 'same' "
               "convolutions of each frame and of the hidden state (seed 000).", {
    "in_channels": "channels of each input frame",
    "hidden_channels": "channels of the hidden and cell states",
    "kernel_size": "kernel size: an int or a pair ('same' padding: an even size pads one more on the right and "
                   "bottom)",
    "num_layers": "stacked ConvLSTM layers",
    "bias": "learn the gate biases",
    "return_mode": Field(Choice(("last", "sequence"), "return mode"), "last: (N, hidden_channels, H, W), the last "
                         "step's hidden state (Keras' default); sequence: (N, T, hidden_channels, H, W), every step",
                         "last", why_default="Keras' default: the last step's hidden state", why_kind=_ONE_TENSOR),
}, input_size=("in_channels", 2), input_dims=(5,))
