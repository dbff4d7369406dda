"""The gpunet command line: options and overrides in any order, --version, what --help imports, evaluating a
checkpoint with its run's own config, and user mistakes named (exit 1 or 2, never 3, no half-made run directory)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpunet.cli import build_parser
from gpunet.config import load_config
from test_cli import XOR, gpunet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "xor.yaml"
    path.write_text(XOR)
    return str(path)


# ----------------------------------------------------------------------------------------------- any order
@pytest.mark.parametrize("command, options, expected", [
    ("train", ["--out", "R", "--resume", "--no-progress"], {"out": "R", "resume": True, "no_progress": True}),
    ("evaluate", ["--checkpoint", "C.npz", "--split", "val"], {"checkpoint": "C.npz", "split": "val"}),
    ("summary", ["--input-shape", "1,8,8"], {"input_shape": "1,8,8"}),
    ("sweep", ["--grid", "optimizer.lr=0.1,0.2", "--out", "S", "--resume"],
     {"grid": ["optimizer.lr=0.1,0.2"], "out": "S", "resume": True}),
    ("warmup", [], {}),
])
@pytest.mark.parametrize("order", ["options_last", "options_first", "interleaved"])
def test_options_and_overrides_in_any_order(command, options, expected, order):
    overrides = ["optimizer.lr=0.05", "trainer.epochs=3"]
    if order == "options_last":
        argv = [command, "c.yaml", *overrides, *options]
    elif order == "options_first":
        argv = [command, *options, "c.yaml", *overrides]
    else:  # an override before, between and after the options
        argv = [command, "c.yaml", overrides[0], *options[:2], overrides[1], *options[2:]]
    args = build_parser().parse_args(argv)
    assert args.command == command and args.config == "c.yaml" and args.overrides == overrides
    for key, value in expected.items():
        assert getattr(args, key) == value


def test_info_takes_no_config_and_refuses_one(capsys):
    assert build_parser().parse_args(["info"]).command == "info"
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["info", "c.yaml"])
    assert stopped.value.code == 2 and "unrecognized arguments: c.yaml" in capsys.readouterr().err


def test_an_override_after_an_option_reaches_the_run(config, tmp_path, capsys):
    # the form docs/training.md shows: gpunet train CONFIG --out R trainer.epochs=4
    status, _, err = gpunet(capsys, "train", config, "--out", tmp_path / "r", "trainer.epochs=1", "--no-progress",
                            "optimizer.lr=0.1")
    assert status == 0, err
    resolved = load_config(tmp_path / "r" / "config.yaml")
    assert resolved["trainer"]["epochs"] == 1 and resolved["optimizer"]["lr"] == 0.1


def test_an_unknown_option_among_overrides_is_still_a_usage_error(config, capsys):
    status, _, err = gpunet(capsys, "summary", config, "optimizer.lr=0.1", "--bogus")
    assert status == 2 and "unrecognized arguments: --bogus" in err


# ----------------------------------------------------------------------------------------------- version, startup
def test_version(capsys):
    from gpunet import __version__

    assert gpunet(capsys, "--version")[:2] == (0, f"gpunet {__version__}\n")


def _imported_by(argv, tmp_path):
    """The heavy modules a fresh interpreter has imported after running ``gpunet argv``."""
    code = ("import sys\nfrom gpunet.cli import main\nstatus = main(sys.argv[1:])\nheavy = ('numpy', 'cupy', "
            "'sklearn', 'scipy', 'matplotlib', 'torch', 'pandas')\n"
            "print(status, [m for m in heavy if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "GPUNET_DEVICE": "cpu"}, timeout=120)
    status, modules = done.stdout.splitlines()[-1].split(" ", 1)
    return int(status), modules


def test_help_imports_nothing_heavy(tmp_path):
    assert _imported_by(["--help"], tmp_path) == (0, "[]")
    assert _imported_by(["train", "--help"], tmp_path) == (0, "[]")


def test_summary_of_the_digits_config_imports_neither_scikit_learn_nor_plotting(tmp_path):
    status, modules = _imported_by(["summary", str(ROOT / "configs" / "mlp_digits.yaml")], tmp_path)
    assert status == 0 and eval(modules) == ["numpy"]  # the CPU: no cupy either


# ----------------------------------------------------------------------------------------------- evaluate
@pytest.fixture
def trained(config, tmp_path, capsys):
    assert gpunet(capsys, "train", config, "trainer.epochs=2", "--out", tmp_path / "r", "--no-progress")[0] == 0
    return tmp_path / "r"


def test_evaluate_uses_the_runs_own_config_not_configs(trained, tmp_path, capsys):
    # CONFIG now says other splits, normalisation and model width: evaluate must still use the run's own
    other = tmp_path / "other.yaml"
    other.write_text(XOR.replace("noise: 0.1}", "noise: 0.3, seed: 5, val_split: 0.3, normalize: standard}")
                     .replace("out_features: 16", "out_features: 8").replace("in_features: 16", "in_features: 8"))
    summary = json.loads((trained / "summary.json").read_text())
    for split in ("test", "val", "train"):
        status, stdout, err = gpunet(capsys, "evaluate", other, "--checkpoint", trained / "checkpoints/last.npz",
                                     "--split", split)
        assert status == 0, err
        result = json.loads(stdout.splitlines()[-1])
        assert result[f"{split}_loss"] == summary[f"{split}_loss"]
        assert result[f"{split}_accuracy"] == summary[f"{split}_accuracy"]
        assert f"{other} is not read" in err


def test_evaluate_allows_overrides_that_change_neither_data_nor_model(trained, config, capsys):
    summary = json.loads((trained / "summary.json").read_text())
    status, stdout, err = gpunet(capsys, "evaluate", config, "trainer.eval_batch_size=7", "device=cpu",
                                 "--checkpoint", trained / "checkpoints/last.npz")
    assert status == 0, err
    result = json.loads(stdout.splitlines()[-1])
    assert result["test_accuracy"] == summary["test_accuracy"]
    assert result["test_loss"] == pytest.approx(summary["test_loss"], rel=1e-6)  # other batches: other sums


def test_evaluate_refuses_and_names_overrides_that_change_data_or_model(trained, config, capsys):
    status, stdout, err = gpunet(capsys, "evaluate", config, "--checkpoint", trained / "checkpoints/last.npz",
                                 "data.val_split=0.3", "model.layers[2].p=0.5")
    assert status == 1 and stdout == ""
    assert "data.val_split: 0.1 -> 0.3" in err and "model.layers[2].p: 0.1 -> 0.5" in err
    assert "only device, trainer.batch_size, trainer.eval_batch_size" in err


# ----------------------------------------------------------------------------------------------- user mistakes
def _no_run_left(tmp_path):
    return not (tmp_path / "run").exists()


@pytest.mark.parametrize("text, where", [
    ("seed: 0\x00\n", ":1: <config>: column 8 is the NUL '\\x00' (U+0000)"),
    ("seed: 0\ndevice: cpu\x1b[0m\n", ":2: <config>: column 12 is the ESC '\\x1b' (U+001B)"),
    ("seed: 0\n# a comment with a bell \x07\n", ":2: <config>: column 25 is the control character '\\x07'"),
])
def test_a_control_character_in_a_config_file_is_named(text, where, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(XOR + text)
    status, _, err = gpunet(capsys, "train", path, "--out", tmp_path / "run")
    line = int(where.split(":")[1]) + XOR.count("\n")
    assert status == 1, err
    assert f"{path}:{line}:" + where.split(":", 2)[2] in err and "delete it" in err
    assert _no_run_left(tmp_path)


@pytest.mark.parametrize("override, shown", [
    ("optimizer.lr=0.1\x01", "override 'optimizer.lr=0.1\\x01': <config>: character 17 is the control character "
                             "'\\x01' (U+0001)"),
    ("optimizer.na\x7fme=sgd", "override 'optimizer.na\\x7fme=sgd': <config>: character 13 is the DEL '\\x7f'"),
])
def test_a_control_character_in_an_override_is_named(override, shown, config, tmp_path, capsys):
    status, _, err = gpunet(capsys, "train", config, override, "--out", tmp_path / "run")
    assert status == 1 and shown in err and "internal error" not in err
    assert _no_run_left(tmp_path)


def test_drop_last_with_a_batch_larger_than_the_training_set(config, tmp_path, capsys):
    # xor: 200 samples, 20 % test, 10 % of the rest for validation: 144 training samples
    status, _, err = gpunet(capsys, "train", config, "trainer.drop_last=true", "trainer.batch_size=150", "--out",
                            tmp_path / "run")
    assert status == 1, err
    assert ("override 'trainer.batch_size=150': trainer.batch_size: with trainer.drop_last true, a batch of 150 is "
            "larger than the 144 training samples of xor") in err
    assert "trainer.batch_size at most 144, or trainer.drop_last false" in err
    assert _no_run_left(tmp_path)
    status, _, err = gpunet(capsys, "sweep", config, "trainer.drop_last=true", "--grid", "trainer.batch_size=16,150",
                            "--out", tmp_path / "run")
    assert status == 1 and "a batch of 150 is larger than the 144 training samples" in err
    assert _no_run_left(tmp_path)  # checked before the first cell trains


def test_the_largest_batch_that_fits_still_trains(config, tmp_path, capsys):
    status, _, err = gpunet(capsys, "train", config, "trainer.drop_last=true", "trainer.batch_size=144",
                            "trainer.epochs=1", "--out", tmp_path / "run", "--no-progress")
    assert status == 0, err


@pytest.mark.parametrize("data, message", [
    ("{name: csv, path: @binary}", "dataset 'csv': @binary is not a UTF-8 text CSV file"),
    ("{name: npz, path: @binary}", "dataset 'npz': @binary is not a NumPy .npz archive"),
    ("{name: csv, path: @tmp/none.csv}", "dataset 'csv': file not found: @tmp/none.csv"),
    ("{name: csv, path: @tmp}", "Is a directory: @tmp"),
    ("{name: idx, train_images: @binary, train_labels: @binary}", "IDX file @binary has a bad magic number"),
])
def test_a_wrong_data_file_is_named(data, message, config, tmp_path, capsys):
    binary = tmp_path / "photo.jpg"
    binary.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8)
    data, message = (s.replace("@binary", str(binary)).replace("@tmp", str(tmp_path)) for s in (data, message))
    status, _, err = gpunet(capsys, "train", config, f"data={data}", "--out", tmp_path / "run")
    assert status == 1 and message in err and "internal error" not in err, err
    assert _no_run_left(tmp_path)


@pytest.mark.parametrize("text, message", [
    ("seed: [1, 2\n", "invalid YAML"),
    (XOR.replace("epochs: 4", "epochs: four"), "trainer.epochs: wrong type"),
    (XOR.replace("seed: 0", "seed: {a: 1}"), "seed: wrong type"),
    ("- just\n- a list\n", "<config>"),
    ("", "<config>"),
])
def test_bad_config_files_are_named(text, message, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    status, _, err = gpunet(capsys, "train", path, "--out", tmp_path / "run")
    assert status == 1 and message in err and str(path) in err and "internal error" not in err, err
    assert _no_run_left(tmp_path)


def test_a_config_that_is_not_utf8_is_named(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_bytes(XOR.encode() + b"# \xff\xfe\n")
    status, _, err = gpunet(capsys, "summary", path)
    assert status == 1 and f"{path}" in err and "cannot read the config file" in err


def test_a_checkpoint_saved_from_python_is_evaluated_with_config(trained, config, tmp_path, capsys):
    from gpunet.train.checkpoint import load_checkpoint, save_checkpoint

    saved = load_checkpoint(trained / "checkpoints/last.npz")
    save_checkpoint(tmp_path / "bare.npz", type(saved)(model=saved.model))  # weights only, no config
    summary = json.loads((trained / "summary.json").read_text())
    status, stdout, err = gpunet(capsys, "evaluate", config, "trainer.epochs=2", "--checkpoint", tmp_path / "bare.npz")
    assert status == 0, err
    assert json.loads(stdout.splitlines()[-1])["test_loss"] == summary["test_loss"] and "is not read" not in err


def test_a_model_too_large_for_memory_is_named_not_an_internal_error(config, capsys):
    status, _, err = gpunet(capsys, "summary", config, "model.layers[0].out_features=100000000000",
                            "model.layers[3].in_features=100000000000")
    assert status == 1 and "error: out of memory: " in err and "trainer.batch_size" in err, err
    assert "internal error" not in err
