"""Checking a config: each kind of problem, with its file, line, key path, value, what is allowed and a guess."""
import pytest

from gpunet.config import LAYERS, loads_config

from confighelpers import BASE, edited, line_of, only_problem, problems


def test_misspelt_top_level_key_suggests_the_right_one(tmp_path):
    text = edited("optimizer:\n", "optimiser:\n")
    path, problem = only_problem(tmp_path, text)  # not also "optimizer: missing required key"
    line = line_of(text, "optimiser:")
    assert problem == (f"{path}:{line}: optimiser: unknown key; allowed: seed, device, allow_tf32, data, task, model, "
                       "models, loss, optimizer, optimizers, scheduler, trainer, callbacks, checkpoint, sweep; did you "
                       "mean 'optimizer'?")


def test_missing_required_section(tmp_path):
    text = BASE[:BASE.index("optimizer:")] + BASE[BASE.index("trainer:"):]
    path, problem = only_problem(tmp_path, text)
    assert problem == f"{path}:1: optimizer: missing required key; allowed: " \
        "a mapping with 'name' (one of sgd, adam, adamw, rmsprop, adagrad, adadelta) and that optimizer's settings"


def test_misspelt_nested_key(tmp_path):
    text = edited("  lr: 0.1\n", "  lr: 0.1\n  momentun: 0.9\n")
    path, problem = only_problem(tmp_path, text)
    assert problem == (f"{path}:{line_of(text, 'momentun')}: optimizer.momentun: unknown key; allowed: lr, momentum, "
                       "dampening, weight_decay, nesterov; did you mean 'momentum'?")


def test_misspelt_required_key_is_one_problem_not_two(tmp_path):
    text = edited("in_features: 50, out_features: 10}", "in_features: 50, out_feature: 10}")
    path, problem = only_problem(tmp_path, text)
    assert problem == (f"{path}:{line_of(text, 'out_feature:')}: model.layers[3].out_feature: unknown key; allowed: "
                       "in_features, out_features, bias; did you mean 'out_features'?")


def test_unknown_key_without_a_near_miss_has_no_guess(tmp_path):
    path, problem = only_problem(tmp_path, edited("  epochs: 5\n", "  epochs: 5\n  colour: red\n"))
    assert problem.endswith("trainer.colour: unknown key; allowed: epochs, batch_size, eval_batch_size, shuffle, "
                            "drop_last, log_every, grad_clip, on_nonfinite, metrics")


def test_key_of_a_layer_is_checked_against_that_layer(tmp_path):
    text = edited("{type: Dropout, p: 0.2}", "{type: Dropout, P: 0.2}")
    path, problem = only_problem(tmp_path, text)
    assert problem == (f"{path}:{line_of(text, 'Dropout')}: model.layers[2].P: unknown key; allowed: p; "
                       "did you mean 'p'?")


def test_layer_without_arguments_accepts_no_keys(tmp_path):
    path, problem = only_problem(tmp_path, edited("{type: Sigmoid}", "{type: Sigmoid, inplace: true}"))
    assert problem.endswith("model.layers[1].inplace: unknown key; allowed: no other keys")


@pytest.mark.parametrize("problem, old, new, key, shown, allowed", [
    ("wrong type", "epochs: 5", "epochs: five", "trainer.epochs", "'five'", "an integer >= 1"),
    ("wrong type", "epochs: 5", "epochs: 5.0", "trainer.epochs", "5.0", "an integer >= 1"),
    ("wrong type", "epochs: 5", "epochs: true", "trainer.epochs", "true", "an integer >= 1"),
    ("wrong type", "lr: 0.1", "lr: fast", "optimizer.lr", "'fast'", "a number >= 0"),
    ("wrong type", "flatten: true", "flatten: 1", "data.flatten", "1", "true or false"),
    ("wrong type", "device: cpu", "device: 0", "device", "0", "cpu, cuda, cuda:N, auto, cuda-emu or cuda-emu:N"),
    ("wrong type", "seed: 0", "seed: [1]", "seed", "[1]", "an integer >= 0"),
    ("out of range", "epochs: 5", "epochs: -3", "trainer.epochs", "-3", "an integer >= 1"),
    ("out of range", "epochs: 5", "epochs: 0", "trainer.epochs", "0", "an integer >= 1"),
    ("out of range", "batch_size: 10", "batch_size: 0", "trainer.batch_size", "0", "an integer >= 1"),
    ("out of range", "lr: 0.1", "lr: -0.01", "optimizer.lr", "-0.01", "a number >= 0"),
    ("out of range", "p: 0.2", "p: 1.0", "model.layers[2].p", "1.0", "a number in [0, 1)"),
    ("out of range", "p: 0.2", "p: -0.1", "model.layers[2].p", "-0.1", "a number in [0, 1)"),
    ("out of range", "seed: 0", "seed: -1", "seed", "-1", "an integer >= 0"),
    ("out of range", "out_features: 50}", "out_features: 0}", "model.layers[0].out_features", "0", "an integer >= 1"),
])
def test_wrong_type_or_out_of_range(tmp_path, problem, old, new, key, shown, allowed):
    text = edited(old, new)
    path, found = only_problem(tmp_path, text)
    assert found == f"{path}:{line_of(text, new)}: {key}: {problem}; got {shown}; allowed: {allowed}"


def test_negative_momentum(tmp_path):
    text = edited("  lr: 0.1\n", "  lr: 0.1\n  momentum: -0.5\n")
    path, problem = only_problem(tmp_path, text)
    assert problem == f"{path}:{line_of(text, 'momentum')}: optimizer.momentum: out of range; got -0.5; " \
                      "allowed: a number >= 0"


def test_infinite_learning_rate(tmp_path):
    path, problem = only_problem(tmp_path, edited("lr: 0.1", "lr: .inf"))
    assert problem.endswith("optimizer.lr: must be finite; got inf; allowed: a number >= 0")


def test_adam_betas_need_two_values_in_range(tmp_path):
    text = edited("  name: sgd\n  lr: 0.1\n", "  name: adam\n  betas: [0.9, 1.5]\n")
    path, problem = only_problem(tmp_path, text)
    assert problem == f"{path}:{line_of(text, 'betas')}: optimizer.betas[1]: out of range; got 1.5; " \
                      "allowed: a number in [0, 1)"
    path, problem = only_problem(tmp_path, edited("  name: sgd\n  lr: 0.1\n", "  name: adam\n  betas: [0.9]\n"))
    assert "optimizer.betas: wrong number of items (1); got [0.9]; allowed: a list of 2 (a number in [0, 1))" in problem


@pytest.mark.parametrize("old, new, key, shown, allowed, guess", [
    ("type: Sigmoid", "type: sigmoid", "model.layers[1].type", "'sigmoid'", "Linear, Flatten,", "Sigmoid"),
    ("type: Sigmoid", "type: Sigmod", "model.layers[1].type", "'Sigmod'", "Linear, Flatten,", "Sigmoid"),
    ("name: digits", "name: digit", "data.name", "'digit'", "digits, mnist5k, fashion_mnist, idx, npz, csv, xor, "
     "spirals", "digits"),
    ("name: sgd", "name: adamm", "optimizer.name", "'adamm'", "sgd, adam, adamw, rmsprop, adagrad, adadelta", "adam"),
    ("name: cross_entropy", "name: crossentropy", "loss.name", "'crossentropy'", "cross_entropy, nll, mse, l1, "
     "smooth_l1, huber, bce, bce_with_logits, kl_div", "cross_entropy"),
])
def test_unknown_names_list_the_known_ones_and_guess(tmp_path, old, new, key, shown, allowed, guess):
    text = edited(old, new)
    path, problem = only_problem(tmp_path, text)
    what = {"model": "layer", "data": "dataset", "optimizer": "optimizer", "loss": "loss"}[key.split(".")[0]]
    assert problem.startswith(f"{path}:{line_of(text, new)}: {key}: unknown {what}; got {shown}; allowed: {allowed}")
    assert problem.endswith(f"; did you mean '{guess}'?")


def test_unknown_name_far_from_all_has_no_guess(tmp_path):
    path, problem = only_problem(tmp_path, edited("name: sgd", "name: lbfgs"))
    assert "did you mean" not in problem and "optimizer.name: unknown optimizer; got 'lbfgs'" in problem


def test_missing_required_keys(tmp_path):
    text = edited("  epochs: 5\n", "")
    path, problem = only_problem(tmp_path, text)
    assert problem == f"{path}:{line_of(text, 'trainer:')}: trainer.epochs: missing required key; allowed: " \
                      "an integer >= 1"
    path, problem = only_problem(tmp_path, edited("{type: Linear, in_features: 50, out_features: 10}",
                                                  "{type: Linear, in_features: 50}"))
    assert problem.endswith("model.layers[3].out_features: missing required key; allowed: an integer >= 1")


def test_layer_without_type(tmp_path):
    path, problem = only_problem(tmp_path, edited("{type: Sigmoid}", "{kind: Sigmoid}"))
    allowed = ", ".join(LAYERS)  # every registered layer, in registration order
    assert allowed.startswith("Linear, Flatten, Identity, ReLU, Sigmoid, Tanh, Dropout, Softmax, LogSoftmax, "
                              "LeakyReLU, ELU, GELU, Softplus, PReLU, Hardtanh")
    assert problem.endswith(f"model.layers[1].type: missing required key; allowed: {allowed}")


def test_misspelt_name_key(tmp_path):
    text = edited("  name: sgd\n", "  nmae: sgd\n")
    path, problem = only_problem(tmp_path, text)
    assert problem == f"{path}:{line_of(text, 'nmae')}: optimizer.nmae: unknown key; the optimizer is chosen by " \
                      "'name'; allowed: name; did you mean 'name'?"


def test_all_problems_are_reported_together_in_file_order(tmp_path):
    text = (BASE.replace("device: cpu", "device: gpu").replace("p: 0.2", "p: 2")
            .replace("lr: 0.1", "lr: -1").replace("epochs: 5", "epochs: 0"))
    path, found = problems(tmp_path, text)
    assert found == [
        f"{path}:2: device: invalid value; got 'gpu'; allowed: cpu, cuda, cuda:N, auto, cuda-emu or cuda-emu:N",
        f"{path}:{line_of(text, 'p: 2')}: model.layers[2].p: out of range; got 2; allowed: a number in [0, 1)",
        f"{path}:{line_of(text, 'lr: -1')}: optimizer.lr: out of range; got -1; allowed: a number >= 0",
        f"{path}:{line_of(text, 'epochs: 0')}: trainer.epochs: out of range; got 0; allowed: an integer >= 1",
    ]


def test_error_message_lists_the_count_then_each_problem(tmp_path):
    from gpunet.config import ConfigError, load_config
    path = tmp_path / "run.yaml"
    path.write_text(BASE.replace("lr: 0.1", "lr: -1").replace("epochs: 5", "epochs: 0"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    lines = str(info.value).splitlines()
    assert lines[0] == "2 problems in the config:"
    assert lines[1].startswith(f"  {path}:") and "optimizer.lr" in lines[1] and "trainer.epochs" in lines[2]


# ------------------------------------------------------------------------------------- model forms and layer chains
def test_linear_in_features_must_match_the_layer_before(tmp_path):
    text = edited("{type: Linear, in_features: 50, out_features: 10}", "{type: Linear, in_features: 60, "
                  "out_features: 10}")
    path, problem = only_problem(tmp_path, text)
    assert problem == (f"{path}:{line_of(text, 'in_features: 60')}: model.layers[3].in_features: does not match the "
                       "50 features produced by model.layers[0] (Linear); got 60; allowed: 50")


def test_flatten_ends_the_feature_chain():
    text = edited("    - {type: Sigmoid}\n", "    - {type: Flatten}\n").replace("in_features: 50,", "in_features: 7,")
    assert loads_config(text)["model"]["layers"][3]["in_features"] == 7


def test_model_needs_exactly_one_form(tmp_path):
    text = edited("model:\n", "model:\n  arch: mlp\n")
    path, problem = only_problem(tmp_path, text)
    assert problem == f"{path}:{line_of(text, 'model:')}: model: give only one of layers, arch; allowed: " \
                      "a mapping with exactly one of: layers, arch, import"
    path, problem = only_problem(tmp_path, BASE.replace("  layers:", "  layer:"))
    assert problem.endswith("model.layers: missing required key; allowed: a mapping with exactly one of: layers, "
                            "arch, import; did you mean 'layers'?")


def test_arch_args_are_checked_against_the_arch(tmp_path):
    text = edited(BASE[BASE.index("  layers:"):BASE.index("loss:")],
                  "  arch: mlp\n  args: {in_features: 64, out_features: 10, hiden: [50], dropout: 1.2}\n")
    path, found = problems(tmp_path, text)
    line = line_of(text, "hiden")
    assert found == [
        f"{path}:{line}: model.args.hiden: unknown key; allowed: in_features, out_features, hidden, activation, "
        "dropout, output_activation; did you mean 'hidden'?",
        f"{path}:{line}: model.args.dropout: out of range; got 1.2; allowed: a number in [0, 1)",
    ]


def test_unknown_arch(tmp_path):
    text = edited(BASE[BASE.index("  layers:"):BASE.index("loss:")], "  arch: mpl\n")
    path, problem = only_problem(tmp_path, text)
    assert problem.endswith("model.arch: unknown architecture; got 'mpl'; allowed: mlp, lenet5, cifar_cnn, resnet; did you mean 'mlp'?")


def test_import_path_needs_module_and_class(tmp_path):
    text = edited(BASE[BASE.index("  layers:"):BASE.index("loss:")], "  import: mypackage.MyNet\n")
    path, problem = only_problem(tmp_path, text)
    assert problem.endswith("model.import: invalid value; got 'mypackage.MyNet'; allowed: 'package.module:ClassName'")


# ------------------------------------------------------------------------------------- rules across keys
def test_splits_must_leave_training_data(tmp_path):
    text = edited("  flatten: true\n", "  flatten: true\n  val_split: 0.5\n  test_split: 0.5\n")
    path, problem = only_problem(tmp_path, text)
    assert problem == f"{path}:{line_of(text, 'val_split')}: data.val_split: val_split + test_split must be below 1 " \
                      "to leave training data (test_split is 0.5); got 0.5; allowed: a number in [0, 0.5)"


def test_datasets_with_their_own_test_set_take_no_test_split(tmp_path):
    path, problem = only_problem(tmp_path, edited("  name: digits\n", "  name: fashion_mnist\n  test_split: 0.2\n"))
    assert "data.test_split: unknown key; allowed: path, val_split, stratify, normalize, flatten" in problem


def test_idx_needs_a_directory_or_the_training_files(tmp_path):
    path, problem = only_problem(tmp_path, edited("  name: digits\n", "  name: idx\n"))
    assert problem.endswith("data.path: give path (a directory of MNIST-named IDX files) or both train_images and "
                            "train_labels; got null; allowed: a file or directory path")


def test_nesterov_needs_momentum(tmp_path):
    text = edited("  lr: 0.1\n", "  lr: 0.1\n  nesterov: true\n")
    path, problem = only_problem(tmp_path, text)
    assert problem == f"{path}:{line_of(text, 'nesterov')}: optimizer.nesterov: needs momentum > 0 " \
                      "and dampening = 0 (momentum is 0, dampening 0); got true; allowed: false, or set momentum > 0 " \
                      "and dampening: 0"


def test_hardtanh_bounds_must_be_ordered(tmp_path):
    path, problem = only_problem(tmp_path, edited("{type: Sigmoid}", "{type: Hardtanh, min_val: 1, max_val: -1}"))
    assert problem.endswith("model.layers[1].max_val: must be greater than min_val (1); got -1.0; "
                            "allowed: a number > 1")


def test_monitor_must_be_a_logged_metric(tmp_path):
    text = BASE + "checkpoint:\n  monitor: val_acc\n"
    path, problem = only_problem(tmp_path, text)
    assert problem == f"{path}:{line_of(text, 'val_acc')}: checkpoint.monitor: not a logged metric; got 'val_acc'; " \
                      "allowed: train_loss, train_accuracy, val_loss, val_accuracy; did you mean 'val_accuracy'?"


def test_without_validation_split_there_are_no_val_metrics(tmp_path):
    text = edited("  flatten: true\n", "  flatten: true\n  val_split: 0\n") + \
        "callbacks:\n  - {type: early_stopping, monitor: val_loss}\n"
    path, problem = only_problem(tmp_path, text)
    assert problem.endswith("callbacks[0].monitor: not a logged metric (data.val_split is 0, so there are no val_ "
                            "metrics); got 'val_loss'; allowed: train_loss, train_accuracy; did you mean 'train_loss'?")


def test_accuracy_needs_a_classification_loss(tmp_path):
    text = edited("name: cross_entropy", "name: mse").replace("batch_size: 10", "batch_size: 10\n  metrics: [mae, "
                                                                                 "accuracy]")
    path, problem = only_problem(tmp_path, text)
    assert problem.endswith("trainer.metrics[1]: needs a classification loss (cross_entropy, nll, bce, "
                            "bce_with_logits); loss.name is 'mse'; got 'accuracy'; allowed: mse, rmse, mae")


def test_unknown_metric(tmp_path):
    path, problem = only_problem(tmp_path, edited("batch_size: 10", "batch_size: 10\n  metrics: [acuracy]"))
    assert problem.endswith("trainer.metrics[0]: unknown metric; got 'acuracy'; allowed: accuracy, precision, recall, "
                            "f1, mse, rmse, mae, confusion_matrix, top<k>_accuracy (e.g. top5_accuracy); "
                            "did you mean 'accuracy'?")


def test_two_checkpointers_may_not_share_a_directory(tmp_path):
    text = BASE + "callbacks:\n  - {type: model_checkpoint, monitor: val_accuracy}\n"
    path, problem = only_problem(tmp_path, text)
    assert problem.endswith("callbacks[0].dir: already used by checkpoint; two checkpointers would overwrite each "
                            "other's files; got 'checkpoints'; allowed: a different directory")


def test_unknown_callback_type(tmp_path):
    path, problem = only_problem(tmp_path, BASE + "callbacks:\n  - {type: earlystopping}\n")
    assert "callbacks[0].type: unknown callback; got 'earlystopping'; allowed: early_stopping," in problem
    assert problem.endswith("did you mean 'early_stopping'?")


def test_scheduler_requires_its_own_arguments(tmp_path):
    text = BASE + "scheduler:\n  name: step\n"
    path, problem = only_problem(tmp_path, text)
    assert problem == f"{path}:{line_of(text, 'scheduler:')}: scheduler.step_size: missing required key; " \
                      "allowed: an integer >= 1"


def test_sweep_values_are_checked_as_overrides(tmp_path):
    text = BASE + "sweep:\n  grid:\n    optimizer.lr: [0.1, -1]\n    trainer.epoch: [1]\n"
    path, found = problems(tmp_path, text)
    assert found == [
        f"{path}:{line_of(text, 'optimizer.lr:')}: sweep.grid.optimizer.lr[1]: as optimizer.lr: out of range; "
        "got -1; allowed: a number >= 0",
        f"{path}:{line_of(text, 'trainer.epoch:')}: sweep.grid.trainer.epoch[0]: as trainer.epoch: unknown key; "
        "allowed: epochs, batch_size, eval_batch_size, shuffle, drop_last, log_every, grad_clip, on_nonfinite, metrics; "
        "did you mean 'epochs'?",
    ]


# ------------------------------------------------------------------------------------- defaults decided from others
def test_monitor_and_mode_are_resolved():
    config = loads_config(BASE + "callbacks:\n  - {type: early_stopping, monitor: val_accuracy}\n"
                          "  - {type: reduce_lr_on_plateau}\n")
    assert (config["checkpoint"]["monitor"], config["checkpoint"]["mode"]) == ("val_loss", "min")
    assert (config["callbacks"][0]["monitor"], config["callbacks"][0]["mode"]) == ("val_accuracy", "max")
    assert (config["callbacks"][1]["monitor"], config["callbacks"][1]["mode"]) == ("val_loss", "min")


def test_monitor_falls_back_to_training_loss_without_validation():
    config = loads_config(edited("  flatten: true\n", "  flatten: true\n  val_split: 0.0\n"))
    assert config["checkpoint"]["monitor"] == "train_loss"


@pytest.mark.parametrize("loss, metrics", [("cross_entropy", ["accuracy"]), ("bce_with_logits", ["accuracy"]),
                                           ("mse", []), ("kl_div", [])])
def test_default_metrics_follow_the_loss(loss, metrics):
    assert loads_config(edited("name: cross_entropy", f"name: {loss}"))["trainer"]["metrics"] == metrics


def test_top_k_accuracy_is_a_metric_and_monitorable():
    config = loads_config(edited("batch_size: 10", "batch_size: 10\n  metrics: [accuracy, top3_accuracy]")
                          + "checkpoint: {monitor: val_top3_accuracy}\n")
    assert config["checkpoint"]["mode"] == "max"


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:1", "auto", "cuda-emu", "cuda-emu:1"])
def test_every_device_form_is_accepted(device):
    assert loads_config(edited("device: cpu", f"device: {device}"))["device"] == device


@pytest.mark.parametrize("device", ["cuda-emu:", "cuda-emu:x", "gpu:0", "cuda:-1"])
def test_malformed_device_indices_are_refused(tmp_path, device):
    path, problem = only_problem(tmp_path, edited("device: cpu", f"device: '{device}'"))
    assert problem.endswith(f"device: invalid value; got '{device}'; allowed: cpu, cuda, cuda:N, auto, cuda-emu or "
                            "cuda-emu:N")
