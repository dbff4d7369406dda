"""F.dropout through the fused, mask-free dropout_apply (kernels/dropout.cu on cuda-emu): the output and the
gradient are the input and the upstream gradient times the (seed, offset) mask, exactly, on cpu and cuda-emu;
the op is twice differentiable."""
import numpy as np

import gpunet as gn
import gpunet.nn.functional as F
from gpunet import random as gn_random
from gpunet.backend import get_backend
from gpunet.ops.dropout import dropout
from gpunet.testing import gradcheck, gradgradcheck


def test_forward_and_backward_use_the_same_mask_exactly(device):
    cpu = get_backend("cpu")
    x = np.random.default_rng(0).standard_normal((3, 5, 7)).astype(np.float32)
    g = np.random.default_rng(1).standard_normal((3, 5, 7)).astype(np.float32)
    gn.manual_seed(11)
    seed = gn_random.next_seed()
    mask = cpu.dropout_mask(x.shape, 0.3, seed, 0, np.float32)
    gn.manual_seed(11)
    xt = gn.tensor(x, requires_grad=True)
    y = F.dropout(xt, 0.3)
    y.backward(gn.tensor(g))
    np.testing.assert_array_equal(y.numpy(), x * mask)
    np.testing.assert_array_equal(xt.grad.numpy(), g * mask)


def test_offset_selects_a_later_part_of_the_stream(device):
    x = gn.ones(10)
    whole = dropout(gn.ones(14), 0.5, seed=3).numpy()
    np.testing.assert_array_equal(dropout(x, 0.5, seed=3, offset=4).numpy(), whole[4:])


def test_gradcheck_and_gradgradcheck(device):
    x = gn.tensor(np.random.default_rng(2).standard_normal((4, 3)), requires_grad=True)
    fn = lambda t: dropout(t, 0.4, seed=5) * t  # noqa: E731  (nonlinear, so the second derivative is not 0)
    assert gradcheck(fn, (x,))
    assert gradgradcheck(fn, (x,))


def test_the_emulated_device_uses_the_kernel():
    assert get_backend("cuda-emu").kernel_implementation("dropout_apply") == "kernels/dropout.cu"
