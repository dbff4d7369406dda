"""kernels/embedding.cu on the CUDA emulator: the gather over a CSR of positions against a float64 NumPy
reference and bit for bit against the float32 reference (numpy.add.at sums in the same order); outputs
NaN-filled before launch; odd sizes, rows nobody hits, a padding row, AddressSanitizer."""

import numpy as np
import pytest

from gpunet.backend.references import embedding as ref
from gpunet.backend import emulated as ce
from gpunet.testing.nvrtc import KERNELS_DIR

EMBEDDING = KERNELS_DIR / "embedding.cu"


@pytest.fixture(scope="module")
def mod():
    return ce.load(EMBEDDING)


def launch(mod, gy, idx, num_embeddings, padding_idx=-1, grid=None, block=64):
    positions, offsets = ref.embedding_csr(np, idx, num_embeddings)
    dim = gy.shape[-1]
    grad = ce.nan_array((num_embeddings, dim), gy.dtype)
    kernel = "embedding_backward_f32" if gy.dtype == np.float32 else "embedding_backward_f64"
    total = num_embeddings * dim
    mod.launch(kernel, grid or -(-total // block), block,
               (np.ascontiguousarray(gy.reshape(-1, dim)), positions, offsets, grad, np.int64(num_embeddings),
                np.int64(dim), np.int64(padding_idx)))
    return grad


def float64_reference(gy, idx, num_embeddings, padding_idx=None):
    dim = gy.shape[-1]
    out = np.zeros((num_embeddings, dim))
    for p, r in enumerate(idx.reshape(-1)):  # independent of the reference: an explicit loop over positions
        if r != padding_idx:
            out[r] += gy.reshape(-1, dim)[p]
    return out


CASES = [  # index shape, num_embeddings, dim, padding_idx
    ((1,), 1, 1, None),
    ((7,), 3, 5, None),
    ((4, 9), 11, 33, 2),      # rows nobody hits stay 0, the padding row is 0
    ((2, 3, 5), 100, 7, None),
    ((257,), 4, 3, 0),        # many hits per row
]


@pytest.mark.parametrize("shape, num_embeddings, dim, padding_idx", CASES)
def test_gradient_matches_references(mod, shape, num_embeddings, dim, padding_idx):
    rng = np.random.default_rng(dim)
    idx = rng.integers(0, num_embeddings, shape)
    gy = rng.standard_normal(shape + (dim,)).astype(np.float32)
    grad = launch(mod, gy, idx, num_embeddings, -1 if padding_idx is None else padding_idx)
    np.testing.assert_allclose(grad, float64_reference(gy.astype(np.float64), idx, num_embeddings, padding_idx),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(grad, ref.embedding_backward(np, gy, idx, num_embeddings, padding_idx))


def test_float64_and_a_grid_smaller_than_the_work(mod):
    rng = np.random.default_rng(1)
    idx = rng.integers(0, 6, (5, 4))
    gy = rng.standard_normal((5, 4, 9))
    grad = launch(mod, gy, idx, 6, grid=2, block=32)
    np.testing.assert_allclose(grad, float64_reference(gy, idx, 6), rtol=1e-12, atol=1e-12)


def test_csr_lists_positions_in_order_per_row():
    positions, offsets = ref.embedding_csr(np, np.array([[2, 0], [2, 2]]), 4)
    np.testing.assert_array_equal(offsets, [0, 1, 1, 4, 4])
    np.testing.assert_array_equal(positions, [1, 0, 2, 3])


def test_embedding_kernel_under_address_sanitizer():
    asan = ce.load(EMBEDDING, sanitize="address")
    rng = np.random.default_rng(2)
    idx = rng.integers(0, 9, (3, 7))
    gy = rng.standard_normal((3, 7, 5)).astype(np.float32)
    grad = launch(asan, gy, idx, 9, padding_idx=4, grid=3, block=32)
    np.testing.assert_array_equal(grad, ref.embedding_backward(np, gy, idx, 9, 4))
