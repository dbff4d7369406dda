"""The layer table: which ``gpunet.nn`` layers a config may list under ``model.layers``.

Each entry is its class plus what only the config knows: the kind of YAML value each offered argument takes, and
how the layer changes the feature count (for the Linear-chain check and the dry run's hints). Argument names and
defaults are the class's own (``gpunet.config.components``). Adding a layer is one call, e.g.
``register_layer(nn.GroupNorm, "Normalises groups of channels.", {"num_groups": Int(ge=1), ...})``; the schema,
the validator, the docs and ``build_model`` all read this one table.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import nn
from .components import Component, component, construct
from ..kinds import AnyOf, Bool, Choice, Float, Int, ListOf, Optional, Path
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
                   out_key: str | None = None, keeps_features: bool = False, check_fn=None,
                   input_size: tuple | None = None, input_dims: tuple = ()) -> LayerSpec:
    """Allow ``{type: <cls.__name__>, ...}`` in ``model.layers``, built as ``cls(**arguments)``. ``fields`` maps
    each offered argument to its Kind (or a Field with a description); names and defaults come from ``cls``."""
    spec = component(cls, doc, fields or {}, check_fn=check_fn, spec_type=LayerSpec, in_key=in_key,
                     out_key=out_key, keeps_features=keeps_features, input_size=input_size,
                     input_dims=tuple(input_dims))
    LAYERS[cls.__name__] = spec
    return spec


def build_layers(layers: list[dict], path: Path = ("model", "layers")):
    """``gpunet.nn.Sequential`` of each checked layer mapping, built by its registered class."""
    return nn.Sequential(*(construct(LAYERS[layer["type"]].cls, LAYERS[layer["type"]].arguments(layer),
                                     path + (index,)) for index, layer in enumerate(layers)))


def _min_below_max(args, path, ck):
    if args["min_val"] >= args["max_val"]:
        ck.fail(path + ("max_val",), f"must be greater than min_val ({args['min_val']:g})", value=args["max_val"],
                allowed=f"a number > {args['min_val']:g}")


_DIM = Int()
_EXPLICIT_DIM = ("the class axis of (N, C) scores; the class's None guesses the axis from the input's rank, "
                 "which PyTorch deprecates")
register_layer(nn.Linear, "Fully connected layer y = x W^T + b, W of shape (out_features, in_features).", {
    "in_features": Field(Int(ge=1), "size of each input sample"),
    "out_features": Field(Int(ge=1), "size of each output sample"),
    "bias": Field(Bool(), "learn an additive bias"),
}, in_key="in_features", out_key="out_features", input_size=("in_features", -1))
register_layer(nn.Flatten, "Flattens dimensions start_dim..end_dim into one.", {
    "start_dim": Field(_DIM, "first dimension to flatten"),
    "end_dim": Field(_DIM, "last dimension to flatten"),
})
register_layer(nn.Identity, "Returns its input unchanged.", keeps_features=True)
register_layer(nn.ReLU, "max(0, x).", keeps_features=True)
register_layer(nn.Sigmoid, "1 / (1 + exp(-x)).", keeps_features=True)
register_layer(nn.Tanh, "Hyperbolic tangent.", keeps_features=True)
register_layer(nn.Dropout, "Zeroes each element with probability p while training, scales the rest by 1/(1-p).", {
    "p": Field(Float(ge=0, lt=1), "probability of an element being zeroed"),
}, keeps_features=True)
register_layer(nn.Softmax, "exp(x) / sum(exp(x)) along dim.", {
    "dim": Field(_DIM, "dimension along which the outputs sum to 1", 1, why_default=_EXPLICIT_DIM),
}, keeps_features=True)
register_layer(nn.LogSoftmax, "log(softmax(x)) along dim, computed stably.", {
    "dim": Field(_DIM, "dimension along which softmax is taken", 1, why_default=_EXPLICIT_DIM),
}, keeps_features=True)
register_layer(nn.LeakyReLU, "max(0, x) + negative_slope * min(0, x).", {
    "negative_slope": Field(Float(), "slope for negative inputs"),
}, keeps_features=True)
register_layer(nn.ELU, "x if x > 0 else alpha * (exp(x) - 1).", {
    "alpha": Field(Float(), "value the negative side saturates to (as -alpha)"),
}, keeps_features=True)
register_layer(nn.GELU, "x * Phi(x), Phi the standard normal CDF (or its tanh approximation).", {
    "approximate": Field(Choice(("none", "tanh")), "'none' for the exact erf form, 'tanh' for the approximation"),
}, keeps_features=True)
register_layer(nn.Softplus, "log(1 + exp(beta * x)) / beta, linear above threshold.", {
    "beta": Field(Float(gt=0), "sharpness"),
    "threshold": Field(Float(), "beta * x above which the layer is linear"),
}, keeps_features=True)
register_layer(nn.PReLU, "Leaky ReLU whose negative slope is learned (one per channel, or shared).", {
    "num_parameters": Field(Int(ge=1), "number of slopes: 1 (shared) or the number of channels"),
    "init": Field(Float(), "initial slope"),
}, keeps_features=True)
register_layer(nn.Hardtanh, "x clipped to [min_val, max_val].", {
    "min_val": Field(Float(), "lower clip value"),
    "max_val": Field(Float(), "upper clip value"),
}, keeps_features=True, check_fn=_min_below_max)


def _sizes(n: int, low: int) -> AnyOf:
    """An int >= low, or a list of n of them (one per spatial dimension)."""
    return AnyOf((Int(ge=low), ListOf(Int(ge=low), length=n)))


for _n in (1, 2):
    register_layer(getattr(nn, f"MaxPool{_n}d"), f"Maximum over sliding windows ({_n}-D).", {
        "kernel_size": Field(_sizes(_n, 1), "window size"),
        "stride": Field(Optional(_sizes(_n, 1)), "step between windows (null: kernel_size)"),
        "padding": Field(_sizes(_n, 0), "implicit -inf padding on each side (at most half the window)"),
        "dilation": Field(_sizes(_n, 1), "spacing between window elements"),
        "ceil_mode": Field(Bool(), "round the output size up (a last partial window)"),
    }, input_dims=(_n + 2,))
    register_layer(getattr(nn, f"AvgPool{_n}d"), f"Mean over sliding windows ({_n}-D).", {
        "kernel_size": Field(_sizes(_n, 1), "window size"),
        "stride": Field(Optional(_sizes(_n, 1)), "step between windows (null: kernel_size)"),
        "padding": Field(_sizes(_n, 0), "implicit zero padding on each side (at most half the window)"),
        "ceil_mode": Field(Bool(), "round the output size up (a last partial window)"),
        "count_include_pad": Field(Bool(), "count the padding in each window's divisor"),
    }, input_dims=(_n + 2,))
    register_layer(getattr(nn, f"AdaptiveAvgPool{_n}d"), f"Average pooling to a fixed output size ({_n}-D); 1 is the "
                   "global mean.", {
        "output_size": Field(_sizes(_n, 1), "output size"),
    }, input_dims=(_n + 2,))

_BATCH_NORM_FIELDS = {
    "num_features": Field(Int(ge=1), "number of channels C of the (N, C, ...) input"),
    "eps": Field(Float(gt=0), "added to the variance for numerical stability"),
    "momentum": Field(Optional(Float(ge=0, le=1)), "running-statistics update factor (null: cumulative average)"),
    "affine": Field(Bool(), "learn a per-channel scale (weight) and shift (bias)"),
    "track_running_stats": Field(Bool(), "keep running mean/variance for eval (else batch statistics always)"),
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
    "num_embeddings": Field(Int(ge=1), "number of rows (the vocabulary size)"),
    "embedding_dim": Field(Int(ge=1), "size of each vector"),
    "padding_idx": Field(Optional(Int()), "row kept at zero that receives no gradient (null: none)"),
}, out_key="embedding_dim")
for _n, _name, _doc in (
        (1, "Conv1d", "1-D cross-correlation over (N, C, L); weight (out_channels, in_channels/groups, k)."),
        (2, "Conv2d", "2-D cross-correlation over (N, C, H, W); weight (out_channels, in_channels/groups, kh, kw).")):
    register_layer(getattr(nn, _name), _doc, {
        "in_channels": Field(Int(ge=1), "channels of the input"),
        "out_channels": Field(Int(ge=1), "channels produced (filters)"),
        "kernel_size": Field(_sizes(_n, 1), "size of the kernel: an int or one per spatial dimension"),
        "stride": Field(_sizes(_n, 1), "step between windows"),
        "padding": Field(AnyOf((*_sizes(_n, 0).kinds, Choice(("same", "valid")))),
                         "zeros added on each side, or 'same' (stride 1) / 'valid'"),
        "dilation": Field(_sizes(_n, 1), "spacing between kernel elements"),
        "groups": Field(Int(ge=1), "blocked connections: in and out channels are split into this many groups"),
        "bias": Field(Bool(), "learn an additive bias per output channel"),
        "padding_mode": Field(Choice(("zeros",)), "only 'zeros' is supported"),
    }, input_size=("in_channels", 1), input_dims=(_n + 2,))


def _output_padding_below_stride(args, path, ck):
    """ConvTranspose2d's own rule, checked here too so the message names the file and line."""
    pairs = [[v] * 2 if isinstance(v, int) else v for v in (args["output_padding"], args["stride"])]
    if any(op >= st for op, st in zip(*pairs)):
        ck.fail(path + ("output_padding",), f"must be smaller than stride ({args['stride']}) in each dimension",
                value=args["output_padding"], allowed="an integer (or a pair) below stride")


register_layer(nn.ConvTranspose2d, "Transposed 2-D convolution (the adjoint of Conv2d); weight (in_channels, "
               "out_channels/groups, kh, kw).", {
    "in_channels": Field(Int(ge=1), "channels of the input"),
    "out_channels": Field(Int(ge=1), "channels produced"),
    "kernel_size": Field(_sizes(2, 1), "size of the kernel: an int or a pair"),
    "stride": Field(_sizes(2, 1), "step between windows"),
    "padding": Field(_sizes(2, 0), "implicit zeros removed from each side"),
    "output_padding": Field(_sizes(2, 0), "extra size added to one side of the output (smaller than stride)"),
    "groups": Field(Int(ge=1), "blocked connections"),
    "bias": Field(Bool(), "learn an additive bias per output channel"),
    "dilation": Field(_sizes(2, 1), "spacing between kernel elements"),
    "padding_mode": Field(Choice(("zeros",)), "only 'zeros' is supported"),
}, input_size=("in_channels", 1), input_dims=(4,), check_fn=_output_padding_below_stride)


# Normalisation, regularisation and resampling layers of convolutional networks (issue 10).
def _groups_divide_channels(args, path, ck):
    """GroupNorm's own rule, checked here too so the message names the file and line."""
    if args["num_channels"] % args["num_groups"]:
        ck.fail(path + ("num_groups",), f"must divide num_channels ({args['num_channels']})",
                value=args["num_groups"], allowed=f"a divisor of {args['num_channels']}")


register_layer(nn.LayerNorm, "Normalises each sample over its trailing dimensions normalized_shape, then scales and "
               "shifts (elementwise_affine); the same in training and eval.", {
    "normalized_shape": Field(AnyOf((Int(ge=1), ListOf(Int(ge=1), min_len=1))),
                              "the trailing dimensions to normalise over: an int (the last) or a list"),
    "eps": Field(Float(gt=0), "added to the variance for numerical stability"),
    "elementwise_affine": Field(Bool(), "learn a weight and bias of shape normalized_shape"),
    "bias": Field(Bool(), "learn the additive bias too (with elementwise_affine)"),
}, keeps_features=True)
register_layer(nn.GroupNorm, "Normalises groups of channels of (N, C, ...) inputs by per-sample statistics, then "
               "scales and shifts each channel.", {
    "num_groups": Field(Int(ge=1), "number of groups the channels are split into (divides num_channels)"),
    "num_channels": Field(Int(ge=1), "number of channels C of the input"),
    "eps": Field(Float(gt=0), "added to the variance for numerical stability"),
    "affine": Field(Bool(), "learn a per-channel scale (weight) and shift (bias)"),
}, keeps_features=False, input_size=("num_channels", 1), check_fn=_groups_divide_channels)
register_layer(nn.Dropout2d, "Zeroes whole channels of (N, C, H, W) inputs with probability p while training, "
               "scales the rest by 1/(1-p).", {
    "p": Field(Float(ge=0, lt=1), "probability of a channel being zeroed"),
}, keeps_features=True)
register_layer(nn.DepthwiseSeparableConv2d, "A depthwise convolution (each channel by its own kernels) then a 1x1 "
               "convolution mixing channels (Keras' SeparableConv2D).", {
    "in_channels": Field(Int(ge=1), "channels of the input"),
    "out_channels": Field(Int(ge=1), "channels produced by the pointwise convolution"),
    "kernel_size": Field(_sizes(2, 1), "size of the depthwise kernel: an int or a pair"),
    "stride": Field(_sizes(2, 1), "step between windows"),
    "padding": Field(AnyOf((*_sizes(2, 0).kinds, Choice(("same", "valid")))),
                     "zeros added on each side, or 'same' (stride 1) / 'valid'"),
    "dilation": Field(_sizes(2, 1), "spacing between kernel elements"),
    "bias": Field(Bool(), "learn an additive bias per output channel (on the pointwise convolution)"),
    "depth_multiplier": Field(Int(ge=1), "depthwise kernels per input channel"),
    "padding_mode": Field(Choice(("zeros",)), "only 'zeros' is supported"),
}, input_size=("in_channels", 1), input_dims=(4,))


def _align_corners_linear(args, path, ck):
    """Upsample's own rule (checked at its first forward), here so the message names the file and line. Exactly
    one of size and scale_factor is left to the dry run's forward pass: both default to null in the class."""
    if args["align_corners"] is not None and args["mode"] not in ("linear", "bilinear"):
        ck.fail(path + ("align_corners",), f"only applies to linear and bilinear modes, not {args['mode']!r}",
                value=args["align_corners"], allowed="null")


register_layer(nn.Upsample, "Resamples (N, C, L) or (N, C, H, W) inputs to size or by scale_factor (nearest, "
               "linear or bilinear interpolation); no parameters.", {
    "size": Field(Optional(AnyOf((Int(ge=1), ListOf(Int(ge=1), min_len=1)))),
                  "output size: an int or one per spatial dimension (null: use scale_factor)"),
    "scale_factor": Field(Optional(AnyOf((Float(gt=0), ListOf(Float(gt=0), min_len=1)))),
                          "multiplier of each spatial size (null: use size)"),
    "mode": Field(Choice(("nearest", "nearest-exact", "linear", "bilinear")),
                  "nearest, nearest-exact, linear (3-D input) or bilinear (4-D input)"),
    "align_corners": Field(Optional(Bool()), "linear modes: align the corner pixels' centres (null: false)"),
}, input_dims=(3, 4), check_fn=_align_corners_linear)


# Sequence layers. Data arrives (N, L) and an Embedding makes (N, L, E), so inside a layers list batch_first is true
# by default; and a layer of the list hands one tensor, batch first, to the next, so return_mode offers the two such
# values ('state', PyTorch's None and the LSTM's (h_n, c_n) pair are for code that calls the layer itself).
_BATCH_FIRST = Field(Bool(), "inputs and outputs are (N, L, features), as the data and Embedding give them", True,
                     why_default="data arrives (N, L): a sequence in a layers list is batch first")
_RECURRENT_FIELDS = {
    "input_size": Field(Int(ge=0), "features of each step (the Embedding's embedding_dim)"),
    "hidden_size": Field(Int(ge=1), "features of the hidden state"),
    "num_layers": Field(Int(ge=1), "stacked recurrent layers"),
    "bias": Field(Bool(), "learn the biases b_ih and b_hh"),
    "batch_first": _BATCH_FIRST,
    "dropout": Field(Float(ge=0, le=1), "dropout between stacked layers (not after the last)"),
    "bidirectional": Field(Bool(), "also run the sequence backwards; outputs join both directions (2 * hidden_size)"),
    "return_mode": Field(Choice(("last", "sequence"), "return mode"), "last: (N, D*hidden_size), the output at "
                         "each sequence's last real step (Keras' default); sequence: (N, L, D*hidden_size), every "
                         "step (Keras' return_sequences)", "last",
                         why_default="a layer in a list must return one tensor: Keras' return_sequences=False, not "
                         "PyTorch's (output, h_n) tuple"),
    "mask_value": Field(Optional(Float()), "a step whose features all equal it is padding, skipped: 0.0 after an "
                        "Embedding with padding_idx=0 (Keras' Masking; null: no masking)"),
}
register_layer(nn.RNN, "Elman RNN, h_t = tanh or relu(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (PyTorch's "
               "weights).", {**_RECURRENT_FIELDS, "nonlinearity": Field(Choice(("tanh", "relu")), "the activation")},
               in_key="input_size", input_size=("input_size", -1), input_dims=(3,))
register_layer(nn.LSTM, "Long short-term memory (PyTorch's weights and gate order i, f, g, o).", _RECURRENT_FIELDS,
               in_key="input_size", input_size=("input_size", -1), input_dims=(3,))
register_layer(nn.GRU, "Gated recurrent unit (PyTorch's weights and gate order r, z, n).", _RECURRENT_FIELDS,
               in_key="input_size", input_size=("input_size", -1), input_dims=(3,))
_D_MODEL = Field(Int(ge=1), "features of each position")
_POSITIONAL_FIELDS = {
    "d_model": _D_MODEL,
    "dropout": Field(Float(ge=0, lt=1), "dropout after adding the encoding"),
    "max_len": Field(Int(ge=1), "the longest sequence"),
    "batch_first": _BATCH_FIRST,
}
register_layer(nn.PositionalEncoding, "Adds the fixed sinusoidal position encoding, then dropout.", _POSITIONAL_FIELDS,
               keeps_features=True, input_size=("d_model", -1), input_dims=(3,))
register_layer(nn.LearnedPositionalEncoding, "Adds a learned position embedding, then dropout.", _POSITIONAL_FIELDS,
               keeps_features=True, input_size=("d_model", -1), input_dims=(3,))


def _heads_divide_d_model(args, path, ck):
    if args["d_model"] % args["nhead"]:
        ck.fail(path + ("nhead",), f"must divide d_model ({args['d_model']}): each head works on d_model // nhead "
                "features", value=args["nhead"], allowed=f"a divisor of {args['d_model']}")


register_layer(nn.TransformerEncoderLayer, "Self-attention and feed-forward blocks with residual connections "
               "(PyTorch's); (N, L, d_model) in and out.", {
    "d_model": _D_MODEL,
    "nhead": Field(Int(ge=1), "attention heads (d_model must be divisible by nhead)"),
    "dim_feedforward": Field(Int(ge=1), "hidden features of the feed-forward block"),
    "dropout": Field(Float(ge=0, lt=1), "dropout in both blocks"),
    "activation": Field(Choice(("relu", "gelu"), "activation"), "the feed-forward activation"),
    "layer_norm_eps": Field(Float(gt=0), "added to the variance in the layer norms"),
    "batch_first": _BATCH_FIRST,
    "norm_first": Field(Bool(), "layer norm before each block (pre-norm) instead of after"),
    "bias": Field(Bool(), "learn the biases of the linear layers and layer norms"),
}, in_key="d_model", out_key="d_model", input_size=("d_model", -1), input_dims=(3,), check_fn=_heads_divide_d_model)

register_layer(nn.ConvLSTM, "Convolutional LSTM over frame sequences (N, T, C, H, W): the LSTM's gates from 'same' "
               "convolutions of each frame and of the hidden state (seed 000).", {
    "in_channels": Field(Int(ge=1), "channels of each input frame"),
    "hidden_channels": Field(Int(ge=1), "channels of the hidden and cell states"),
    "kernel_size": Field(AnyOf((Int(ge=1), ListOf(Int(ge=1), length=2))), "kernel size: an int or a pair "
                          "('same' padding: an even size pads one more on the right and bottom)"),
    "num_layers": Field(Int(ge=1), "stacked ConvLSTM layers"),
    "bias": Field(Bool(), "learn the gate biases"),
    "return_mode": Field(Choice(("last", "sequence"), "return mode"), "last: (N, hidden_channels, H, W), the last "
                         "step's hidden state (Keras' default); sequence: (N, T, hidden_channels, H, W), every step",
                         "last", why_default="a layer in a list must return one tensor, not the (output, (h_n, "
                         "c_n)) tuple"),
}, input_size=("in_channels", 2), input_dims=(5,))
