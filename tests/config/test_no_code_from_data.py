"""No code from data: a config can name code only as a model class (``model.import``), and anything there that is
not a gpunet.nn.Module subclass is refused before it is called; checkpoints and .npz datasets are read without
pickle. Each attack would create a marker file if it ran."""
import json
import sys

import numpy as np
import pytest

from gpunet.cli import main
from gpunet.config import ConfigError, build_model, loads_config
from gpunet.config.schema import CONFIG, ImportPath

from confighelpers import BASE, edited

LAYERS_YAML = BASE[BASE.index("  layers:"):BASE.index("loss:")]


def _attacks(marker):
    """(import path, args): each would create ``marker`` if gpunet called it."""
    return [
        ("os:system", {"command": f"touch {marker}"}),
        ("builtins:eval", {"source": f"open({str(marker)!r}, 'w')"}),
        ("subprocess:run", {"args": ["touch", str(marker)]}),
        ("evil_models:make_file", {"path": str(marker)}),  # a module-level function in the user's own module
        ("evil_models:NotAModule", {"path": str(marker)}),  # a class, but not a Module subclass
    ]


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    (tmp_path / "evil_models.py").write_text(
        "def make_file(path):\n"
        "    open(path, 'w').close()\n"
        "class NotAModule:\n"
        "    def __init__(self, path):\n"
        "        open(path, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("evil_models", None)


def _config_text(spec, args):
    return edited(LAYERS_YAML, f"  import: {json.dumps(spec)}\n  args: {json.dumps(args)}\n")


def test_every_config_key_that_imports_is_known():
    """``model.import`` is the only key whose value names code: the test below covers every such key."""
    def importing(kind, path):
        if isinstance(kind, ImportPath):
            yield path
        for name, field in getattr(kind, "fields", {}).items():
            yield from importing(field.kind, path + (name,))
        for form, section in getattr(kind, "forms", {}).items():
            yield from importing(section, path)
        for attr in ("kind", "item"):
            if hasattr(kind, attr) and not isinstance(getattr(kind, attr), str):
                yield from importing(getattr(kind, attr), path)
        for variant in getattr(kind, "variants", {}).values():
            yield from importing(variant, path)
    assert list(importing(CONFIG, ())) == [("model", "import")]


@pytest.mark.parametrize("index", range(5))
def test_build_model_refuses_code_that_is_not_a_module_class(index, tmp_path, evil_module):
    marker = tmp_path / "pwned"
    spec, args = _attacks(marker)[index]
    with pytest.raises(ConfigError) as info:
        build_model(loads_config(_config_text(spec, args)))
    message = str(info.value)
    assert "model.import" in message and "gpunet.nn.Module subclass" in message, message
    assert not marker.exists(), f"{spec} ran"


@pytest.mark.parametrize("command", ["summary", "train"])
@pytest.mark.parametrize("index", [0, 3])
def test_the_cli_refuses_it_before_running_anything(command, index, tmp_path, evil_module, capsys):
    marker = tmp_path / "pwned"
    spec, args = _attacks(marker)[index]
    path = tmp_path / "cfg.yaml"
    path.write_text(_config_text(spec, args).replace("name: digits", "name: xor"))
    argv = [command, str(path)] + (["--out", str(tmp_path / "run")] if command == "train" else [])
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 1 and "model.import" in err and not marker.exists(), err
    assert not (tmp_path / "run").exists()


def test_a_standard_library_module_is_not_even_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "antigravity", raising=False)  # importing it opens a web browser
    with pytest.raises(ConfigError, match=r"antigravity is part of Python's standard library.*nothing was imported"):
        build_model(loads_config(_config_text("antigravity:Module", {})))
    assert "antigravity" not in sys.modules


def test_checkpoints_and_npz_datasets_refuse_pickled_objects(tmp_path):
    from gpunet.data import DatasetError, load_dataset
    from gpunet.train.checkpoint import CheckpointError, load_checkpoint

    class Boom:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))
    pickled = np.array([Boom()], dtype=object)
    np.savez(tmp_path / "data.npz", x=pickled, y=np.array([0]))
    with pytest.raises(DatasetError):
        load_dataset("npz", path=str(tmp_path / "data.npz"))
    np.savez(tmp_path / "ckpt.npz", model=pickled)
    with pytest.raises(CheckpointError):
        load_checkpoint(str(tmp_path / "ckpt.npz"))
    assert not (tmp_path / "pwned").exists()
