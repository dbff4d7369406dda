"""docs/config.md carries the reference generated from the schema, so the two cannot drift apart."""
from pathlib import Path

from gpunet.config import LAYERS, OPTIMIZERS, loads_config
from gpunet.config.docs import generated_part, render_markdown

DOCS = Path(__file__).parents[2] / "docs" / "config.md"


def test_docs_reference_is_up_to_date():
    assert generated_part(DOCS.read_text(encoding="utf-8")) == render_markdown(), \
        "docs/config.md is out of date: run python -m gpunet.config.docs docs/config.md"


def test_reference_lists_every_layer_and_optimizer_key():
    text = render_markdown()
    for layer in LAYERS:
        assert f"| `{layer}` |" in text
    for name, spec in OPTIMIZERS.items():
        section = text[text.index(f"### Optimizer `name: {name}`"):]
        section = section[:section.index("\n###")]
        assert all(f"| `{key}` |" in section for key in spec.fields)
    assert "| `lr` | a number >= 0 | `0.001` | learning rate |" in text  # SGD accepts lr = 0, as PyTorch does


def test_example_config_in_the_docs_is_valid():
    text = DOCS.read_text(encoding="utf-8")
    example = text[text.index("```yaml\n") + len("```yaml\n"):]
    config = loads_config(example[:example.index("```")])
    assert config["scheduler"]["name"] == "step" and config["callbacks"][0]["type"] == "early_stopping"
