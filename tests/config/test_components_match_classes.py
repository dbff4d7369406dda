"""Every registered config component matches its class: each key is a parameter of the class, each default is the
class's default (or is declared as differing on purpose, with the reason), and each key accepts exactly the values
the class accepts, probed at and around every bound the config states and at a few ordinary values."""
import inspect
import math

import pytest

import gpunet
from gpunet.config import ARCHS, CALLBACKS, CONFIG, LAYERS, LOSSES, OPTIMIZERS, SCHEDULERS, TASK_TYPES, TRANSFORMS
from gpunet.config.spec import REQUIRED
from gpunet.kinds import INVALID, AnyOf, Bool, Checker, Choice, ListOf, Number, Optional, Str

COMPONENTS = {
    **{f"layer {name}": spec for name, spec in LAYERS.items()},
    **{f"loss {name}": spec for name, spec in LOSSES.items()},
    **{f"optimizer {name}": spec for name, spec in OPTIMIZERS.items()},
    **{f"scheduler {name}": spec for name, spec in SCHEDULERS.items()},
    **{f"callback {name}": spec for name, spec in CALLBACKS.items()},
    **{f"transform {name}": spec for name, spec in TRANSFORMS.items()},
    **{f"arch {name}": spec for name, spec in ARCHS.items()},
    **{f"task {name}": spec for name, spec in TASK_TYPES.items()},
    "checkpoint": CONFIG.fields["checkpoint"].kind,
}

# Values a config accepts that its class does not, because the run resolves or handles them before building.
CONFIG_ONLY_VALUES = {
    ("callback progress", "style"): {"none"},  # the run adds no ProgressBar at all
}


# Keys whose class accepts, when constructed, values the config refuses: the class checks them later (at the first
# forward, or when training begins) or not at all. The check belongs in the class (gpunet/nn and
# gpunet/train/callbacks.py, outside the config); each entry goes once its class refuses the same values.
CLASS_CHECKS_LATER = {
    "layer Linear": ("in_features", "out_features"),  # 0 features: PyTorch accepts it too
    "layer Softplus": ("beta",),
    "layer Hardtanh": ("min_val", "max_val"),  # min_val < max_val
    "layer Conv1d": ("in_channels", "out_channels"),
    "layer Conv2d": ("in_channels", "out_channels"),
    "layer ConvTranspose2d": ("in_channels", "out_channels"),
    "layer DepthwiseSeparableConv2d": ("out_channels",),
    **{f"layer MaxPool{n}d": ("kernel_size", "stride", "padding", "dilation") for n in (1, 2)},
    **{f"layer AvgPool{n}d": ("kernel_size", "stride", "padding") for n in (1, 2)},
    **{f"layer AdaptiveAvgPool{n}d": ("output_size",) for n in (1, 2)},
    "layer Upsample": ("size", "scale_factor", "mode", "align_corners"),  # checked at the first forward
    "arch mlp": ("in_features", "out_features", "hidden", "activation", "dropout"),  # gpunet.config.archs.mlp
    # does not check its arguments yet (an empty hidden list leaves activation and dropout unused)
    "callback reduce_lr_on_plateau": ("factor", "patience", "threshold", "threshold_mode", "cooldown", "min_lr",
                                      "eps"),  # checked by the scheduler it makes when training begins
}

# Values the config's cross-section rules replace before anything is built (gpunet.config.schema._monitor_rules).
RESOLVED_BEFORE_BUILD = {"monitor": (None, "val_loss"), "mode": ("auto", "min")}


def _resolved(arguments: dict) -> dict:
    return {k: RESOLVED_BEFORE_BUILD[k][1] if k in RESOLVED_BEFORE_BUILD and v == RESOLVED_BEFORE_BUILD[k][0] else v
            for k, v in arguments.items()}


def _leading(spec):
    """The positional arguments a builder passes before the keywords (params, or an optimizer)."""
    if spec in OPTIMIZERS.values():
        return (gpunet.nn.Linear(2, 2).parameters(),)
    if spec in SCHEDULERS.values():
        return (gpunet.optim.SGD(gpunet.nn.Linear(2, 2).parameters(), lr=0.1),)
    return ()


def _sample(kind):
    """An ordinary value ``kind`` accepts (for required arguments while another key is probed)."""
    if isinstance(kind, Optional):
        return _sample(kind.kind)
    if isinstance(kind, AnyOf):
        return _sample(kind.kinds[0])
    if isinstance(kind, ListOf):
        return [_sample(kind.item)] * (kind.length or max(kind.min_len, 1))
    if isinstance(kind, Choice):
        return kind.names()[0]
    if isinstance(kind, Str):
        return "probe"
    if isinstance(kind, Bool):
        return False
    low = kind.ge if kind.ge is not None else (kind.gt + (1 if kind.integer else 0.5) if kind.gt is not None else None)
    high = kind.le if kind.le is not None else (kind.lt - (1 if kind.integer else 0.5) if kind.lt is not None else None)
    value = 4 if kind.integer else 0.5
    if low is not None and value < low:
        value = low
    if high is not None and value > high:
        value = (low + high) / 2 if low is not None and not kind.integer else high
    return value


def _probes(kind):
    """Values to try for a key of ``kind``: every stated bound, one step either side, and ordinary values."""
    if isinstance(kind, Optional):
        return [None] + _probes(kind.kind)
    if isinstance(kind, AnyOf):
        return [v for k in kind.kinds for v in _probes(k)]
    if isinstance(kind, ListOf):
        n = kind.length or max(kind.min_len, 1)
        return [[v] * n for v in _probes(kind.item) if v is not None]
    if isinstance(kind, Choice):
        return kind.names() + ["not-a-choice"]
    if isinstance(kind, Bool):
        return [True, False]
    if isinstance(kind, Number):
        step = 1 if kind.integer else 1e-3
        values = {-1, 0, 1, 2} | ({0.5} if not kind.integer else set())
        for bound in (kind.ge, kind.gt, kind.le, kind.lt):
            if bound is not None:
                values |= {bound - step, bound, bound + step}
        return sorted(v for v in values if math.isfinite(v) and (not kind.integer or float(v).is_integer()))
    return []


def _config_accepts(spec, section):
    ck = Checker()
    resolved = spec.check(section, (), ck)
    return (None if resolved is INVALID else resolved), [str(p) for p in ck.problems]


def _class_accepts(spec, arguments) -> bool:
    try:
        spec.cls(*_leading(spec), **arguments)
    except Exception:  # noqa: BLE001 -- any refusal counts; the test compares refusals, not messages
        return False
    return True


def _required(spec):
    return {key: _sample(field.kind) for key, field in spec.fields.items() if field.required}


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_keys_are_parameters_and_defaults_are_the_classes(name):
    spec = COMPONENTS[name]
    parameters = inspect.signature(spec.cls).parameters
    for key, field in spec.fields.items():
        if key in spec.config_only:
            continue
        parameter = parameters[spec.renames.get(key, key)]  # KeyError: a key the class does not take
        class_default = REQUIRED if parameter.default is inspect.Parameter.empty else parameter.default
        if field.why_default:
            assert field.default != class_default, f"{name}.{key}: declared as differing but equal"
            continue
        assert field.required == (class_default is REQUIRED), f"{name}.{key}"
        if not field.required:  # the value a config gets when it omits the key, after checking
            resolved, problems = _config_accepts(spec, _required(spec))
            assert not problems, problems
            value = resolved[key]
            expected = list(class_default) if isinstance(class_default, tuple) else class_default
            assert value == expected and type(value) in (type(expected), float), f"{name}.{key}: {value!r}"


@pytest.mark.parametrize("name", list(COMPONENTS))
def test_each_key_accepts_exactly_what_the_class_accepts(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # callbacks given file names write there
    spec = COMPONENTS[name]
    disagreements, later = [], set()
    for key, field in spec.fields.items():
        if key in spec.config_only:
            continue
        skip = CONFIG_ONLY_VALUES.get((name, key), set())
        for value in _probes(field.kind):
            if any(value == v for v in skip) or RESOLVED_BEFORE_BUILD.get(key, (object(),))[0] == value:
                continue
            section = {**_required(spec), key: value}
            resolved, problems = _config_accepts(spec, section)
            arguments = _resolved(spec.arguments(resolved if resolved is not None else section))
            class_ok = _class_accepts(spec, arguments)
            if resolved is None and class_ok and key in CLASS_CHECKS_LATER.get(name, ()):
                later.add(key)
            elif (resolved is not None) != class_ok:
                disagreements.append(f"{key}={value!r}: config {'accepts' if resolved is not None else 'refuses'}"
                                     f"{'' if resolved is not None else ' (' + '; '.join(problems) + ')'}, "
                                     f"class {'accepts' if class_ok else 'refuses'}")
    assert not disagreements, f"{name} ({spec.cls.__name__}):\n" + "\n".join(disagreements)
    assert later == set(CLASS_CHECKS_LATER.get(name, ())), f"{name}: the class now checks " \
        f"{set(CLASS_CHECKS_LATER.get(name, ())) - later} itself; remove it from CLASS_CHECKS_LATER"


def test_a_default_stated_in_the_config_is_refused_unless_it_says_why():
    from gpunet.config.components import component
    from gpunet.config.spec import Field
    from gpunet.kinds import Float

    with pytest.raises(TypeError, match="states a default"):
        component(gpunet.nn.Dropout, None, {"p": Field(Float(ge=0), "", 0.3)})
    with pytest.raises(TypeError, match="has no parameter 'prob'"):
        component(gpunet.nn.Dropout, None, {"prob": Float(ge=0)})
    assert component(gpunet.nn.Dropout, None, {"p": Float(ge=0)}).fields["p"].default == 0.5


def test_registering_a_layer_is_one_call(monkeypatch):
    """A new layer needs its class and the kinds of the arguments it offers; names, defaults, the builder, the
    checks and the docs follow from them."""
    from gpunet.config import ConfigError, build_model, loads_config, register_layer
    from gpunet.config.docs import render_markdown
    from gpunet.config.layers import LAYERS as TABLE
    from gpunet.kinds import Int

    class Scale(gpunet.nn.Module):
        """Multiplies its input by ``factor``."""

        def __init__(self, factor: int = 3):
            super().__init__()
            if factor < 1:
                raise ValueError(f"Scale: factor must be >= 1, got {factor}")
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    monkeypatch.setitem(TABLE, "Scale", None)  # removed again after the test
    register_layer(Scale, None, {"factor": Int(ge=1)}, keeps_features=True)
    assert TABLE["Scale"].fields["factor"].default == 3 and TABLE["Scale"].doc == "Multiplies its input by ``factor``."
    base = "data: {name: xor}\nloss: {name: cross_entropy}\noptimizer: {name: sgd}\ntrainer: {epochs: 1}\n"
    model = build_model(loads_config(base + "model: {layers: [{type: Linear, in_features: 2, out_features: 2}, "
                                            "{type: Scale}]}\n"))
    assert isinstance(model[1], Scale) and model[1].factor == 3
    with pytest.raises(ConfigError, match=r"model.layers\[1\].factor: out of range; got 0; allowed: an integer >= 1"):
        loads_config(base + "model: {layers: [{type: Linear, in_features: 2, out_features: 2}, "
                            "{type: Scale, factor: 0}]}\n")
    assert "| `Scale` | `factor` (an integer >= 1; `3`) |" in render_markdown()
