"""nn.Embedding and F.embedding against PyTorch on cpu and cuda-emu (kernels/embedding.cu): lookups, weight
gradients (repeated indices, padding_idx), init, state_dict, from_pretrained, gradcheck/gradgradcheck, errors."""
import numpy as np
import pytest
import torch

import gpunet as gn
import gpunet.nn.functional as F
from gpunet import nn
from gpunet.testing import gradcheck, gradgradcheck


@pytest.mark.parametrize("shape, padding_idx", [((6,), None), ((3, 5), 2), ((2, 3, 4), -1), ((1,), 0)])
def test_lookup_and_weight_gradient_match_torch(device, shape, padding_idx):
    rng = np.random.default_rng(len(shape))
    idx = rng.integers(0, 7, shape)
    idx.flat[0] = (padding_idx or 0) % 7  # the padding row is looked up at least once
    ours = nn.Embedding(7, 4, padding_idx=padding_idx)
    theirs = torch.nn.Embedding(7, 4, padding_idx=padding_idx)
    theirs.weight.data = torch.tensor(ours.weight.numpy())
    y, yt = ours(gn.tensor(idx)), theirs(torch.tensor(idx))
    np.testing.assert_array_equal(y.numpy(), yt.detach().numpy())
    g = rng.standard_normal(shape + (4,)).astype(np.float32)
    y.backward(gn.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad.numpy(), theirs.weight.grad.numpy(), rtol=1e-6, atol=1e-6)
    assert ours.weight.grad.device == gn.device(device)


def test_init_padding_row_and_state_dict(device):
    gn.manual_seed(0)
    m = nn.Embedding(2000, 8, padding_idx=5)
    w = m.weight.numpy()
    np.testing.assert_array_equal(w[5], 0)
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02  # N(0, 1), as PyTorch
    assert list(m.state_dict()) == list(torch.nn.Embedding(3, 2).state_dict()) == ["weight"]
    assert repr(m) == repr(torch.nn.Embedding(2000, 8, padding_idx=5))
    assert repr(nn.Embedding(3, 2)) == repr(torch.nn.Embedding(3, 2))


def test_from_pretrained_freezes_by_default(device):
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    frozen = nn.Embedding.from_pretrained(gn.tensor(table))
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen(gn.tensor([3, 0])).numpy(), table[[3, 0]])
    np.testing.assert_array_equal(F.embedding([[1], [2]], frozen.weight).numpy(), table[[[1], [2]]])  # array-like
    assert nn.Embedding.from_pretrained(table, freeze=False).weight.requires_grad


def test_functional_form_double_backward_matches_torch(device):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((5, 3))
    idx = np.array([[0, 4, 4], [2, 0, 1]])
    wt = torch.tensor(w, requires_grad=True)
    gt, = torch.autograd.grad((torch.nn.functional.embedding(torch.tensor(idx), wt, padding_idx=1) ** 2).sum(), wt,
                              create_graph=True)
    (gt ** 3).sum().backward()
    wg = gn.tensor(w, requires_grad=True)
    g, = gn.grad((F.embedding(gn.tensor(idx), wg, padding_idx=1) ** 2).sum(), wg, create_graph=True)
    (g ** 3).sum().backward()
    np.testing.assert_allclose(g.numpy(), gt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(wg.grad.numpy(), wt.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_gradcheck_and_gradgradcheck(device, padding_idx):
    w = gn.tensor(np.random.default_rng(4).standard_normal((4, 3)), requires_grad=True)
    idx = gn.tensor(np.array([[1, 2, 1], [3, 1, 0]]))
    fn = lambda w: F.embedding(idx, w, padding_idx) * 1.5  # noqa: E731
    if padding_idx is None:  # the padding row's gradient is 0 on purpose (as in PyTorch), not the derivative
        assert gradcheck(fn, (w,))
    assert gradgradcheck(fn, (w,))  # the second derivative is consistent with that first one


def test_the_emulated_device_uses_the_kernel():
    assert gn.backend.get_backend("cuda-emu").kernel_implementation("embedding_backward") == "kernels/embedding.cu"


def test_errors_name_the_problem():
    m = nn.Embedding(4, 2)
    with pytest.raises(IndexError, match=r"index 4 is out of range for a table of 4 rows"):
        m(gn.tensor([0, 4]))
    with pytest.raises(IndexError, match="index -1"):
        m(gn.tensor([-1]))
    with pytest.raises(TypeError, match="integer tensor"):
        m(gn.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="padding_idx must be within num_embeddings"):
        nn.Embedding(4, 2, padding_idx=4)
    with pytest.raises(NotImplementedError, match="max_norm"):
        nn.Embedding(4, 2, max_norm=1.0)
    with pytest.raises(ValueError, match="Embedding: embedding_dim must be an integer >= 1, got 0"):
        nn.Embedding(4, 0)


@pytest.mark.parametrize("device_name", ("cuda-emu", "cuda-emu:1"))
def test_on_a_cuda_device_neither_pass_waits_for_the_device_and_an_index_out_of_range_gives_nan_rows(device_name):
    """No host check of a CUDA tensor's indices and no bincount in the backward (CuPy's copies the indices' minimum
    and maximum to the host): the stand-in counts no transfer to the host. An out-of-range index gives a NaN row and
    adds to no gradient row; the rest equals the CPU's. cuda-emu:1 is not the current device here."""
    rng = np.random.default_rng(4)
    weight = rng.standard_normal((6, 3)).astype(np.float32)
    idx = np.array([[1, 5, 1], [0, 6, 3]])
    g = rng.standard_normal((2, 3, 3)).astype(np.float32)
    device = gn.backend.get_backend(device_name)
    table = gn.tensor(weight, device=device_name, requires_grad=True)
    before = device.host_syncs()
    y = F.embedding(gn.tensor(idx, device=device_name), table, padding_idx=3)
    y.backward(gn.tensor(g, device=device_name))
    assert device.host_syncs() == before
    good = idx != 6
    torch_weight = torch.tensor(weight, requires_grad=True)
    expected = torch.nn.functional.embedding(torch.tensor(idx[good]), torch_weight, padding_idx=3)
    expected.backward(torch.tensor(g[good]))
    out = y.numpy()
    assert np.isnan(out[~good]).all()
    np.testing.assert_array_equal(out[good], expected.detach().numpy())
    np.testing.assert_allclose(table.grad.numpy(), torch_weight.grad.numpy(), rtol=1e-6)


def test_csr_leaves_indices_out_of_range_out_of_every_row():
    from gpunet.backend.references.embedding import embedding_csr

    positions, offsets = embedding_csr(np, np.array([[2, -1], [5, 2]]), 4)
    np.testing.assert_array_equal(positions, [1, 0, 3, 2])
    np.testing.assert_array_equal(offsets, [1, 1, 1, 3, 3])  # row 2: positions[1:3] = 0, 3; -1 and 5 in no row
