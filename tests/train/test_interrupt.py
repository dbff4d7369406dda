"""SIGINT and SIGTERM during ``Trainer.fit``: the step finishes, a mid-epoch checkpoint is written, and continuing
(in the same Trainer, or from the checkpoint) gives bitwise the run that was never interrupted (CPU)."""
import os
import signal

import pytest

import gpunet
from gpunet.train import ModelCheckpoint
from gpunet.train.checkpoint import load_checkpoint
from gpunet.train.interrupt import StopSignals, TrainingInterrupted, resume_command

from trainhelpers import assert_same_weights, make_trainer, without_time


class SignalAt(gpunet.nn.Module):
    """Passes its input through; in training mode sends ``signals`` to this process during the forward pass of
    global step ``step`` (counted from 1), so they arrive in the middle of that step."""

    def __init__(self, step=None, signals=()):
        super().__init__()
        self.step, self.signals, self.calls = step, list(signals), 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == self.step:
                for signum in self.signals:
                    os.kill(os.getpid(), signum)
        return x


def _trainer(xor, directory, step=None, signals=()):
    trainer, train, val = make_trainer(xor, [2, 8, 2], batch_size=16,
                                       callbacks=[ModelCheckpoint(directory, monitor="val_loss")])
    trainer.model.add_module("signal", SignalAt(step, signals))
    return trainer, train, val


@pytest.fixture(scope="module")
def straight(xor, tmp_path_factory):
    gpunet.set_device("cpu")  # a module fixture is made before the autouse function fixture that does this
    trainer, train, val = _trainer(xor, tmp_path_factory.mktemp("straight"))
    trainer.fit(train, val, epochs=4)
    return trainer


def _assert_same_run(trainer, straight):
    assert without_time(trainer.history) == without_time(straight.history)
    assert_same_weights(trainer.model, straight.model)
    assert trainer.global_step == straight.global_step


# xor: 144 training samples in batches of 16 -> 9 steps per epoch; steps 9 and 18 are the last of epochs 1 and 2,
# after which the epoch's evaluation and end are still to come
@pytest.mark.parametrize("signum, step", [(signal.SIGINT, 13), (signal.SIGTERM, 1), (signal.SIGTERM, 9),
                                          (signal.SIGINT, 18)])
def test_a_signal_mid_epoch_saves_and_both_ways_of_continuing_are_exact(xor, tmp_path, straight, signum, step,
                                                                        capsys):
    steps = 9
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    trainer, train, val = _trainer(xor, tmp_path / "ckpt", step, [signum])
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.fit(train, val, epochs=4)
    assert isinstance(stopped.value, KeyboardInterrupt) and not stopped.value.at_once
    assert stopped.value.exit_code == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum]
    epoch, done = divmod(step - 1, steps)
    assert stopped.value.where == f"step {done + 1} of {steps} of epoch {epoch + 1}"
    assert len(trainer.history) == epoch
    assert f"{signal.Signals(signum).name} received: finishing the current step" in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == previous
    saved = load_checkpoint(tmp_path / "ckpt" / "last.npz")
    assert (saved.epoch, saved.step) == (epoch, step)
    assert saved.extra["partial_epoch"]["collector"]["batches"] == done + 1
    # the epoch files and best.npz are end-of-epoch checkpoints only
    assert sorted(os.listdir(tmp_path / "ckpt")) == (["best.npz", "epoch-0001.npz", "last.npz"] if epoch else
                                                     ["last.npz"])

    trainer.fit(train, val, epochs=4)  # the same Trainer goes on
    _assert_same_run(trainer, straight)

    fresh, train, val = _trainer(xor, tmp_path / "again")
    fresh.fit(train, val, epochs=4, resume=str(tmp_path / "ckpt" / "last.npz"))
    _assert_same_run(fresh, straight)


def test_a_second_signal_stops_at_once_and_the_cut_off_trainer_must_be_restored_first(xor, tmp_path, straight):
    trainer, train, val = _trainer(xor, tmp_path / "ckpt", 13, [signal.SIGINT, signal.SIGINT])
    with pytest.raises(TrainingInterrupted) as stopped:
        trainer.fit(train, val, epochs=4)
    assert stopped.value.at_once and stopped.value.exit_code == 130
    assert "stopped at once by a second SIGINT" in str(stopped.value)
    # nothing was saved for step 13: last.npz is still the end of epoch 1
    assert load_checkpoint(tmp_path / "ckpt" / "last.npz").step == 9
    with pytest.raises(RuntimeError, match="cut off in the middle of a step.*restore a checkpoint first"):
        trainer.fit(train, val, epochs=4)
    with pytest.raises(RuntimeError, match="cut off in the middle"):
        trainer.checkpoint()
    trainer.fit(train, val, epochs=4, resume=str(tmp_path / "ckpt" / "last.npz"))
    _assert_same_run(trainer, straight)


def test_stop_signals_outside_the_main_thread_leave_the_handlers_alone():
    import threading

    seen = []
    before = signal.getsignal(signal.SIGINT)

    def body():
        with StopSignals():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [before]


def test_resume_command_adds_out_and_resume_only_when_missing():
    assert resume_command(["gpunet", "train", "a b.yaml", "x=1"], "runs/r 1", False, False) == \
        "gpunet train 'a b.yaml' x=1 --out 'runs/r 1' --resume"
    assert resume_command(["gpunet", "train", "c.yaml", "--out", "R", "--resume"], "R", True, True) == \
        "gpunet train c.yaml --out R --resume"


def test_signal_exit_codes_are_the_shells():
    assert TrainingInterrupted(signal.SIGINT).exit_code == 130
    assert TrainingInterrupted(signal.SIGTERM).exit_code == 143
