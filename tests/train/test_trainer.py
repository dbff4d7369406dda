"""Trainer: learning on small problems, its numbers against independent references, exact resume and determinism."""
import numpy as np
import pytest

import gpunet
from gpunet import nn, optim
from gpunet.data import DataLoader, load_dataset
from gpunet.train import Callback, EarlyStopping, Trainer
from gpunet.train.checkpoint import load_checkpoint, save_checkpoint

from trainhelpers import StopAfter, assert_same_weights, make_trainer, mlp, without_time


def test_fit_on_xor_reduces_loss_and_learns(xor):
    trainer, train, val = make_trainer(xor, [2, 16, 2], lr=0.3, dropout=0.0, scheduler=False, batch_size=16)
    history = trainer.fit(train, val, epochs=30)
    losses = history["train_loss"]
    assert len(losses) == 30 and losses[-1] < 0.3 * losses[0]
    assert history["val_accuracy"][-1] >= 0.95


def test_fit_on_spirals_reduces_loss():
    spirals = load_dataset("spirals", n_samples=300, seed=0)
    trainer, train, val = make_trainer(spirals, [2, 32, 32, 2], lr=0.1, dropout=0.0, scheduler=False, batch_size=16)
    history = trainer.fit(train, val, epochs=40)
    assert history["train_loss"][-1] < 0.6 * history["train_loss"][0]
    assert history["train_accuracy"][-1] > 0.8


def test_fit_on_digits_reduces_loss_and_generalises(digits):
    trainer, train, val = make_trainer(digits, [64, 50, 10], lr=0.1, dropout=0.0, scheduler=False)
    history = trainer.fit(train, val, epochs=5)
    assert history["train_loss"][-1] < 0.3 * history["train_loss"][0]
    assert history["val_accuracy"][-1] > 0.9


def test_history_holds_one_record_per_epoch_with_the_documented_keys(xor):
    trainer, train, val = make_trainer(xor, [2, 8, 2], metrics=("accuracy", "f1"))
    history = trainer.fit(train, val, epochs=3)
    assert len(history) == 3
    assert [e["epoch"] for e in history] == [1, 2, 3]
    assert list(history.epochs[0]) == ["epoch", "train_loss", "train_accuracy", "train_f1", "val_loss",
                                       "val_accuracy", "val_f1", "lr", "time"]
    assert history["lr"] == [0.5, 0.5, 0.25]  # StepLR(step_size=2, gamma=0.5), the lr used during each epoch
    with pytest.raises(KeyError, match="no 'val_f2' in the history"):
        history["val_f2"]


def _float64_cross_entropy(logits, labels):
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(labels)), labels].mean())


def test_evaluate_matches_a_float64_reference(digits):
    trainer, train, val = make_trainer(digits, [64, 20, 10], dropout=0.3)
    trainer.fit(train, val, epochs=1)
    results = trainer.evaluate(DataLoader(digits.test, 50))  # 360 samples: batches of 50 and a last one of 10
    logits = trainer.predict(digits.test.x)
    assert results["loss"] == pytest.approx(_float64_cross_entropy(logits, digits.test.y), rel=1e-5)
    assert results["accuracy"] == np.mean(logits.argmax(axis=1) == digits.test.y)
    # evaluation runs without dropout: the same outputs twice
    np.testing.assert_array_equal(trainer.predict(digits.test.x), logits)


def test_predict_on_a_loader_equals_predict_on_the_array(digits):
    trainer, _, _ = make_trainer(digits, [64, 10, 10])
    by_array = trainer.predict(digits.test.x, batch_size=7)
    by_loader = trainer.predict(DataLoader(digits.test, 64))
    assert by_array.shape == (len(digits.test), 10)
    np.testing.assert_allclose(by_array, by_loader, rtol=1e-5, atol=1e-6)  # BLAS blocking varies with batch size


def test_train_metrics_are_the_running_figures_of_the_epoch(xor):
    """train_loss is the sample-weighted mean of the batch losses seen while training."""
    seen = []

    class BatchLosses(Callback):
        def on_batch_end(self, step, logs):
            seen.append(logs["loss"])

    trainer, train, _ = make_trainer(xor, [2, 8, 2], callbacks=[BatchLosses()], batch_size=50)  # 144 samples
    history = trainer.fit(train, None, epochs=1)
    sizes = [50, 50, 44]
    assert history["train_loss"][0] == pytest.approx(sum(l * n for l, n in zip(seen, sizes)) / 144, rel=1e-12)
    assert "val_loss" not in history.epochs[0]


def _run(dataset, epochs, callbacks=(), resume=None, **kwargs):
    trainer, train, val = make_trainer(dataset, [64, 24, 10], callbacks=callbacks, **kwargs)
    trainer.fit(train, val, epochs=epochs, resume=resume)
    return trainer


def test_two_identical_runs_give_identical_numbers(digits):
    a, b = _run(digits, 2), _run(digits, 2)
    assert without_time(a.history) == without_time(b.history)
    assert_same_weights(a.model, b.model)


def test_resume_after_epoch_k_ends_exactly_like_an_uninterrupted_run(digits, tmp_path):
    early = dict(monitor="val_loss", patience=50)
    straight = _run(digits, 4, [EarlyStopping(**early)])
    first = _run(digits, 2, [EarlyStopping(**early)])
    save_checkpoint(tmp_path / "k2.npz", first.checkpoint())
    stopper = EarlyStopping(**early)
    resumed = _run(digits, 4, [stopper], resume=str(tmp_path / "k2.npz"))
    assert without_time(resumed.history) == without_time(straight.history)
    assert_same_weights(resumed.model, straight.model)
    assert resumed.global_step == straight.global_step
    assert stopper.state_dict() == {**straight.callbacks[0].state_dict()}
    after_resumed = gpunet.rand(3).numpy()  # the RNG goes on where the uninterrupted run's goes on
    _run(digits, 4)
    np.testing.assert_array_equal(after_resumed, gpunet.rand(3).numpy())


def test_resume_from_the_middle_of_an_epoch_is_exact(digits, tmp_path):
    straight = _run(digits, 3)
    path = str(tmp_path / "mid.npz")
    with pytest.raises(KeyboardInterrupt):
        _run(digits, 3, [StopAfter(path, epoch=2, step=17)])
    assert load_checkpoint(path).extra["partial_epoch"]["collector"]["batches"] == 17
    resumed = _run(digits, 3, [StopAfter(path, epoch=99, step=0)], resume=path)
    assert without_time(resumed.history) == without_time(straight.history)
    assert_same_weights(resumed.model, straight.model)


def test_fit_continues_to_the_total_number_of_epochs(xor):
    trainer, train, val = make_trainer(xor, [2, 8, 2])
    trainer.fit(train, val, epochs=2)
    trainer.fit(train, val, epochs=3)
    assert [e["epoch"] for e in trainer.history] == [1, 2, 3]


def test_grad_clip_bounds_the_size_of_an_update(xor):
    gpunet.manual_seed(0)
    model = mlp([2, 8, 2])
    before = [p.numpy().copy() for p in model.parameters()]
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1.0), grad_clip=1e-3)
    trainer.fit(DataLoader(xor.train, 200), epochs=1)  # one step of plain SGD: the update is -lr * clipped grad
    step = np.sqrt(sum(((p.numpy() - b) ** 2).sum() for p, b in zip(model.parameters(), before)))
    assert step == pytest.approx(1e-3, rel=1e-3)


def test_step_interval_scheduler_steps_every_batch(xor):
    gpunet.manual_seed(0)
    model = mlp([2, 4, 2])
    optimizer = optim.SGD(model.parameters(), lr=1.0)
    scheduler = optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.5)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optimizer, scheduler, scheduler_interval="step")
    trainer.fit(DataLoader(xor.train, 50), epochs=2)  # 3 batches per epoch
    assert trainer.history["lr"] == [1.0, 0.125]
    assert optimizer.param_groups[0]["lr"] == 0.5 ** 6


def test_plateau_scheduler_is_stepped_with_the_monitored_value(xor):
    gpunet.manual_seed(0)
    model = mlp([2, 4, 2])
    optimizer = optim.SGD(model.parameters(), lr=1e-6)  # (almost) no learning: train_loss does not improve
    plateau = optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=0)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optimizer, plateau, scheduler_monitor="train_loss")
    trainer.fit(DataLoader(xor.train, 50), epochs=3)
    assert plateau.best == trainer.history["train_loss"][0]
    assert trainer.history["lr"] == [1e-6, 1e-6, 5e-7]
    with pytest.raises(ValueError, match="monitors 'val_accuracy', which is not logged"):
        Trainer(model, nn.CrossEntropyLoss(), optimizer, plateau, scheduler_monitor="val_accuracy").fit(
            DataLoader(xor.train, 50), epochs=1)


def test_binary_logits_with_bce_get_float_targets_and_a_zero_threshold(xor):
    gpunet.manual_seed(0)
    model = mlp([2, 16, 1])
    trainer = Trainer(model, nn.BCEWithLogitsLoss(), optim.SGD(model.parameters(), lr=0.5, momentum=0.9))
    history = trainer.fit(DataLoader(xor.train, 16, shuffle=True), DataLoader(xor.validation, 64), epochs=30)
    logits = trainer.predict(xor.validation.x)
    assert history["val_accuracy"][-1] == np.mean((logits[:, 0] > 0) == xor.validation.y)
    assert history["val_accuracy"][-1] >= 0.9


def test_regression_with_mse_and_float_targets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5], dtype=np.float32))[:, None]
    gpunet.manual_seed(0)
    model = nn.Linear(3, 1)
    trainer = Trainer(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), metrics=("mse", "mae"))
    history = trainer.fit(DataLoader((x, y), 16, shuffle=True), epochs=20)
    assert history["train_mse"][-1] < 1e-3
    results = trainer.evaluate(DataLoader((x, y), 64))
    assert results["mse"] == pytest.approx(np.mean((trainer.predict(x) - y) ** 2), rel=1e-5)


@pytest.mark.parametrize("call, error, message", [
    (lambda t, l: t.fit(l, epochs=0), ValueError, "epochs must be an integer >= 1"),
    (lambda t, l: t.fit([np.zeros((2, 2), np.float32)], epochs=1), TypeError, r"\(inputs, targets\) pairs"),
    (lambda t, l: t.fit([], epochs=1), ValueError, "yielded no batches"),
    (lambda t, l: Trainer(t.model, t.loss_fn, None).fit(l, epochs=1), ValueError, "has no optimizer"),
    (lambda t, l: Trainer(t.model, t.loss_fn, t.optimizer, callbacks=[object()]), TypeError, "Callback objects"),
    (lambda t, l: t.load_checkpoint(Trainer(mlp([2, 3, 2]), t.loss_fn, None).checkpoint()), Exception,
     "does not fit this model"),
])
def test_misuse_gives_clear_errors(xor, call, error, message):
    trainer, train, _ = make_trainer(xor, [2, 8, 2])
    with pytest.raises(error, match=message):
        call(trainer, train)


def test_train_on_batch_returns_the_batch_loss_and_takes_one_sgd_step():
    model = nn.Linear(3, 2)
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.5), metrics=())
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3)).astype(np.float32), np.array([0, 1, 1, 0])
    w, b = (p.numpy().astype(np.float64) for p in model.parameters())
    logits = x @ w.T + b  # float64 reference: softmax cross-entropy and its gradient
    logits -= logits.max(1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    loss = -np.log(probs[np.arange(4), y]).mean()
    grad = (probs - np.eye(2)[y]) / 4
    logs = trainer.train_on_batch(x, y)
    assert logs["loss"] == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(model.weight.numpy(), w - 0.5 * grad.T @ x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.bias.numpy(), b - 0.5 * grad.sum(0), rtol=1e-5, atol=1e-6)
