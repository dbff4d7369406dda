"""Reading config files: safe YAML only, syntax errors and missing files named with file and line."""
import pytest

from gpunet.config import ConfigError, load_config, loads_config

from confighelpers import BASE, edited, line_of, only_problem, write


def test_a_valid_file_loads_to_a_plain_dict(tmp_path):
    config = load_config(write(tmp_path, BASE))
    assert config["optimizer"] == {"name": "sgd", "lr": 0.1, "momentum": 0.0, "dampening": 0.0,
                                   "weight_decay": 0.0, "nesterov": False}
    assert config["trainer"]["epochs"] == 5 and config["seed"] == 0


def test_missing_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == f"{missing}: <config>: config file not found; check the path"


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match="config path is not a file"):
        load_config(tmp_path)


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    text = edited("  lr: 0.1\n", "  lr: [0.1\n")
    path, problem = only_problem(tmp_path, text)
    assert problem.startswith(f"{path}:{line_of(text, 'trainer:')}: <config>: invalid YAML:")
    assert "flow sequence" in problem


def test_bad_indentation_names_its_line(tmp_path):
    text = edited("  lr: 0.1\n", "  lr: 0.1\n bad: 1\n")
    path, problem = only_problem(tmp_path, text)
    assert problem.startswith(f"{path}:{line_of(text, ' bad: 1')}: <config>: invalid YAML:")


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['echo hacked']", "!!python/name:os.system",
                                 "!!python/object:collections.OrderedDict {}"])
def test_python_tags_are_rejected_before_anything_is_built(tmp_path, tag):
    text = edited("  lr: 0.1\n", f"  lr: {tag}\n")
    path, problem = only_problem(tmp_path, text)
    assert problem.startswith(f"{path}:{line_of(text, 'python/')}: optimizer.lr: YAML tag 'tag:yaml.org,2002:python/")
    assert "is not allowed: configs are read with a safe loader" in problem


def test_duplicate_keys_are_an_error_not_a_silent_overwrite(tmp_path):
    text = edited("  lr: 0.1\n", "  lr: 0.1\n  lr: 0.2\n")
    path, problem = only_problem(tmp_path, text)
    first = line_of(text, "lr: 0.1")
    assert problem == f"{path}:{first + 1}: optimizer.lr: duplicate key (first written on line {first}); " \
                      "write each key once"


@pytest.mark.parametrize("written, value", [("1e-3", 1e-3), ("1E+2", 100.0), ("+2.5e-4", 2.5e-4), (".5", 0.5),
                                            ("3", 3)])
def test_exponent_numbers_are_numbers(written, value):
    config = loads_config(edited("  lr: 0.1\n", "  lr: 0.1\n  weight_decay: " + written + "\n"))
    assert config["optimizer"]["weight_decay"] == value


def test_empty_file_says_so(tmp_path):
    path, problem = only_problem(tmp_path, "# nothing here\n")
    assert problem.startswith(f"{path}: <config>: the config is empty; got null; allowed: a mapping with keys seed,")


def test_top_level_list_is_not_a_config(tmp_path):
    path, problem = only_problem(tmp_path, "- 1\n- 2\n")
    assert problem.startswith(f"{path}:1: <config>: the config is not a mapping; got [1, 2]; allowed: a mapping")


def test_aliases_work_but_an_alias_bomb_is_refused(tmp_path):
    shared = loads_config(BASE.replace("  lr: 0.1\n", "  lr: &rate 0.1\n  weight_decay: *rate\n"))
    assert shared["optimizer"]["weight_decay"] == 0.1
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(8))
    path, problem = only_problem(tmp_path, bomb)
    assert "the config holds more than 100000 values (counting each use of a YAML alias)" in problem
