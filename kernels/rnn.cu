// Recurrent cells: fused LSTM and GRU cell forward and backward (float32).
// Reference: gpunet/backend/references/rnn.py. Performance model and layout choice: docs/kernels.md.
//
// The matrix products (x W_ih^T, h W_hh^T) run in cuBLAS outside these kernels; a cell kernel does everything
// element-wise that follows them for one time step and one direction, in one launch, and writes straight into the
// layer's sequence buffers (the step slices out[t] and cells[t], contiguous). One thread per hidden
// unit (n, j) of the batch: it reads that unit's gate pre-activations, which keep PyTorch's layout (gate blocks
// [i | f | g | o] for the LSTM, [r | z | n] for the GRU, each block H wide), so the thread reads gates[n, k*H + j]
// for each gate k: neighbouring threads (j, j+1) read neighbouring addresses, every load is coalesced.
// Backward kernels recompute the activations from the pre-activations (the graph keeps those alive anyway).
#include "common.cuh"

namespace {

using gpunet::sigmoid;

// Row n and column j of flat index k in an (rows, cols) array; 32-bit division when the size allows (several
// times cheaper than 64-bit).
__device__ __forceinline__ void row_col(long long k, long long cols, bool narrow, long long& n, long long& j) {
    n = narrow ? static_cast<long long>(static_cast<unsigned int>(k) / static_cast<unsigned int>(cols)) : k / cols;
    j = k - n * cols;
}

// The LSTM gate activations of one hidden unit, from its pre-activations a[0], a[H], a[2H], a[3H] (H = hidden):
// i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g). Forward and backward share it, so they agree to the bit.
struct LstmGates {
    float i, f, g, o;
};

__device__ __forceinline__ LstmGates lstm_gates(const float* a, long long hidden) {
    return {sigmoid(a[0]), sigmoid(a[hidden]), tanhf(a[2 * hidden]), sigmoid(a[3 * hidden])};
}

// The GRU gates r, z and the candidate n of one hidden unit, from gi and gh pointing at its r pre-activation
// (the z and n ones follow H and 2H further): r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z),
// n = tanh(gi_n + r * gh_n). Forward and backward share it, so they agree to the bit.
struct GruGates {
    float r, z, n;
};

__device__ __forceinline__ GruGates gru_gates(const float* gi, const float* gh, long long hidden) {
    const float r = sigmoid(gi[0] + gh[0]);
    const float z = sigmoid(gi[hidden] + gh[hidden]);
    return {r, z, tanhf(gi[2 * hidden] + r * gh[2 * hidden])};
}

}  // namespace

// LSTM cell forward, PyTorch's equations: i, f, o = sigmoid(a_i, a_f, a_o), g = tanh(a_g),
// c = f * c_prev + i * g, h = o * tanh(c). gates (batch, 4*hidden); c_prev, h, c (batch, hidden).
extern "C" __global__ void lstm_cell_forward_f32(const float* __restrict__ gates, const float* __restrict__ c_prev,
                                                 float* __restrict__ h, float* __restrict__ c, long long batch,
                                                 long long hidden) {
    const long long total = batch * hidden;
    const bool narrow = total <= 0xFFFFFFFFll;
    GPUNET_GRID_STRIDE_LOOP(k, total) {
        long long n, j;
        row_col(k, hidden, narrow, n, j);
        const auto [i, f, g, o] = lstm_gates(gates + 4 * hidden * n + j, hidden);
        const float cn = f * c_prev[k] + i * g;
        c[k] = cn;
        h[k] = o * tanhf(cn);
    }
}

// LSTM cell backward: from the pre-activations, c_prev and the gradients of h and c, the gradients of the
// pre-activations (batch, 4*hidden) and of c_prev (batch, hidden). The gradient of h is grad_h, plus grad_h_extra
// when has_extra (a layer's two: from the next step's recurrent product and from the step's output), so the
// layer needs no separate add; without it grad_h_extra is never read.
extern "C" __global__ void lstm_cell_backward_f32(const float* __restrict__ gates, const float* __restrict__ c_prev,
                                                  const float* __restrict__ grad_h,
                                                  const float* __restrict__ grad_h_extra,
                                                  const float* __restrict__ grad_c, float* __restrict__ grad_gates,
                                                  float* __restrict__ grad_c_prev, long long batch, long long hidden,
                                                  int has_extra) {
    const long long total = batch * hidden;
    const bool narrow = total <= 0xFFFFFFFFll;
    GPUNET_GRID_STRIDE_LOOP(k, total) {
        long long n, j;
        row_col(k, hidden, narrow, n, j);
        const long long base = 4 * hidden * n + j;
        const auto [i, f, g, o] = lstm_gates(gates + base, hidden);
        const float cp = c_prev[k];
        const float tc = tanhf(f * cp + i * g);
        const float gh = has_extra ? grad_h[k] + grad_h_extra[k] : grad_h[k];
        const float gc = grad_c[k] + gh * o * (1.0f - tc * tc);
        float* d = grad_gates + base;
        d[0] = gc * g * i * (1.0f - i);
        d[hidden] = gc * cp * f * (1.0f - f);
        d[2 * hidden] = gc * i * (1.0f - g * g);
        d[3 * hidden] = gh * tc * o * (1.0f - o);
        grad_c_prev[k] = gc * f;
    }
}

// GRU cell forward, PyTorch's equations (the reset gate multiplies the recurrent product, bias included):
// r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z), n = tanh(gi_n + r * gh_n), h = (1 - z) * n + z * h_prev.
// gi = x W_ih^T + b_ih and gh = h_prev W_hh^T + b_hh are (batch, 3*hidden); h_prev and h (batch, hidden).
extern "C" __global__ void gru_cell_forward_f32(const float* __restrict__ gi, const float* __restrict__ gh,
                                                const float* __restrict__ h_prev, float* __restrict__ h,
                                                long long batch, long long hidden) {
    const long long total = batch * hidden;
    const bool narrow = total <= 0xFFFFFFFFll;
    GPUNET_GRID_STRIDE_LOOP(k, total) {
        long long n, j;
        row_col(k, hidden, narrow, n, j);
        const long long base = 3 * hidden * n + j;
        const auto [r, z, nn] = gru_gates(gi + base, gh + base, hidden);
        h[k] = (1.0f - z) * nn + z * h_prev[k];
    }
}

// GRU cell backward: gradients of gi and gh (batch, 3*hidden) and of h_prev (batch, hidden) from the gradient of
// h, grad_h plus grad_h_extra when has_extra (as in the LSTM's backward). The r and z blocks of grad_gi and
// grad_gh are equal (both feed the same sum); the n blocks differ by r.
extern "C" __global__ void gru_cell_backward_f32(const float* __restrict__ gi, const float* __restrict__ gh,
                                                 const float* __restrict__ h_prev, const float* __restrict__ grad_h,
                                                 const float* __restrict__ grad_h_extra, float* __restrict__ grad_gi,
                                                 float* __restrict__ grad_gh, float* __restrict__ grad_h_prev,
                                                 long long batch, long long hidden, int has_extra) {
    const long long total = batch * hidden;
    const bool narrow = total <= 0xFFFFFFFFll;
    GPUNET_GRID_STRIDE_LOOP(k, total) {
        long long n, j;
        row_col(k, hidden, narrow, n, j);
        const long long base = 3 * hidden * n + j;
        const auto [r, z, nn] = gru_gates(gi + base, gh + base, hidden);
        const float ghn = gh[base + 2 * hidden];
        const float hp = h_prev[k];
        const float dh = has_extra ? grad_h[k] + grad_h_extra[k] : grad_h[k];
        const float dan = dh * (1.0f - z) * (1.0f - nn * nn);
        const float dar = dan * ghn * r * (1.0f - r);
        const float daz = dh * (hp - nn) * z * (1.0f - z);
        grad_gi[base] = dar;
        grad_gh[base] = dar;
        grad_gi[base + hidden] = daz;
        grad_gh[base + hidden] = daz;
        grad_gi[base + 2 * hidden] = dan;
        grad_gh[base + 2 * hidden] = dan * r;
        grad_h_prev[k] = dh * z;
    }
}
