"""The config reference in Markdown, generated from the schema, so the docs cannot drift from what is checked.

    python -m gpunet.config.docs docs/config.md    # rewrite the generated part of the file
"""
from __future__ import annotations

import sys
from pathlib import Path as FilePath

import yaml

from .archs import ARCHS
from .layers import LAYERS
from .components import Component, public_name
from .schema import (CALLBACKS, CONFIG, DATASETS, LOSSES, OPTIMIZERS, SCHEDULERS, SWEEP, TASK_TYPES, TRAINER,
                     TRANSFORMS, ModelKind)
from .spec import REQUIRED, Section
from .yaml_io import PlainDumper

BEGIN = "<!-- BEGIN GENERATED REFERENCE (python -m gpunet.config.docs docs/config.md) -->"
END = "<!-- END GENERATED REFERENCE -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _yaml(value) -> str:
    text = yaml.dump(value, Dumper=PlainDumper, default_flow_style=True, width=10_000).strip()
    return f"`{text.removesuffix('...').strip()}`"


def _default(field) -> str:
    """The default as YAML; a default that differs from the class's on purpose says so and why."""
    if field.default is REQUIRED:
        return "required"
    return _yaml(field.default) + (f" (differs on purpose: {field.why_default})" if field.why_default else "")


def _allowed(field) -> str:
    """The kind's values; a kind that differs from the class's on purpose says why."""
    return field.kind.describe() + (f" (the config's own: {field.why_kind})" if field.why_kind else "")


def fields_table(section: Section, skip: tuple = ()) -> str:
    """A Markdown table of a section's keys: allowed values, default, description."""
    rows = ["| key | allowed | default | description |", "| --- | --- | --- | --- |"]
    rows += [f"| `{key}` | {_cell(_allowed(f))} | {_cell(_default(f))} | {_cell(f.doc)} |"
             for key, f in section.fields.items() if key not in skip]
    return "\n".join(rows) if len(rows) > 2 else "No other keys."


def _registry(title: str, key: str, registry: dict, level: str = "###") -> list[str]:
    out = []
    for name, spec in registry.items():
        target = f" Builds `{public_name(spec.cls)}`." if isinstance(spec, Component) and spec.cls else ""
        out += [f"{level} {title} `{key}: {name}`", "", spec.doc + target, "", fields_table(spec), ""]
    return out


def _types(registry: dict) -> list[str]:
    """A table of a registry chosen by ``type`` (layers, transforms): each entry's arguments with defaults."""
    rows = ["| type | arguments (default) | description |", "| --- | --- | --- |"]
    for name, spec in registry.items():
        args = ", ".join(f"`{k}` ({_cell(_allowed(f))}; {_cell(_default(f))})"
                         for k, f in spec.fields.items()) or "none"
        rows.append(f"| `{name}` | {args} | {_cell(spec.doc)} |")
    return rows


def render_markdown() -> str:
    """The generated reference: every section, key, allowed value and default of the schema."""
    out = ["## Top level", "", CONFIG.doc, "", fields_table(CONFIG), ""]
    out += ["## `data`", "", f"`data.name` picks the dataset: {', '.join(DATASETS)}.", ""]
    out += _registry("Dataset", "name", DATASETS)
    out += ["### Transforms (`data.augment[i].type`)", "", "Each transform is built as `gpunet.data.transforms.<type>("
            "**arguments)` with torchvision's argument names and applied to the training batches only, in the listed "
            "order; MixUp and CutMix get `num_classes` from the data.", ""] + _types(TRANSFORMS) + [""]
    out += ["## `task`", "", f"`task.type` picks what a training step does: {', '.join(TASK_TYPES)} (default "
            "classify). A task with several models takes `models: {<name>: <model form>}` instead of `model:`, and "
            "`optimizers: {<name>: <optimizer section>}` overrides `optimizer:` for a model.", ""]
    for name, spec in TASK_TYPES.items():
        cls = spec.cls
        facts = [f"models: {', '.join(f'`{m}`' for m in cls.models)}"
                 + (f" (built by the task when left out: {', '.join(cls.own_models)})" if cls.own_models else ""),
                 f"data: {cls.data}", f"logged losses: {', '.join(cls.loss_names)}",
                 "loss: " + (f"`{cls.default_loss}` unless given" if cls.default_loss else
                             "required" if cls.uses_loss else "none (its own)")]
        out += [f"### Task `type: {name}`", "", spec.doc + f" Builds `{public_name(cls)}`.", "",
                "; ".join(facts) + ".", "", fields_table(spec), ""]
    forms = ModelKind.forms
    out += ["## `model`", "", ModelKind().describe().capitalize() + ".", ""]
    for form, section in forms.items():
        out += [f"### `model.{form}`", "", section.doc, "", fields_table(section), ""]
    out += ["### Layers (`model.layers[i].type`)", "", "Each layer is built as `gpunet.nn.<type>(**arguments)` with "
            "PyTorch's argument names. A Linear layer's `in_features` must equal the features of the layer before "
            "it.", ""] + _types(LAYERS) + [""]
    out += _registry("Architecture", "arch", ARCHS)
    for title, key, registry in (("loss", "name", LOSSES), ("optimizer", "name", OPTIMIZERS),
                                 ("scheduler", "name", SCHEDULERS)):
        out += [f"## `{title}`", "", f"`{title}.{key}`: {', '.join(registry)}.", ""]
        out += _registry(title.capitalize(), key, registry)
    out += ["## `trainer`", "", TRAINER.doc, "", fields_table(TRAINER), ""]
    out += ["## `callbacks`", "", "A list; each item is `{type: <name>, ...}`.", ""]
    out += _registry("Callback", "type", CALLBACKS)
    out += ["## `checkpoint`", "", CONFIG.fields["checkpoint"].kind.doc, "",
            fields_table(CONFIG.fields["checkpoint"].kind), ""]
    out += ["## `sweep`", "", SWEEP.doc, "", fields_table(SWEEP)]
    return "\n".join(out) + "\n"


def generated_part(text: str) -> str:
    """The text between the BEGIN and END markers of a docs file."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip("\n") + "\n"


def write(path: str) -> None:
    """Replace the generated part of ``path`` with the current reference."""
    file = FilePath(path)
    text = file.read_text(encoding="utf-8")
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    file.write_text(text[:start] + "\n" + render_markdown() + text[end:], encoding="utf-8")


if __name__ == "__main__":
    write(sys.argv[1] if len(sys.argv) > 1 else "docs/config.md")
