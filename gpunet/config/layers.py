"""The layer table: which ``gpunet.nn`` layers a config may list under ``model.layers``, with their PyTorch arguments.

Other modules add layers with ``register_layer``; the schema, the validator, the docs and ``build_model`` all read
this one table.
"""
from __future__ import annotations

from dataclasses import dataclass

from .spec import AnyOf, Bool, Choice, Field, Float, Int, ListOf, Optional, Section


@dataclass(frozen=True)
class LayerSpec(Section):
    """A layer's arguments plus how it changes the feature count (last axis), used to check Linear chains.

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


def register_layer(name: str, doc: str, fields: dict | None = None, *, in_key: str | None = None,
                   out_key: str | None = None, keeps_features: bool = False, check_fn=None,
                   input_size: tuple | None = None, input_dims: tuple = ()) -> LayerSpec:
    """Allow ``{type: name, ...}`` in ``model.layers``; ``build_model`` calls ``gpunet.nn.<name>(**arguments)``."""
    if not name.isidentifier():
        raise ValueError(f"layer name must be a Python identifier (the gpunet.nn class name), got {name!r}")
    spec = LayerSpec(fields or {}, doc, check_fn, in_key, out_key, keeps_features, input_size, tuple(input_dims))
    LAYERS[name] = spec
    return spec


def _min_below_max(args, path, ck):
    if args["min_val"] >= args["max_val"]:
        ck.fail(path + ("max_val",), f"must be greater than min_val ({args['min_val']:g})", value=args["max_val"],
                allowed=f"a number > {args['min_val']:g}")


_DIM = Int()
register_layer("Linear", "Fully connected layer y = x W^T + b, W of shape (out_features, in_features).", {
    "in_features": Field(Int(ge=1), "size of each input sample"),
    "out_features": Field(Int(ge=1), "size of each output sample"),
    "bias": Field(Bool(), "learn an additive bias", True),
}, in_key="in_features", out_key="out_features", input_size=("in_features", -1))
register_layer("Flatten", "Flattens dimensions start_dim..end_dim into one.", {
    "start_dim": Field(_DIM, "first dimension to flatten", 1),
    "end_dim": Field(_DIM, "last dimension to flatten", -1),
})
register_layer("Identity", "Returns its input unchanged.", keeps_features=True)
register_layer("ReLU", "max(0, x).", keeps_features=True)
register_layer("Sigmoid", "1 / (1 + exp(-x)).", keeps_features=True)
register_layer("Tanh", "Hyperbolic tangent.", keeps_features=True)
register_layer("Dropout", "Zeroes each element with probability p while training, scales the rest by 1/(1-p).", {
    "p": Field(Float(ge=0, lt=1), "probability of an element being zeroed", 0.5),
}, keeps_features=True)
register_layer("Softmax", "exp(x) / sum(exp(x)) along dim.", {
    "dim": Field(_DIM, "dimension along which the outputs sum to 1", 1),
}, keeps_features=True)
register_layer("LogSoftmax", "log(softmax(x)) along dim, computed stably.", {
    "dim": Field(_DIM, "dimension along which softmax is taken", 1),
}, keeps_features=True)
register_layer("LeakyReLU", "max(0, x) + negative_slope * min(0, x).", {
    "negative_slope": Field(Float(), "slope for negative inputs", 0.01),
}, keeps_features=True)
register_layer("ELU", "x if x > 0 else alpha * (exp(x) - 1).", {
    "alpha": Field(Float(), "value the negative side saturates to (as -alpha)", 1.0),
}, keeps_features=True)
register_layer("GELU", "x * Phi(x), Phi the standard normal CDF (or its tanh approximation).", {
    "approximate": Field(Choice(("none", "tanh")), "'none' for the exact erf form, 'tanh' for the approximation",
                         "none"),
}, keeps_features=True)
register_layer("Softplus", "log(1 + exp(beta * x)) / beta, linear above threshold.", {
    "beta": Field(Float(gt=0), "sharpness", 1.0),
    "threshold": Field(Float(), "beta * x above which the layer is linear", 20.0),
}, keeps_features=True)
register_layer("PReLU", "Leaky ReLU whose negative slope is learned (one per channel, or shared).", {
    "num_parameters": Field(Int(ge=1), "number of slopes: 1 (shared) or the number of channels", 1),
    "init": Field(Float(), "initial slope", 0.25),
}, keeps_features=True)
register_layer("Hardtanh", "x clipped to [min_val, max_val].", {
    "min_val": Field(Float(), "lower clip value", -1.0),
    "max_val": Field(Float(), "upper clip value", 1.0),
}, keeps_features=True, check_fn=_min_below_max)


def _sizes(n: int, low: int) -> AnyOf:
    """An int >= low, or a list of n of them (one per spatial dimension)."""
    return AnyOf((Int(ge=low), ListOf(Int(ge=low), length=n)))


for _n in (1, 2):
    register_layer(f"MaxPool{_n}d", f"Maximum over sliding windows ({_n}-D).", {
        "kernel_size": Field(_sizes(_n, 1), "window size"),
        "stride": Field(Optional(_sizes(_n, 1)), "step between windows (null: kernel_size)", None),
        "padding": Field(_sizes(_n, 0), "implicit -inf padding on each side (at most half the window)", 0),
        "dilation": Field(_sizes(_n, 1), "spacing between window elements", 1),
        "ceil_mode": Field(Bool(), "round the output size up (a last partial window)", False),
    }, input_dims=(_n + 2,))
    register_layer(f"AvgPool{_n}d", f"Mean over sliding windows ({_n}-D).", {
        "kernel_size": Field(_sizes(_n, 1), "window size"),
        "stride": Field(Optional(_sizes(_n, 1)), "step between windows (null: kernel_size)", None),
        "padding": Field(_sizes(_n, 0), "implicit zero padding on each side (at most half the window)", 0),
        "ceil_mode": Field(Bool(), "round the output size up (a last partial window)", False),
        "count_include_pad": Field(Bool(), "count the padding in each window's divisor", True),
    }, input_dims=(_n + 2,))
    register_layer(f"AdaptiveAvgPool{_n}d", f"Average pooling to a fixed output size ({_n}-D); 1 is the global mean.", {
        "output_size": Field(_sizes(_n, 1), "output size"),
    }, input_dims=(_n + 2,))

_BATCH_NORM_FIELDS = {
    "num_features": Field(Int(ge=1), "number of channels C of the (N, C, ...) input"),
    "eps": Field(Float(gt=0), "added to the variance for numerical stability", 1e-5),
    "momentum": Field(Optional(Float(ge=0, le=1)), "running-statistics update factor (null: cumulative average)", 0.1),
    "affine": Field(Bool(), "learn a per-channel scale (weight) and shift (bias)", True),
    "track_running_stats": Field(Bool(), "keep running mean/variance for eval (else batch statistics always)", True),
}
register_layer("BatchNorm1d", "Normalises each channel of (N, C) or (N, C, L) inputs by batch statistics (running "
               "ones in eval), then scales and shifts.", _BATCH_NORM_FIELDS, in_key="num_features",
               out_key="num_features", input_size=("num_features", 1), input_dims=(2, 3))
register_layer("BatchNorm2d", "Normalises each channel of (N, C, H, W) inputs by batch statistics (running ones in "
               "eval), then scales and shifts.", _BATCH_NORM_FIELDS, input_size=("num_features", 1), input_dims=(4,))
register_layer("Embedding", "Lookup table: row i of a (num_embeddings, embedding_dim) weight for each integer index i "
               "(the model's input must be integer indices).", {
    "num_embeddings": Field(Int(ge=1), "number of rows (the vocabulary size)"),
    "embedding_dim": Field(Int(ge=1), "size of each vector"),
    "padding_idx": Field(Optional(Int()), "row kept at zero that receives no gradient (null: none)", None),
}, out_key="embedding_dim")
_CONV_INT = AnyOf((Int(ge=1), ListOf(Int(ge=1), min_len=1)))
_CONV_PAD = AnyOf((Int(ge=0), ListOf(Int(ge=0), min_len=1), Choice(("same", "valid"))))
for _name, _doc in (("Conv1d", "1-D cross-correlation over (N, C, L); weight (out_channels, in_channels/groups, k)."),
                    ("Conv2d", "2-D cross-correlation over (N, C, H, W); weight (out_channels, in_channels/groups, "
                               "kh, kw).")):
    register_layer(_name, _doc, {
        "in_channels": Field(Int(ge=1), "channels of the input"),
        "out_channels": Field(Int(ge=1), "channels produced (filters)"),
        "kernel_size": Field(_CONV_INT, "size of the kernel: an int or one per spatial dimension"),
        "stride": Field(_CONV_INT, "step between windows", 1),
        "padding": Field(_CONV_PAD, "zeros added on each side, or 'same' (stride 1) / 'valid'", 0),
        "dilation": Field(_CONV_INT, "spacing between kernel elements", 1),
        "groups": Field(Int(ge=1), "blocked connections: in and out channels are split into this many groups", 1),
        "bias": Field(Bool(), "learn an additive bias per output channel", True),
        "padding_mode": Field(Choice(("zeros",)), "only 'zeros' is supported", "zeros"),
    }, input_size=("in_channels", 1), input_dims=(3,) if _name == "Conv1d" else (4,))
register_layer("ConvTranspose2d", "Transposed 2-D convolution (the adjoint of Conv2d); weight (in_channels, "
               "out_channels/groups, kh, kw).", {
    "in_channels": Field(Int(ge=1), "channels of the input"),
    "out_channels": Field(Int(ge=1), "channels produced"),
    "kernel_size": Field(_CONV_INT, "size of the kernel: an int or a pair"),
    "stride": Field(_CONV_INT, "step between windows", 1),
    "padding": Field(AnyOf((Int(ge=0), ListOf(Int(ge=0), min_len=1))), "implicit zeros removed from each side", 0),
    "output_padding": Field(AnyOf((Int(ge=0), ListOf(Int(ge=0), min_len=1))),
                            "extra size added to one side of the output (smaller than stride)", 0),
    "groups": Field(Int(ge=1), "blocked connections", 1),
    "bias": Field(Bool(), "learn an additive bias per output channel", True),
    "dilation": Field(_CONV_INT, "spacing between kernel elements", 1),
    "padding_mode": Field(Choice(("zeros",)), "only 'zeros' is supported", "zeros"),
}, input_size=("in_channels", 1), input_dims=(4,))
