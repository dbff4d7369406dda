// Softmax family: softmax, log-softmax, fused softmax cross-entropy forward and backward (float32).
// Reference: gpunet/backend/numpy_kernels/softmax.py. Performance model: docs/kernels.md.
//
// Row kernels (`*_rows_f32`): the reduced axis is the last, contiguous one; one block per row
// (any grid: blocks stride over rows), any blockDim.x <= 1024, any row length. Each row is
// read twice: pass 1 folds it into a running (max, sum of exp(x - max)) pair per thread
// ("online softmax"), a shared-memory tree combines the pairs; pass 2 writes the output.
// Column kernels (`*_cols_f32`): x viewed as (outer, dim, inner) with inner > 1, reduced over
// dim; one thread per (outer, inner) lane, so neighbouring threads read neighbouring addresses.
#include "common.cuh"

namespace {

struct MaxSum {  // running max m and sum s of exp(x - m)
    float m;
    float s;
};

__device__ __forceinline__ MaxSum max_sum_identity() { return MaxSum{-gpunet::inf_f32(), 0.0f}; }

// Fold x in. -inf contributes nothing; NaN makes s NaN (propagated to the output).
__device__ __forceinline__ MaxSum max_sum_add(MaxSum a, float x) {
    if (x > a.m) {
        a.s = a.s * expf(a.m - x) + 1.0f;
        a.m = x;
    } else if (x != -gpunet::inf_f32()) {
        a.s += expf(x - a.m);
    }
    return a;
}

struct MaxSumOp {
    __device__ __forceinline__ MaxSum operator()(MaxSum a, MaxSum b) const {
        const float m = a.m > b.m ? a.m : b.m;
        if (m == -gpunet::inf_f32()) return MaxSum{m, a.s + b.s};
        return MaxSum{m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
    }
};

// (max, sum) of a contiguous row; every thread of the block gets it.
__device__ __forceinline__ MaxSum row_max_sum(const float* __restrict__ row, long long cols) {
    __shared__ MaxSum scratch[GPUNET_MAX_THREADS];
    MaxSum acc = max_sum_identity();
    GPUNET_THREAD_STRIDE_LOOP(j, cols) acc = max_sum_add(acc, row[j]);
    return gpunet::block_reduce(acc, scratch, MaxSumOp());
}

template <bool LOG>
__device__ __forceinline__ void softmax_rows(const float* __restrict__ x, float* __restrict__ y, long long rows,
                                             long long cols) {
    GPUNET_BLOCK_STRIDE_LOOP(row, rows) {
        const float* xr = x + row * cols;
        float* yr = y + row * cols;
        const MaxSum ms = row_max_sum(xr, cols);
        if (LOG) {  // (x - m) - log(s): the shift is exact, so large logits keep full precision
            const float log_s = logf(ms.s);
            GPUNET_THREAD_STRIDE_LOOP(j, cols) yr[j] = (xr[j] - ms.m) - log_s;
        } else {
            const float inv = 1.0f / ms.s;
            GPUNET_THREAD_STRIDE_LOOP(j, cols) yr[j] = expf(xr[j] - ms.m) * inv;
        }
    }
}

template <bool LOG>
__device__ __forceinline__ void softmax_cols(const float* __restrict__ x, float* __restrict__ y, long long outer,
                                             long long dim, long long inner) {
    GPUNET_GRID_STRIDE_LOOP(lane, outer * inner) {
        const long long o = lane / inner;
        const long long base = o * dim * inner + (lane - o * inner);
        MaxSum ms = max_sum_identity();
        for (long long j = 0; j < dim; ++j) ms = max_sum_add(ms, x[base + j * inner]);
        if (LOG) {
            const float log_s = logf(ms.s);
            for (long long j = 0; j < dim; ++j) y[base + j * inner] = (x[base + j * inner] - ms.m) - log_s;
        } else {
            const float inv = 1.0f / ms.s;
            for (long long j = 0; j < dim; ++j) y[base + j * inner] = expf(x[base + j * inner] - ms.m) * inv;
        }
    }
}

}  // namespace

// y[r, :] = softmax(x[r, :]) for x of shape (rows, cols). Grid: any (ideally min(rows, 65535)).
extern "C" __global__ void softmax_rows_f32(const float* __restrict__ x, float* __restrict__ y, long long rows,
                                            long long cols) {
    softmax_rows<false>(x, y, rows, cols);
}

// y[r, :] = log_softmax(x[r, :]).
extern "C" __global__ void log_softmax_rows_f32(const float* __restrict__ x, float* __restrict__ y, long long rows,
                                                long long cols) {
    softmax_rows<true>(x, y, rows, cols);
}

// Softmax over the middle axis of x viewed as (outer, dim, inner). One thread per (outer, inner).
extern "C" __global__ void softmax_cols_f32(const float* __restrict__ x, float* __restrict__ y, long long outer,
                                            long long dim, long long inner) {
    softmax_cols<false>(x, y, outer, dim, inner);
}

extern "C" __global__ void log_softmax_cols_f32(const float* __restrict__ x, float* __restrict__ y,
                                                long long outer, long long dim, long long inner) {
    softmax_cols<true>(x, y, outer, dim, inner);
}

// Fused cross-entropy forward for logits (rows, cols) and int64 targets (rows):
// log_probs = log_softmax(logits); loss[r] = -log_probs[r, target[r]], 0 where target[r] ==
// ignore_index, NaN where the target is outside [0, cols) (a GPU cannot raise; the host checks).
extern "C" __global__ void softmax_xent_forward_f32(const float* __restrict__ logits,
                                                    const long long* __restrict__ target, float* __restrict__ loss,
                                                    float* __restrict__ log_probs, long long rows, long long cols,
                                                    long long ignore_index) {
    GPUNET_BLOCK_STRIDE_LOOP(row, rows) {
        const float* xr = logits + row * cols;
        float* lr = log_probs + row * cols;
        const MaxSum ms = row_max_sum(xr, cols);
        const float log_s = logf(ms.s);
        GPUNET_THREAD_STRIDE_LOOP(j, cols) lr[j] = (xr[j] - ms.m) - log_s;
        if (threadIdx.x == 0) {
            const long long t = target[row];
            float value;
            if (t == ignore_index) value = 0.0f;
            else if (t < 0 || t >= cols) value = gpunet::nan_f32();
            else value = log_s - (xr[t] - ms.m);
            loss[row] = value;
        }
    }
}

// Fused cross-entropy backward: grad_logits[r, j] = (exp(log_probs[r, j]) - [j == target[r]]) *
// grad_loss[r], and 0 for rows whose target is ignore_index. Elementwise: one thread per element.
extern "C" __global__ void softmax_xent_backward_f32(const float* __restrict__ log_probs,
                                                     const long long* __restrict__ target,
                                                     const float* __restrict__ grad_loss,
                                                     float* __restrict__ grad_logits, long long rows, long long cols,
                                                     long long ignore_index) {
    const long long total = rows * cols;
    const bool narrow = total <= 0xFFFFFFFFll;  // 32-bit division is several times cheaper
    GPUNET_GRID_STRIDE_LOOP(k, total) {
        const long long row = narrow ? static_cast<long long>(static_cast<unsigned int>(k) / static_cast<unsigned int>(cols))
                                     : k / cols;
        const long long t = target[row];
        float g = 0.0f;
        if (t != ignore_index) {
            const float p = expf(log_probs[k]);
            g = (k - row * cols == t ? p - 1.0f : p) * grad_loss[row];
        }
        grad_logits[k] = g;
    }
}
