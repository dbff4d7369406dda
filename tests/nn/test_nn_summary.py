"""Module.summary: the Keras-style layer table printed and returned by every model, checked against hand-worked
counts and against PyTorch's layer-by-layer output shapes and weight counts."""
import subprocess
import sys

import numpy
import pytest
import torch

from gpunet import nn


def digits_mlp():
    return nn.Sequential(nn.Linear(64, 50), nn.Sigmoid(), nn.Linear(50, 10))


def table_rows(text):
    """(name, type, output shape, params, implementation) of each printed layer line."""
    rows = []
    for line in text.splitlines():
        if line[:1].isdigit():
            parts = line.split()
            rows.append((parts[0], parts[1].strip("()"), " ".join(parts[2:-2]), parts[-2], parts[-1]))
    return rows


def test_digits_mlp_prints_its_rows_and_returns_the_table(capsys):
    model = digits_mlp()
    result = model.summary((64,))
    printed = capsys.readouterr().out
    assert printed == str(result) + "\n"
    # 64*50 + 50 = 3,250; Sigmoid 0; 50*10 + 10 = 510; total 3,760
    assert table_rows(printed) == [("0", "Linear", "(None, 50)", "3,250", "NumPy"),
                                   ("1", "Sigmoid", "(None, 50)", "0", "NumPy"),
                                   ("2", "Linear", "(None, 10)", "510", "NumPy")]
    assert printed.splitlines()[-3:] == ["Total params: 3,760", "Trainable params: 3,760", "Non-trainable params: 0"]
    assert [(r.name, r.params) for r in result.rows] == [("0", 3250), ("1", 0), ("2", 510)]
    assert (result.total, result.trainable, result.non_trainable) == (3760, 3760, 0)
    assert result.to_dict()["layers"][2] == {"name": "2", "type": "Linear", "output_shape": "(None, 10)",
                                             "params": 510, "implementation": "NumPy"}


def test_print_fn_receives_the_table_and_none_prints_nothing(capsys):
    model = digits_mlp()
    lines = []
    result = model.summary(64, print_fn=lines.append)
    assert lines == [str(result)] and capsys.readouterr().out == ""
    assert model.summary((64,), print_fn=None).total == 3760 and capsys.readouterr().out == ""


def test_batch_size_runs_that_batch_and_shows_it():
    result = digits_mlp().summary((64,), batch_size=32, print_fn=None)
    assert [r.output_shape for r in result.rows] == ["(32, 50)", "(32, 50)", "(32, 10)"]
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer or None.*got 0"):
        digits_mlp().summary((64,), batch_size=0, print_fn=None)
    with pytest.raises(ValueError, match=r"forward pass of Sequential on an input of shape \(8, 63\) failed"):
        digits_mlp().summary((63,), batch_size=8, print_fn=None)


def test_frozen_layer_and_batchnorm_running_stats_are_non_trainable():
    model = nn.Sequential(nn.Linear(8, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    model[0].requires_grad_(False)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    result = model.summary((8,), print_fn=None)
    # Linear 8*6+6 = 54 (frozen); BatchNorm weight+bias 12 trainable, running mean+var 12 not (num_batches_tracked,
    # an integer counter, is not a weight); Linear 6*3+3 = 21
    assert [(r.type, r.params) for r in result.rows] == [("Linear", 54), ("BatchNorm1d", 24), ("ReLU", 0),
                                                           ("Linear", 21)]
    assert (result.trainable, result.non_trainable, result.total) == (12 + 21, 54 + 12, 99)
    text = str(result)
    assert "Trainable params: 33" in text and "Non-trainable params: 66" in text
    # the same split in PyTorch: parameters with requires_grad, the rest plus floating-point buffers
    ref = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    ref[0].requires_grad_(False)
    trainable = sum(p.numel() for p in ref.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in ref.parameters() if not p.requires_grad)
    stats = sum(b.numel() for b in ref.buffers() if b.is_floating_point())
    assert (result.trainable, result.non_trainable) == (trainable, frozen + stats)
    # the pass ran in eval mode: the running statistics and the counter did not move, and training mode is back
    after = model.state_dict()
    assert all(numpy.array_equal(before[k], after[k]) for k in before) and model.training


def test_cnn_shapes_and_counts_match_pytorch_layer_by_layer():
    layers = lambda m: [m.Conv2d(1, 4, 3, padding=1), m.BatchNorm2d(4), m.ReLU(), m.MaxPool2d(2),
                        m.Conv2d(4, 6, 3, stride=2), m.Flatten(), m.Linear(6, 10)]
    model, ref = nn.Sequential(*layers(nn)), torch.nn.Sequential(*layers(torch.nn))
    result = model.summary((1, 8, 8), print_fn=None)
    shapes, x = [], torch.zeros(1, 1, 8, 8)
    for layer in ref.eval():
        x = layer(x)
        shapes.append("(None, " + ", ".join(map(str, x.shape[1:])) + ")")
    counts = [sum(p.numel() for p in layer.parameters())
              + sum(b.numel() for b in layer.buffers() if b.is_floating_point()) for layer in ref]
    assert [r.output_shape for r in result.rows] == shapes
    assert shapes == ["(None, 4, 8, 8)", "(None, 4, 8, 8)", "(None, 4, 8, 8)", "(None, 4, 4, 4)", "(None, 6, 1, 1)",
                      "(None, 6)", "(None, 10)"]
    assert [r.params for r in result.rows] == counts == [40, 16, 0, 0, 222, 0, 70]
    assert (result.trainable, result.non_trainable) == (40 + 8 + 222 + 70, 8)


def test_train_summary_is_the_same_function():
    from gpunet.nn.summary import ModelSummary, summary
    from gpunet.train import ModelSummary as train_model_summary, summary as train_summary
    from gpunet.train.summary import summary as module_path_summary  # the module path gpunet summary used

    assert train_summary is module_path_summary is summary and train_model_summary is ModelSummary


def test_summary_needs_nothing_from_the_training_package():
    code = ("import sys; from gpunet import nn; nn.Sequential(nn.Linear(4, 2)).summary((4,), print_fn=None); "
            "print(sorted(m for m in sys.modules if m.startswith('gpunet.train')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

