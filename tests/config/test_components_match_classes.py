"""Every registered config component matches its class: each key is a parameter of the class, each key's kind IS the
kind the class declares and checks its arguments through (or is declared as differing on purpose, with the reason),
each default is the class's (likewise), and each key accepts exactly the values the class accepts, probed at and
around every bound and at a few ordinary values: this probes the class's rules between arguments and any check it
still makes by hand."""
import inspect
import math

import pytest

import gpunet
from gpunet.config import ARCHS, CALLBACKS, CONFIG, LAYERS, LOSSES, OPTIMIZERS, SCHEDULERS, TASK_TYPES, TRANSFORMS
from gpunet.config.components import declared_arguments, from_data
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

# Values a config accepts that its class does not, because the run resolves or handles them before building (each
# such key declares why_kind).
CONFIG_ONLY_VALUES = {
    ("callback progress", "style"): {"none"},  # the run adds no ProgressBar at all
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
    disagreements = []
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
            if (resolved is not None) != class_ok:
                disagreements.append(f"{key}={value!r}: config {'accepts' if resolved is not None else 'refuses'}"
                                     f"{'' if resolved is not None else ' (' + '; '.join(problems) + ')'}, "
                                     f"class {'accepts' if class_ok else 'refuses'}")
    assert not disagreements, f"{name} ({spec.cls.__name__}):\n" + "\n".join(disagreements)


@pytest.mark.parametrize("name", [n for n in COMPONENTS if not n.startswith("task ")])
def test_each_key_kind_is_the_class_kind(name):
    """The config states no range of its own: a key's kind is the very object the class checks its argument with
    (less the alternatives no YAML value can be, a callable), unless the key says why it differs."""
    spec = COMPONENTS[name]
    declared = declared_arguments(spec.cls).kinds
    for key, field in spec.fields.items():
        if key in spec.config_only:
            continue
        kind = declared[spec.renames.get(key, key)]  # KeyError: the class declares no kind for it
        if field.why_kind:
            assert field.kind != kind, f"{name}.{key}: declared as differing but equal"
        else:
            assert field.kind is kind or (field.kind == from_data(kind) and field.kind != kind), f"{name}.{key}"


def test_a_class_names_itself_its_argument_the_rule_and_the_value():
    with pytest.raises(ValueError, match=r"^Linear: out_features must be an integer >= 1, got -1$"):
        gpunet.nn.Linear(3, -1)
    with pytest.raises(ValueError, match=r"^GELU: approximate must be one of 'none', 'tanh' \(did you mean 'tanh'\?\), "
                                         r"got 'tanh '$"):
        gpunet.nn.GELU("tanh ")
    with pytest.raises(ValueError, match=r"^Hardtanh: max_val must be greater than min_val \(1\), got 0$"):
        gpunet.nn.Hardtanh(1, 0)
    with pytest.raises(ValueError, match=r"^SGD: nesterov needs momentum > 0 and dampening = 0"):
        gpunet.optim.SGD(gpunet.nn.Linear(2, 2).parameters(), lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"^resnet: depth must be one of 18, 34, 50, 101, 152"):
        gpunet.models.resnet(depth=20)


def test_a_default_or_kind_stated_in_the_config_is_refused_unless_it_says_why():
    from gpunet.config.components import component
    from gpunet.config.spec import Field
    from gpunet.kinds import Float

    with pytest.raises(TypeError, match="states a default"):
        component(gpunet.nn.Dropout, None, {"p": Field(doc="", default=0.3)})
    with pytest.raises(TypeError, match="states a kind"):
        component(gpunet.nn.Dropout, None, {"p": Field(Float(ge=0), "")})
    with pytest.raises(TypeError, match="has no parameter 'prob'"):
        component(gpunet.nn.Dropout, None, {"prob": "probability"})
    with pytest.raises(TypeError, match="declares no kind for its argument 'inplace'"):
        component(gpunet.nn.ReLU, None, {"inplace": "in place"})
    field = component(gpunet.nn.Dropout, None, {"p": "probability"}).fields["p"]
    assert field.default == 0.5 and field.kind is gpunet.nn.Dropout.arguments.kinds["p"]


def test_registering_a_layer_is_one_call(monkeypatch):
    """A new layer needs its class (which declares its arguments' kinds) and a description of each argument it
    offers; names, kinds, defaults, the builder, the checks and the docs follow from them."""
    from gpunet.config import ConfigError, build_model, loads_config, register_layer
    from gpunet.config.docs import render_markdown
    from gpunet.config.layers import LAYERS as TABLE
    from gpunet.kinds import Arguments, Int, checked

    class Scale(gpunet.nn.Module):
        """Multiplies its input by ``factor``."""

        arguments = Arguments(factor=Int(ge=1))

        @checked
        def __init__(self, factor: int = 3):
            super().__init__()
            self.factor = factor

        def forward(self, x):
            return x * self.factor

    monkeypatch.setitem(TABLE, "Scale", None)  # removed again after the test
    register_layer(Scale, None, {"factor": "the factor"}, keeps_features=True)
    with pytest.raises(ValueError, match=r"^Scale: factor must be an integer >= 1, got 0$"):
        Scale(0)
    assert TABLE["Scale"].fields["factor"].default == 3 and TABLE["Scale"].doc == "Multiplies its input by ``factor``."
    base = "data: {name: xor}\nloss: {name: cross_entropy}\noptimizer: {name: sgd}\ntrainer: {epochs: 1}\n"
    model = build_model(loads_config(base + "model: {layers: [{type: Linear, in_features: 2, out_features: 2}, "
                                            "{type: Scale}]}\n"))
    assert isinstance(model[1], Scale) and model[1].factor == 3
    with pytest.raises(ConfigError, match=r"model.layers\[1\].factor: out of range; got 0; allowed: an integer >= 1"):
        loads_config(base + "model: {layers: [{type: Linear, in_features: 2, out_features: 2}, "
                            "{type: Scale, factor: 0}]}\n")
    assert "| `Scale` | `factor` (an integer >= 1; `3`) |" in render_markdown()
