"""Model summary: shapes, parameter counts (hand-worked) and implementation per layer."""
import pytest

import gpunet
from gpunet import nn
from gpunet.train import summary


def test_sequential_rows_shapes_and_counts():
    model = nn.Sequential(nn.Linear(64, 50), nn.Sigmoid(), nn.Dropout(0.2), nn.Linear(50, 10))
    s = summary(model, (64,))
    assert [(r.name, r.type, r.output_shape, r.params) for r in s.rows] == [
        ("0", "Linear", "(None, 50)", 64 * 50 + 50), ("1", "Sigmoid", "(None, 50)", 0),
        ("2", "Dropout", "(None, 50)", 0), ("3", "Linear", "(None, 10)", 50 * 10 + 10)]
    assert s.total == s.trainable == 3760 and s.non_trainable == 0
    assert all(r.implementation == "NumPy" for r in s.rows)
    text = str(s)
    assert "0 (Linear)" in text and "3,250" in text and "Trainable params: 3,760" in text
    assert model.training  # the pass ran in eval mode and gave the mode back


def test_nested_custom_model_and_frozen_parameters():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.ReLU())
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.encoder(x))

    net = Net()
    net.head.requires_grad_(False)
    s = summary(net, (3, 4))
    assert [(r.name, r.output_shape) for r in s.rows] == [
        ("encoder.0", "(None, 12)"), ("encoder.1", "(None, 4)"), ("encoder.2", "(None, 4)"), ("head", "(None, 2)")]
    assert (s.trainable, s.non_trainable) == (12 * 4 + 4, 4 * 2 + 2)
    assert s.to_dict()["total_params"] == 62


def test_on_a_cuda_backend_layers_name_their_kernel_or_the_backend():
    gpunet.set_device("cuda-emu")
    try:
        model = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)).to("cuda-emu")
        rows = summary(model, (4,)).rows
    finally:
        gpunet.set_device("cpu")
    backend = gpunet.backend.get_backend("cuda-emu")
    assert rows[0].implementation == backend.implementation  # plain array ops
    where = backend.kernel_implementation("softmax")
    expected = f"CUDA kernel: softmax ({where})" if where.startswith("kernels/") else "CuPy reference: softmax"
    assert rows[1].implementation == expected


def test_a_failing_forward_pass_names_the_input_shape():
    with pytest.raises(ValueError, match=r"forward pass of Sequential on an input of shape \(None, 5\) failed"):
        summary(nn.Sequential(nn.Linear(4, 2)), (5,))
    with pytest.raises(ValueError, match="input_shape must be positive integers"):
        summary(nn.Linear(4, 2), (0,))
