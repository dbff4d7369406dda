// LayerNorm family: forward (normalised rows, their mean and 1/std) and backward (input gradient per row, weight
// and bias gradients per column), float32. Reference: gpunet/backend/references/layernorm.py. Performance model:
// docs/kernels.md.
//
// x is viewed as (rows, cols), each row one sample's normalized_shape, contiguous. The row kernels give each row
// a group of `group` consecutive threads (a warp for rows up to 1024, several rows per block; 256 threads for a
// longer row: launchers/common.row_groups), blocks striding over the row groups; a shared-memory tree reduces each
// group (gpunet::group_reduce). The statistics are two-pass (the mean, then the mean squared deviation from it),
// exact as a float64 reference allows for float32 data; the second and third reads of a row hit L1/L2.
// The column kernel (weight and bias gradients) runs one thread per (chunk of rows, column): neighbouring threads
// read neighbouring columns (coalesced), each sums its chunk in row order, and the launcher adds the chunks'
// partial sums; no atomics, the same result on every run.
#include "common.cuh"

#define LAYERNORM_MAX_THREADS 256  // largest block of the row kernels

namespace {

struct Pair {  // two sums reduced together
    float a;
    float b;
};

struct PairSum {
    __device__ __forceinline__ Pair operator()(Pair p, Pair q) const { return Pair{p.a + q.a, p.b + q.b}; }
};

}  // namespace

// y = (x - mean) * rstd * weight + bias per row of x (rows, cols); mean[r] and rstd[r] = 1 / sqrt(biased var +
// eps) saved for the backward. has_weight / has_bias = 0: that parameter is absent (pass any one-element array).
extern "C" __global__ void layer_norm_forward_f32(const float* __restrict__ x, const float* __restrict__ weight,
                                                  const float* __restrict__ bias, float* __restrict__ y,
                                                  float* __restrict__ mean, float* __restrict__ rstd, long long rows,
                                                  long long cols, float eps, long long has_weight,
                                                  long long has_bias, long long group) {
    __shared__ float scratch[LAYERNORM_MAX_THREADS];
    const unsigned int g = static_cast<unsigned int>(group);
    const float inv_cols = 1.0f / static_cast<float>(cols);
    gpunet::for_each_row_group(rows, g, [&](long long row, long long lane, bool active) {
        const float* xr = x + row * cols;
        float s = 0.0f;
        if (active)
            for (long long j = lane; j < cols; j += group) s += xr[j];
        const float m = gpunet::group_reduce(s, scratch, g, gpunet::SumOp()) * inv_cols;
        float q = 0.0f;
        if (active)
            for (long long j = lane; j < cols; j += group) {
                const float d = xr[j] - m;
                q += d * d;
            }
        const float r = rsqrtf(gpunet::group_reduce(q, scratch, g, gpunet::SumOp()) * inv_cols + eps);
        if (!active) return;
        float* yr = y + row * cols;
        for (long long j = lane; j < cols; j += group) {
            float v = (xr[j] - m) * r;
            if (has_weight) v *= weight[j];
            if (has_bias) v += bias[j];
            yr[j] = v;
        }
        if (lane == 0) {
            mean[row] = m;
            rstd[row] = r;
        }
    });
}

// gx = rstd * (g - mean(g) - xhat * mean(g * xhat)) per row, with g = gy * weight (gy without a weight) and
// xhat = (x - mean) * rstd: the input gradient of layer_norm_forward_f32.
extern "C" __global__ void layer_norm_backward_f32(const float* __restrict__ gy, const float* __restrict__ x,
                                                   const float* __restrict__ weight, const float* __restrict__ mean,
                                                   const float* __restrict__ rstd, float* __restrict__ gx,
                                                   long long rows, long long cols, long long has_weight,
                                                   long long group) {
    __shared__ Pair scratch[LAYERNORM_MAX_THREADS];
    const unsigned int g = static_cast<unsigned int>(group);
    const float inv_cols = 1.0f / static_cast<float>(cols);
    gpunet::for_each_row_group(rows, g, [&](long long row, long long lane, bool active) {
        const float* xr = x + row * cols;
        const float* gr = gy + row * cols;
        const float m = mean[row], r = rstd[row];
        Pair acc{0.0f, 0.0f};
        if (active)
            for (long long j = lane; j < cols; j += group) {
                const float gj = has_weight ? gr[j] * weight[j] : gr[j];
                acc.a += gj;
                acc.b += gj * ((xr[j] - m) * r);
            }
        const Pair sums = gpunet::group_reduce(acc, scratch, g, PairSum());
        if (!active) return;
        const float mean_g = sums.a * inv_cols, mean_gx = sums.b * inv_cols;
        float* out = gx + row * cols;
        for (long long j = lane; j < cols; j += group) {
            const float gj = has_weight ? gr[j] * weight[j] : gr[j];
            out[j] = r * (gj - mean_g - ((xr[j] - m) * r) * mean_gx);
        }
    });
}

// Partial weight and bias gradients: partial_w[c, j] = sum of gy * xhat and partial_b[c, j] = sum of gy over the
// rows c * chunk .. (c + 1) * chunk - 1 (fewer in the last chunk), for partials of shape (chunks, cols). One thread
// per (c, j); any grid.
extern "C" __global__ void layer_norm_param_grad_f32(const float* __restrict__ gy, const float* __restrict__ x,
                                                     const float* __restrict__ mean, const float* __restrict__ rstd,
                                                     float* __restrict__ partial_w, float* __restrict__ partial_b,
                                                     long long rows, long long cols, long long chunk) {
    const long long chunks = (rows + chunk - 1) / chunk;
    GPUNET_GRID_STRIDE_LOOP(t, chunks * cols) {
        const long long c = t / cols, j = t - c * cols;
        const long long end = (c + 1) * chunk < rows ? (c + 1) * chunk : rows;
        float sw = 0.0f, sb = 0.0f;
        for (long long r = c * chunk; r < end; ++r) {
            const float gv = gy[r * cols + j];
            sw += gv * ((x[r * cols + j] - mean[r]) * rstd[r]);
            sb += gv;
        }
        partial_w[t] = sw;
        partial_b[t] = sb;
    }
}
