"""The ``dbn`` task through the Trainer: the stages in order (RBM 1, RBM 2, then fine-tuning from the unrolled RBMs),
each RBM trained only in its epochs at its own learning rate, and exact resume in the middle of pre-training and of
fine-tuning."""
import numpy as np
import pytest

import gpunet as gn
from gpunet.data import DataLoader, load_dataset
from gpunet.train import Trainer
from gpunet.train.tasks import TASKS

from trainhelpers import Recorder, StopAfter, assert_same_weights, without_time

EPOCHS = 4


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", flatten=True, normalize="scale", test_split=0.2, validation_split=0.1, seed=0)


def make(digits, callbacks=(), seed=0, persistent=True, n=240):
    gn.manual_seed(seed)
    task = TASKS["dbn"](hidden=[16, 12], rbm_epochs=1, rbm_lr=0.1, persistent=persistent, dropout=0.2)
    model = task.build_model("model", digits.info)
    optimizer = gn.optim.SGD(task.param_groups("model", model), lr=0.1, momentum=0.5)
    trainer = Trainer(model, gn.nn.CrossEntropyLoss(), optimizer, task=task, metrics=("accuracy",),
                      callbacks=list(callbacks))
    train = DataLoader(type(digits.train)(digits.train.x[:n], digits.train.y[:n]), 24, shuffle=True, seed=0)
    return trainer, train, DataLoader(digits.validation, 64)


def test_stages_in_order_and_fine_tuning_starts_from_the_rbms(digits, device):
    recorder = Recorder()
    trainer, train, val = make(digits, callbacks=[recorder])
    history = trainer.fit(train, val, epochs=EPOCHS)
    assert history["pretraining_layer"] == [1, 2, 0, 0]
    assert history["train_recon_error"][:2] == [pytest.approx(e) for e in history["train_loss"][:2]]
    assert history["train_recon_error"][2:] == [None, None] and "val_accuracy" in history.epochs[0]
    w = recorder.weights
    # epoch 1 trains RBM 1 only; epoch 2 RBM 2 only; then the classifier holds the RBMs' weights and trains alone
    assert not np.array_equal(w[1]["rbms.0.weight"], trainer_initial(digits)["rbms.0.weight"])
    np.testing.assert_array_equal(w[1]["rbms.1.weight"], trainer_initial(digits)["rbms.1.weight"])
    np.testing.assert_array_equal(w[2]["rbms.0.weight"], w[1]["rbms.0.weight"])
    assert not np.array_equal(w[2]["rbms.1.weight"], w[1]["rbms.1.weight"])
    for layer, linear in ((0, 0), (1, 3)):
        np.testing.assert_array_equal(w[2][f"classifier.{linear}.weight"], w[2][f"rbms.{layer}.weight"])
        np.testing.assert_array_equal(w[2][f"classifier.{linear}.bias"], w[2][f"rbms.{layer}.h_bias"])
    np.testing.assert_array_equal(w[4]["rbms.1.weight"], w[2]["rbms.1.weight"])
    assert not np.array_equal(w[4]["classifier.0.weight"], w[2]["classifier.0.weight"])
    assert history["val_loss"][3] < history["val_loss"][2]  # fine-tuning learns


def trainer_initial(digits):
    trainer, _, _ = make(digits)
    return trainer.model.state_dict()


def test_rbms_step_at_rbm_lr_and_the_classifier_at_the_optimizers_lr(digits):
    trainer, _, _ = make(digits)
    groups = trainer.optimizer.param_groups
    assert [g["lr"] for g in groups] == [0.1, 0.1]
    task = TASKS["dbn"](hidden=[8], rbm_lr=0.05)
    model = task.build_model("model", digits.info)
    groups = gn.optim.SGD(task.param_groups("model", model), lr=0.3).param_groups
    assert [g["lr"] for g in groups] == [0.3, 0.05]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


@pytest.mark.parametrize("epoch, step", [(2, 4), (3, 6)], ids=["pretraining-rbm2", "fine-tuning"])
def test_resume_in_the_middle_of_a_stage_equals_the_uninterrupted_run(digits, tmp_path, epoch, step):
    uninterrupted, train, val = make(digits)
    uninterrupted.fit(train, val, epochs=EPOCHS)

    path = str(tmp_path / "mid.npz")
    crashed, train, val = make(digits, callbacks=[StopAfter(path, epoch=epoch, step=step)])
    with pytest.raises(KeyboardInterrupt):
        crashed.fit(train, val, epochs=EPOCHS)
    resumed, train, val = make(digits, seed=5)
    resumed.fit(train, val, epochs=EPOCHS, resume=path)
    assert_same_weights(resumed.model, uninterrupted.model)
    assert without_time(resumed.history.epochs) == without_time(uninterrupted.history.epochs)


def test_a_run_that_ends_before_fine_tuning_says_so(digits, capsys):
    trainer, train, val = make(digits)
    trainer.fit(train, val, epochs=2)
    assert capsys.readouterr().err.count("gpunet: dbn task: trainer.epochs (2) ends before fine-tuning, which "
                                        "starts after task.rbm_epochs (1) x 2 RBMs = epoch 2") == 1


def test_image_inputs_ask_for_flatten():
    data = load_dataset("digits", normalize="scale", seed=0)
    with pytest.raises(ValueError, match="dbn task: the inputs must be vectors.*data.flatten: true"):
        TASKS["dbn"]().build_model("model", data.info)


def test_the_recon_error_curve_shows_the_pretraining_epochs(tmp_path, recwarn):
    """recon_error is logged while the RBMs train only; its plot draws those epochs (not an empty axes)."""
    from gpunet.train.plots import plot_history

    epochs = [{"epoch": 1, "train_loss": 0.08, "train_recon_error": 0.08, "val_loss": 2.3},
              {"epoch": 2, "train_loss": 1.2, "train_recon_error": None, "val_loss": 1.0}]
    paths = plot_history(epochs, tmp_path)
    assert str(tmp_path / "recon_error.png") in paths
    assert not [w for w in recwarn if "No artists with labels" in str(w.message)]
