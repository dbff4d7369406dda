"""Overrides ``dotted.key=value``: YAML values, set anywhere in the config, checked like the file."""
import pytest

from gpunet.config import ConfigError, load_config

from confighelpers import BASE, line_of, only_problem, problems, write


def test_overrides_set_nested_values_and_list_items(tmp_path):
    config = load_config(write(tmp_path, BASE), ["optimizer.lr=0.05", "trainer.epochs=30",
                                                 "model.layers[2].p=0.3", "data.normalize=scale"])
    assert config["optimizer"]["lr"] == 0.05
    assert config["trainer"]["epochs"] == 30
    assert config["model"]["layers"][2] == {"type": "Dropout", "p": 0.3}
    assert config["data"]["normalize"] == "scale"


@pytest.mark.parametrize("override, key, value", [
    ("optimizer.weight_decay=1e-4", ("optimizer", "weight_decay"), 1e-4),
    ("trainer.shuffle=false", ("trainer", "shuffle"), False),
    ("trainer.grad_clip=null", ("trainer", "grad_clip"), None),
    ("trainer.grad_clip=2", ("trainer", "grad_clip"), 2.0),
    ("trainer.metrics=[accuracy, f1]", ("trainer", "metrics"), ["accuracy", "f1"]),
    ("device='cuda:1'", ("device",), "cuda:1"),
    ("device=cuda:1", ("device",), "cuda:1"),
    ("model.layers[-1].out_features=10", ("model", "layers", 3, "out_features"), 10),
])
def test_values_are_read_as_yaml(tmp_path, override, key, value):
    config = load_config(write(tmp_path, BASE), [override])
    for part in key:
        config = config[part]
    assert config == value and type(config) is type(value)


def test_missing_sections_are_created(tmp_path):
    config = load_config(write(tmp_path, BASE), ["scheduler.name=step", "scheduler.step_size=3"])
    assert config["scheduler"] == {"name": "step", "step_size": 3, "gamma": 0.1, "interval": "epoch"}


def test_a_whole_mapping_can_be_given(tmp_path):
    config = load_config(write(tmp_path, BASE), ["optimizer={name: adam, lr: 0.01}"])
    assert config["optimizer"]["name"] == "adam" and config["optimizer"]["betas"] == [0.9, 0.999]


def test_later_overrides_win(tmp_path):
    assert load_config(write(tmp_path, BASE), ["trainer.epochs=2", "trainer.epochs=3"])["trainer"]["epochs"] == 3


def test_bad_value_names_the_override_not_the_file(tmp_path):
    _, problem = only_problem(tmp_path, BASE, ["optimizer.lr=-0.5"])
    assert problem == "override 'optimizer.lr=-0.5': optimizer.lr: out of range; got -0.5; allowed: a number >= 0"


def test_misspelt_override_key_gets_a_guess(tmp_path):
    _, problem = only_problem(tmp_path, BASE, ["trainer.epoch=30"])
    assert problem == ("override 'trainer.epoch=30': trainer.epoch: unknown key; allowed: epochs, batch_size, "
                       "eval_batch_size, shuffle, drop_last, log_every, grad_clip, sync_batchnorm, on_nonfinite, "
                       "metrics; did you mean 'epochs'?")


def test_override_changing_the_optimizer_exposes_keys_the_new_one_lacks(tmp_path):
    text = BASE.replace("  lr: 0.1\n", "  lr: 0.1\n  momentum: 0.9\n")
    path, problem = only_problem(tmp_path, text, ["optimizer.name=adam"])
    assert problem.startswith(f"{path}:{line_of(text, 'momentum')}: optimizer.momentum: unknown key; allowed: lr, "
                              "betas, eps, amsgrad, weight_decay")


def test_problems_of_the_file_and_of_overrides_come_together(tmp_path):
    text = BASE.replace("epochs: 5", "epochs: -5")
    path, found = problems(tmp_path, text, ["optimizer.lr=abc"])
    assert found == [
        "override 'optimizer.lr=abc': optimizer.lr: wrong type; got 'abc'; allowed: a number >= 0",
        f"{path}:{line_of(text, 'epochs')}: trainer.epochs: out of range; got -5; allowed: an integer >= 1",
    ]


@pytest.mark.parametrize("override, message", [
    ("optimizer.lr", "override 'optimizer.lr': <config>: an override needs the form key=value; allowed: key.path="
                     "value, e.g. optimizer.lr=0.05 or model.layers[1].p=0.3"),
    ("=3", "override '=3': <config>: an override needs the form key=value"),
    ("optimizer..lr=1", "override 'optimizer..lr=1': optimizer: malformed key 'optimizer..lr' in override"),
    ("model.layers[9].p=0.1", "override 'model.layers[9].p=0.1': model.layers[9]: index out of range: model.layers "
                              "has 4 item(s); allowed: an index from 0 to 3"),
    ("optimizer.lr.value=1", "override 'optimizer.lr.value=1': optimizer.lr: is not a mapping, so "
                             "optimizer.lr.value cannot be set; got 0.1"),
    ("trainer[0]=1", "override 'trainer[0]=1': trainer: is not a list, so trainer[0] cannot be set"),
    ("optimizer.lr=[1", "override 'optimizer.lr=[1': optimizer.lr: invalid YAML:"),
    ("optimizer.lr=!!python/name:os.system", "override 'optimizer.lr=!!python/name:os.system': optimizer.lr: YAML tag "
                                             "'tag:yaml.org,2002:python/name:os.system' is not allowed"),
])
def test_malformed_overrides(tmp_path, override, message):
    _, problem = only_problem(tmp_path, BASE, [override])
    assert problem.startswith(message)


def test_every_malformed_override_is_reported(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, BASE), ["a", "b"])
    assert [p.source for p in info.value.problems] == ["override 'a'", "override 'b'"]
