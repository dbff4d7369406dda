// Batch-norm statistics: per-channel mean and biased variance over every axis but the channel axis.
// Reference: gpunet/backend/numpy_kernels/batchnorm.py. Performance model: docs/kernels.md.
//
// x is viewed as (outer, channels, inner): (N, C) -> (N, C, 1), (N, C, L), (N, C, H, W) -> (N, C, H*W).
// One block per channel (blocks stride over channels, any grid); its threads stride over the channel's
// outer * inner elements (consecutive threads read consecutive spatial positions) and fold them into a
// per-thread Welford triple (count, mean, M2), numerically stable in one pass over x. A shared-memory
// tree combines the triples with Chan et al.'s pairwise formula; thread 0 writes mean and M2 / count.
#include "common.cuh"

namespace {

struct Welford {
    float count;  // exact up to 2^24 elements per thread, far beyond any channel / blockDim
    float mean;
    float m2;  // sum of squared deviations from mean
};

__device__ __forceinline__ Welford welford_add(Welford a, float x) {
    a.count += 1.0f;
    const float delta = x - a.mean;
    a.mean += delta / a.count;
    a.m2 += delta * (x - a.mean);
    return a;
}

struct WelfordOp {  // Chan, Golub & LeVeque's combination of two partial triples
    __device__ __forceinline__ Welford operator()(Welford a, Welford b) const {
        const float count = a.count + b.count;
        if (count == 0.0f) return a;
        const float delta = b.mean - a.mean;
        const float wb = b.count / count;
        return Welford{count, a.mean + delta * wb, a.m2 + b.m2 + delta * delta * a.count * wb};
    }
};

}  // namespace

// mean[c], var[c] (biased: divided by outer * inner) of x viewed as (outer, channels, inner).
// Grid: any (ideally min(channels, 65535)); block: any <= 1024 (ideally 256-1024 for large channels).
extern "C" __global__ void batch_norm_stats_f32(const float* __restrict__ x, float* __restrict__ mean,
                                                float* __restrict__ var, long long outer, long long channels,
                                                long long inner) {
    __shared__ Welford scratch[GPUNET_MAX_THREADS];
    const long long per_channel = outer * inner;
    GPUNET_BLOCK_STRIDE_LOOP(c, channels) {
        Welford acc{0.0f, 0.0f, 0.0f};
        if (inner == 1) {  // (N, C): the channel is a column of stride `channels`
            GPUNET_THREAD_STRIDE_LOOP(k, per_channel) acc = welford_add(acc, x[k * channels + c]);
        } else if (per_channel <= 0xFFFFFFFFll) {  // 32-bit division is several times cheaper than 64-bit
            const unsigned int inner32 = static_cast<unsigned int>(inner);
            GPUNET_THREAD_STRIDE_LOOP(k, per_channel) {
                const long long o = static_cast<unsigned int>(k) / inner32;
                acc = welford_add(acc, x[(o * channels + c) * inner + (k - o * inner)]);
            }
        } else {
            GPUNET_THREAD_STRIDE_LOOP(k, per_channel) {
                const long long o = k / inner;
                acc = welford_add(acc, x[(o * channels + c) * inner + (k - o * inner)]);
            }
        }
        const Welford total = gpunet::block_reduce(acc, scratch, WelfordOp());
        if (threadIdx.x == 0) {
            mean[c] = per_channel ? total.mean : gpunet::nan_f32();
            var[c] = per_channel ? total.m2 / total.count : gpunet::nan_f32();
        }
    }
}
