// Softmax family: softmax, log-softmax, fused softmax cross-entropy forward and backward (float32).
// Reference: gpunet/backend/numpy_kernels/softmax.py. Performance model: docs/kernels.md.
//
// Row kernels (`*_rows_f32`, the cross-entropy forward): the reduced axis is the last, contiguous
// one; each row gets a group of `group` consecutive threads (group divides blockDim.x <= 256): a
// warp for a narrow row, several rows per block, or the whole block for a wide one. Blocks stride
// over row groups (any grid), any row length. Each row is read twice: pass 1 folds it into a
// running (max, sum of exp(x - max)) pair per thread ("online softmax"), a shared-memory tree
// combines the pairs of each group; pass 2 writes the output. The masked row kernel reads each
// score through the attention masks (boolean keep, additive bias, causal) on the way.
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

#define SOFTMAX_MAX_THREADS 256  // largest block of the row kernels

// Runs body(row, lane, ms) for every row of `rows` with its (max, sum) pair `ms` over the values load(row)(j),
// j < cols: the block's threads form groups of `group`, one row per group, the groups of all blocks striding
// over the rows. Inactive groups (past the last row) take part in the reductions only.
template <typename Load, typename Body>
__device__ __forceinline__ void for_each_row(long long rows, long long cols, long long group, Load load, Body body) {
    __shared__ MaxSum scratch[SOFTMAX_MAX_THREADS];
    const unsigned int g = static_cast<unsigned int>(group);  // at most SOFTMAX_MAX_THREADS
    gpunet::for_each_row_group(rows, g, [&](long long row, long long lane, bool active) {
        MaxSum acc = max_sum_identity();
        if (active) {
            const auto values = load(row);
            for (long long j = lane; j < cols; j += group) acc = max_sum_add(acc, values(j));
        }
        const MaxSum ms = gpunet::group_reduce(acc, scratch, g, MaxSumOp());
        if (active) body(row, lane, ms);  // no barrier follows in this iteration
    });
}

// A row of x itself.
struct PlainRows {
    const float* __restrict__ x;
    long long cols;
    struct Row {
        const float* __restrict__ xr;
        __device__ __forceinline__ float operator()(long long j) const { return xr[j]; }
    };
    __device__ __forceinline__ Row operator()(long long row) const { return Row{x + row * cols}; }
};

// A row of attention scores x (rows = outer * heads * queries, cols = keys) seen through the masks: bias added
// (if any), then -inf where keep is false or (causal) the key comes after the query. keep and bias broadcast
// to x's (outer, heads, queries, keys) view with element strides ks / bs (0 along broadcast dimensions).
struct MaskedRows {
    const float* __restrict__ x;
    const bool* __restrict__ keep;
    const float* __restrict__ bias;
    long long cols, heads, queries;
    long long ks[4], bs[4];
    bool has_keep, has_bias, causal;
    struct Row {
        const float* __restrict__ xr;
        const bool* __restrict__ kr;
        const float* __restrict__ br;
        long long kj, bj, last;  // strides along the keys; the last key kept (causal) or cols
        bool has_keep, has_bias;
        __device__ __forceinline__ float operator()(long long j) const {
            float v = xr[j];
            if (has_bias) v += br[j * bj];
            if ((has_keep && !kr[j * kj]) || j > last) v = -gpunet::inf_f32();
            return v;
        }
    };
    __device__ __forceinline__ Row operator()(long long row) const {
        const long long q = row % queries, bh = row / queries;
        const long long h = bh % heads, o = bh / heads;
        return Row{x + row * cols, keep + o * ks[0] + h * ks[1] + q * ks[2], bias + o * bs[0] + h * bs[1] + q * bs[2],
                   ks[3], bs[3], causal ? q : cols, has_keep, has_bias};
    }
};

// y = softmax (or log-softmax) of the rows `load` gives; `empty_is_zero`: a row without a finite value (all
// masked) gives 0 (the masked softmax's rule) instead of NaN (a plain softmax of -inf everywhere).
template <bool LOG, typename Load>
__device__ __forceinline__ void softmax_rows(Load load, float* __restrict__ y, long long rows, long long cols,
                                             long long group, bool empty_is_zero) {
    for_each_row(rows, cols, group, load, [&](long long row, long long lane, MaxSum ms) {
        const auto values = load(row);
        float* yr = y + row * cols;
        if (empty_is_zero && ms.m == -gpunet::inf_f32()) {
            for (long long j = lane; j < cols; j += group) yr[j] = 0.0f;
        } else if (LOG) {  // (x - m) - log(s): the shift is exact, so large logits keep full precision
            const float log_s = logf(ms.s);
            for (long long j = lane; j < cols; j += group) yr[j] = (values(j) - ms.m) - log_s;
        } else {
            const float inv = 1.0f / ms.s;
            for (long long j = lane; j < cols; j += group) yr[j] = expf(values(j) - ms.m) * inv;
        }
    });
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

// y[r, :] = softmax(x[r, :]) for x of shape (rows, cols), `group` threads per row. Grid: any.
extern "C" __global__ void softmax_rows_f32(const float* __restrict__ x, float* __restrict__ y, long long rows,
                                            long long cols, long long group) {
    softmax_rows<false>(PlainRows{x, cols}, y, rows, cols, group, false);
}

// y[r, :] = log_softmax(x[r, :]).
extern "C" __global__ void log_softmax_rows_f32(const float* __restrict__ x, float* __restrict__ y, long long rows,
                                                long long cols, long long group) {
    softmax_rows<true>(PlainRows{x, cols}, y, rows, cols, group, false);
}

// The attention weights: y = softmax over the keys of the scores x (outer, heads, queries, keys) + bias, where
// keep holds and (causal) key <= query; 0 at masked keys, and a row with no finite score left is all 0 (as
// PyTorch's scaled_dot_product_attention). keep (bool) and bias (float) are read with the element strides
// keep_s* / bias_s* over (outer, heads, queries, keys); has_keep / has_bias = 0: that mask is absent (pass any
// one-element array).
extern "C" __global__ void masked_softmax_rows_f32(const float* __restrict__ x, const bool* __restrict__ keep,
                                                   const float* __restrict__ bias, float* __restrict__ y,
                                                   long long rows, long long cols, long long heads, long long queries,
                                                   long long keep_s0, long long keep_s1, long long keep_s2,
                                                   long long keep_s3, long long bias_s0, long long bias_s1,
                                                   long long bias_s2, long long bias_s3, long long has_keep,
                                                   long long has_bias, long long causal, long long group) {
    const MaskedRows load{x, keep, bias, cols, heads, queries, {keep_s0, keep_s1, keep_s2, keep_s3},
                          {bias_s0, bias_s1, bias_s2, bias_s3}, has_keep != 0, has_bias != 0, causal != 0};
    softmax_rows<false>(load, y, rows, cols, group, true);
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

// Fused cross-entropy forward for logits (rows, cols) and int64 targets (rows), `group` threads per row:
// log_probs = log_softmax(logits); loss[r] = -log_probs[r, target[r]], 0 where target[r] ==
// ignore_index, NaN where the target is outside [0, cols) (a GPU cannot raise; the host checks).
extern "C" __global__ void softmax_xent_forward_f32(const float* __restrict__ logits,
                                                    const long long* __restrict__ target, float* __restrict__ loss,
                                                    float* __restrict__ log_probs, long long rows, long long cols,
                                                    long long ignore_index, long long group) {
    for_each_row(rows, cols, group, PlainRows{logits, cols}, [&](long long row, long long lane, MaxSum ms) {
        const float* xr = logits + row * cols;
        float* lr = log_probs + row * cols;
        const float log_s = logf(ms.s);
        for (long long j = lane; j < cols; j += group) lr[j] = (xr[j] - ms.m) - log_s;
        if (lane == 0) {
            const long long t = target[row];
            float value;
            if (t == ignore_index) value = 0.0f;
            else if (t < 0 || t >= cols) value = gpunet::nan_f32();
            else value = log_s - (xr[t] - ms.m);
            loss[row] = value;
        }
    });
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
