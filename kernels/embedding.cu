// Embedding backward without atomics: grad_weight[r, f] = sum of gy[p, f] over the positions p whose index is r.
// Reference: gpunet/backend/numpy_kernels/embedding.py. Performance model: docs/kernels.md.
//
// The host sorts the positions by (index, position) and builds a CSR of them: the positions hitting row r are
// positions[offsets[r] .. offsets[r + 1]), in increasing order. One thread per (row, feature) element of the
// gradient sums its row's positions in that order (a gather): deterministic, every output written exactly
// once, the same sums in the same order as the reference's numpy.add.at, so float32 results agree bit for bit.
// Consecutive threads take consecutive features of one row, so each gy row is read coalesced.
#include "common.cuh"

namespace {

template <typename T>
__device__ __forceinline__ void embedding_backward(const T* __restrict__ gy, const long long* __restrict__ positions,
                                                   const long long* __restrict__ offsets, T* __restrict__ grad,
                                                   long long num_embeddings, long long dim, long long padding_idx) {
    GPUNET_GRID_STRIDE_LOOP(k, num_embeddings * dim) {
        const long long row = k / dim;
        const long long feature = k - row * dim;
        T acc = T(0);
        if (row != padding_idx) {
            const long long end = offsets[row + 1];
            for (long long j = offsets[row]; j < end; ++j) acc += gy[positions[j] * dim + feature];
        }
        grad[k] = acc;
    }
}

}  // namespace

// grad (num_embeddings, dim) from gy (positions, dim), CSR positions/offsets (offsets has num_embeddings + 1
// entries); row padding_idx (or none when negative) gets 0. One thread per gradient element, any grid.
extern "C" __global__ void embedding_backward_f32(const float* __restrict__ gy, const long long* __restrict__ positions,
                                                  const long long* __restrict__ offsets, float* __restrict__ grad,
                                                  long long num_embeddings, long long dim, long long padding_idx) {
    embedding_backward<float>(gy, positions, offsets, grad, num_embeddings, dim, padding_idx);
}

extern "C" __global__ void embedding_backward_f64(const double* __restrict__ gy,
                                                  const long long* __restrict__ positions,
                                                  const long long* __restrict__ offsets, double* __restrict__ grad,
                                                  long long num_embeddings, long long dim, long long padding_idx) {
    embedding_backward<double>(gy, positions, offsets, grad, num_embeddings, dim, padding_idx);
}
