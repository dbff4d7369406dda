"""LayerNorm, GroupNorm, Dropout2d, causal Conv1d, DepthwiseSeparableConv2d and Upsample beyond the random-shape
comparison of ``test_layers_random_shapes``: PyTorch's state_dict keys and defaults, float32 values against
PyTorch, the causal and channel-dropout properties, and errors for bad input that name the layer and the rule."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gpunet as gn
import gpunet.nn.functional as F
from gpunet.backend.references import dropout as dropout_kernel


def _copy_from_torch(module, torch_module):
    module.load_state_dict({k: v.detach().numpy() for k, v in torch_module.state_dict().items()})
    return module


@pytest.mark.parametrize("make", [
    lambda nn: nn.LayerNorm(5), lambda nn: nn.LayerNorm([3, 5], elementwise_affine=False),
    lambda nn: nn.LayerNorm((3, 5), bias=False), lambda nn: nn.GroupNorm(2, 4),
    lambda nn: nn.GroupNorm(4, 4, affine=False),
], ids=["LayerNorm", "LayerNorm_no_affine", "LayerNorm_no_bias", "GroupNorm", "GroupNorm_no_affine"])
def test_normalization_state_dict_defaults_and_float32_values_match_pytorch(make, device):
    torch.manual_seed(0)
    ref, layer = make(torch.nn), make(gn.nn)
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    for key, value in ref.state_dict().items():  # weight 1 and bias 0 at the start, as PyTorch
        np.testing.assert_array_equal(layer.state_dict()[key], value.numpy())
    for p in ref.parameters():  # then random parameters, loaded from PyTorch's state_dict
        p.data.normal_()
    _copy_from_torch(layer, ref)
    x = np.random.default_rng(1).normal(2.0, 3.0, (2, 4, 3, 5)).astype(np.float32)
    expected = ref(torch.tensor(x)).detach().numpy()
    for mode in (layer.train, layer.eval):  # no running statistics: the same in training and eval
        mode()
        np.testing.assert_allclose(layer(gn.tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_layer_norm_worked_example():
    # one row (1, 2, 3, 4): mean 2.5, biased variance 1.25; eps 0 is not allowed, so take eps = 0.75 -> var + eps = 2
    y = F.layer_norm(gn.tensor([[1.0, 2.0, 3.0, 4.0]], dtype=gn.float64), (4,), eps=0.75)
    np.testing.assert_allclose(y.numpy(), [[-1.5, -0.5, 0.5, 1.5]] / np.sqrt(2.0), rtol=1e-15)


def test_group_norm_with_one_group_per_channel_is_instance_norm():
    x = np.random.default_rng(2).normal(size=(3, 4, 5, 6))
    expected = torch.nn.functional.instance_norm(torch.tensor(x)).numpy()
    y = F.group_norm(gn.tensor(x, dtype=gn.float64), 4)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("build, shape, message", [
    (lambda: gn.nn.LayerNorm((4, 5)), (2, 5, 4), r"LayerNorm\(\(4, 5\), .*\): input of shape \(2, 5, 4\) does not end "
                                                r"in normalized_shape \(4, 5\)"),
    (lambda: gn.nn.LayerNorm(3), (3, 1), r"LayerNorm\(\(3,\).*input of shape \(3, 1\) does not end in normalized_shape"),
    (lambda: gn.nn.GroupNorm(2, 4), (2, 6, 3), r"GroupNorm\(2, 4, .*\): expected an input \(N, 4, ...\) with 4 channels in "
                                               r"dimension 1, got shape \(2, 6, 3\)"),
    (lambda: gn.nn.GroupNorm(2, 4), (4,), r"GroupNorm\(2, 4.*got shape \(4,\)"),
])
def test_normalization_bad_input_names_the_layer_shape_and_rule(build, shape, message):
    with pytest.raises(ValueError, match=message):
        build()(gn.randn(*shape))


@pytest.mark.parametrize("build, message", [
    (lambda: gn.nn.LayerNorm(0), r"LayerNorm: normalized_shape must be an integer >= 1 or a list of \(an integer >= 1\) with at least 1 item"),
    (lambda: gn.nn.LayerNorm([]), r"LayerNorm: normalized_shape must be"),
    (lambda: gn.nn.LayerNorm(3, eps=0), r"LayerNorm: eps must be a number > 0, got 0"),
    (lambda: gn.nn.GroupNorm(3, 4), r"GroupNorm: num_groups must divide num_channels \(4\), got 3"),
    (lambda: gn.nn.GroupNorm(0, 4), r"GroupNorm: num_groups must be an integer >= 1, got 0"),
    (lambda: F.group_norm(gn.randn(2, 6), 4), r"group_norm: the input of shape \(2, 6\) has 6 channels .* divisible by "
                                              r"num_groups = 4"),
])
def test_normalization_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# ----- Dropout2d --------------------------------------------------------------------------------------------------
def test_dropout2d_drops_whole_channels_with_the_counter_based_mask(device):
    gn.manual_seed(5)
    seed = gn.random.next_seed()  # what the layer will draw
    gn.manual_seed(5)
    x = gn.tensor(np.random.default_rng(3).uniform(1, 2, (8, 16, 3, 4)), dtype=gn.float64, requires_grad=True)
    y = gn.nn.Dropout2d(0.25)(x)
    words = dropout_kernel.random_words(np, 8 * 16, seed, 0).reshape(8, 16)
    keep = (words >= round(0.25 * 2**32))[:, :, None, None]
    np.testing.assert_allclose(y.numpy(), np.where(keep, x.numpy() / 0.75, 0.0), rtol=1e-15)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.broadcast_to(np.where(keep, 1 / 0.75, 0.0), x.shape), rtol=1e-15)
    assert 0 < (~keep).sum() < keep.size  # some channels dropped, some kept


def test_dropout2d_masks_agree_across_devices_and_eval_is_identity():
    x = np.random.default_rng(4).normal(size=(4, 6, 2, 2)).astype(np.float32)
    outs = []
    for device in ("cpu", "cuda-emu"):
        gn.manual_seed(11)
        outs.append(gn.nn.Dropout2d(0.5)(gn.tensor(x, device=device)).numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    layer = gn.nn.Dropout2d(0.5).eval()
    np.testing.assert_array_equal(layer(gn.tensor(x)).numpy(), x)


def test_dropout2d_bad_input():
    with pytest.raises(ValueError, match=r"Dropout2d: p must be a number in \[0, 1\), got 1.5"):
        gn.nn.Dropout2d(1.5)
    with pytest.raises(ValueError, match=r"dropout2d: expected a 4-D input \(N, C, H, W\).*got shape \(3, 4\)"):
        gn.nn.Dropout2d()(gn.randn(3, 4))
    with pytest.warns(UserWarning, match="3-D input"):
        gn.nn.Dropout2d()(gn.randn(2, 3, 4))


# ----- causal Conv1d ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel_size, dilation", [(1, 1), (3, 1), (3, 2), (2, 4)])
def test_causal_conv1d_output_t_depends_only_on_inputs_up_to_t(kernel_size, dilation, device):
    gn.manual_seed(0)
    conv = gn.nn.Conv1d(2, 3, kernel_size, dilation=dilation, padding="causal").double()
    x = np.random.default_rng(5).normal(size=(2, 2, 12))
    y = conv(gn.tensor(x, dtype=gn.float64)).numpy()
    assert y.shape == (2, 3, 12)
    for t in range(12):
        changed = x.copy()
        changed[:, :, t + 1:] = np.random.default_rng(t).normal(size=changed[:, :, t + 1:].shape)
        changed_y = conv(gn.tensor(changed, dtype=gn.float64)).numpy()
        np.testing.assert_array_equal(changed_y[:, :, :t + 1], y[:, :, :t + 1])
    # and output t does see input t - dilation * (kernel_size - 1), the oldest in its window
    reach = dilation * (kernel_size - 1)
    x = gn.tensor(np.zeros((1, 2, 12)), dtype=gn.float64, requires_grad=True)
    conv(x)[0, :, 11].sum().backward()
    touched = np.nonzero(np.abs(x.grad.numpy()[0]).sum(axis=0))[0]
    assert touched.min() == 11 - reach and touched.max() == 11


def test_causal_padding_errors_name_the_layer_and_rule():
    with pytest.raises(ValueError, match=r"Conv1d: padding='causal' is not supported for strided convolutions"):
        gn.nn.Conv1d(1, 1, 3, stride=2, padding="causal")
    with pytest.raises(ValueError, match=r"Conv2d: padding must be .* or one of 'same', 'valid', got 'causal'"):
        gn.nn.Conv2d(1, 1, 3, padding="causal")
    with pytest.raises(ValueError, match=r"Conv1d: padding must be an integer >= 0 or a list of 1 \(an integer >= 0\) "
                                         r"or one of 'same', 'valid', 'causal', got 'left'"):
        gn.nn.Conv1d(1, 1, 3, padding="left")
    assert "padding=causal" in repr(gn.nn.Conv1d(1, 1, 3, padding="causal"))


# ----- DepthwiseSeparableConv2d -----------------------------------------------------------------------------------
def test_depthwise_separable_layout_and_parameter_count():
    layer = gn.nn.DepthwiseSeparableConv2d(8, 16, 3, padding=1, depth_multiplier=2)
    shapes = {k: v.shape for k, v in layer.state_dict().items()}
    assert shapes == {"depthwise.weight": (16, 1, 3, 3), "pointwise.weight": (16, 16, 1, 1), "pointwise.bias": (16,)}
    assert sum(p.numel() for p in layer.parameters()) == 16 * 9 + 16 * 16 + 16
    assert layer(gn.randn(2, 8, 7, 7)).shape == (2, 16, 7, 7)


def test_depthwise_separable_bad_input_names_the_layer():
    layer = gn.nn.DepthwiseSeparableConv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 3, kernel_size=\(3, 3\).*groups=3.*input of shape \(2, 4, 8, 8\) "
                                         r"has 4 channels"):
        layer(gn.randn(2, 4, 8, 8))
    with pytest.raises(ValueError, match=r"padded input \(2x2\) of input \(1, 3, 2, 2\) is smaller than the dilated "
                                         r"kernel \(3x3\)"):
        layer(gn.randn(1, 3, 2, 2))
    with pytest.raises(ValueError, match="DepthwiseSeparableConv2d: depth_multiplier must be an integer >= 1, got 0"):
        gn.nn.DepthwiseSeparableConv2d(3, 4, 3, depth_multiplier=0)


# ----- Upsample / interpolate -------------------------------------------------------------------------------------
def test_upsample_float32_and_worked_values(device):
    x = gn.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    np.testing.assert_array_equal(gn.nn.Upsample(scale_factor=2)(x).numpy()[0, 0],
                                  [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    # align_corners: the corners stay, the middle is the mean of all four
    y = gn.nn.Upsample(size=3, mode="bilinear", align_corners=True)(x).numpy()[0, 0]
    np.testing.assert_allclose(y, [[1, 1.5, 2], [2, 2.5, 3], [3, 3.5, 4]], rtol=1e-7)
    big = np.random.default_rng(6).normal(size=(2, 3, 7, 9)).astype(np.float32)
    for kw in (dict(scale_factor=2.5, mode="bilinear"), dict(size=(4, 13), mode="nearest"),
               dict(scale_factor=(1.5, 0.5), mode="nearest-exact")):
        expected = torch.nn.functional.interpolate(torch.tensor(big), **kw).numpy()
        np.testing.assert_allclose(gn.nn.Upsample(**kw)(gn.tensor(big)).numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kwargs, shape, message", [
    (dict(scale_factor=2, mode="bilinear"), (1, 2, 5), r"mode 'bilinear' needs a 4-D \(N, C, H, W\) input, got shape "
                                                       r"\(1, 2, 5\)"),
    (dict(scale_factor=2, mode="linear"), (1, 2, 5, 5), r"mode 'linear' needs a 3-D \(N, C, L\) input"),
    (dict(scale_factor=2, mode="bicubic"), (1, 2, 5, 5), r"mode 'bicubic' is not supported by gpunet"),
    (dict(scale_factor=2, align_corners=True), (1, 2, 5, 5), r"align_corners can only be set with .* not 'nearest'"),
    (dict(), (1, 2, 5, 5), r"give exactly one of size and scale_factor"),
    (dict(size=(3, 0)), (1, 2, 5, 5), r"size must be a positive int"),
    (dict(size=(3, 3, 3)), (1, 2, 5, 5), r"size must be a positive int .* sequence of 2"),
    (dict(scale_factor=0.1), (1, 2, 5, 5), r"scale_factor 0.1 makes input \(1, 2, 5, 5\) empty"),
])
def test_interpolate_bad_input(kwargs, shape, message):
    """Upsample refuses at construction what its arguments' kinds and rules refuse, the rest at its first forward;
    interpolate refuses all of it when called."""
    refused = UPSAMPLE_REFUSES.get(message)
    if refused is not None:
        with pytest.raises(ValueError, match=r"^Upsample: " + refused):
            gn.nn.Upsample(**kwargs)
    else:
        layer = gn.nn.Upsample(**kwargs)
        with pytest.raises(ValueError, match=r"^Upsample\(.*\): " + message):
            layer(gn.randn(*shape))
    with pytest.raises(ValueError, match=r"^interpolate: " + message):
        F.interpolate(gn.randn(*shape), **kwargs)


UPSAMPLE_REFUSES = {  # interpolate's message -> Upsample's, when the layer is built
    r"mode 'bicubic' is not supported by gpunet": r"mode must be one of 'nearest', 'nearest-exact', 'linear', "
                                                  r"'bilinear', got 'bicubic'",
    r"align_corners can only be set with .* not 'nearest'": r"align_corners only applies to the linear and bilinear "
                                                            r"modes, not 'nearest', got True",
    r"size must be a positive int": r"size must be None or an integer >= 1 or a list of \(an integer >= 1\) with "
                                    r"at least 1 item\(s\), got \(3, 0\)",
}


LAYER_NORM_KERNELS = (["layer_norm_forward_f32"], ["layer_norm_backward_f32", "layer_norm_param_grad_f32"])


@pytest.mark.parametrize("make, shape, kernels", [
    (lambda nn: nn.LayerNorm(24), (6, 24), LAYER_NORM_KERNELS),
    (lambda nn: nn.LayerNorm((3, 8)), (2, 5, 3, 8), LAYER_NORM_KERNELS),
    (lambda nn: nn.LayerNorm(40, bias=False), (3, 7, 40), LAYER_NORM_KERNELS),
    (lambda nn: nn.LayerNorm(1100, elementwise_affine=False), (3, 1100), LAYER_NORM_KERNELS),  # wide rows
    (lambda nn: nn.GroupNorm(2, 6), (3, 6, 4, 4), (["batch_norm_stats_f32"], None)),
], ids=["LayerNorm", "LayerNorm_2d", "LayerNorm_no_bias", "LayerNorm_wide_no_affine", "GroupNorm"])
def test_normalization_runs_the_cuda_kernels_on_the_emulated_device(make, shape, kernels, launched_kernels):
    """float32 through the CUDA backend (emulated): LayerNorm forward and backward are its fused kernels, GroupNorm
    takes its statistics from batch_norm_stats; values and gradients equal PyTorch's."""
    torch.manual_seed(0)
    ref = make(torch.nn)
    for p in ref.parameters():
        p.data.normal_()
    layer = _copy_from_torch(make(gn.nn).to("cuda-emu"), ref)
    x = np.random.default_rng(7).normal(1.0, 2.0, shape).astype(np.float32)
    gx = gn.tensor(x, device="cuda-emu", requires_grad=True)
    y = layer(gx)
    assert launched_kernels == kernels[0]
    tx = torch.tensor(x, requires_grad=True)
    ty = ref(tx)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    if kernels[1] is None:
        return
    gy = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
    launched_kernels.clear()
    y.backward(gn.tensor(gy, device="cuda-emu"))
    assert launched_kernels == kernels[1]
    ty.backward(torch.tensor(gy))
    np.testing.assert_allclose(gx.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-4)
    for ours, theirs in zip(layer.parameters(), ref.parameters()):
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-4, atol=1e-4)
