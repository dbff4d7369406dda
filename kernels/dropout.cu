// Dropout mask from the counter-based Philox-4x32-10 generator (Salmon et al., 2011; also cuRAND's).
// Reference: gpunet/backend/numpy_kernels/dropout.py, which this reproduces bit for bit. Performance
// model: docs/kernels.md.
//
// Element i of the mask takes 32-bit word (offset + i) % 4 of the Philox block whose 64-bit counter is
// (offset + i) / 4 (counter words (low, high, 0, 0)), under the 64-bit key `seed` (words (low, high)).
// It is 0 when the word is below `threshold` (round(p * 2^32), computed on the host) and `scale`
// (1 / (1 - p) rounded to the output type) otherwise: an integer decision, so every backend agrees.
// One thread per Philox block: it computes four words and writes the (up to) four elements they cover.
// dropout_apply_* fuses the mask with its use: y = x * mask, the mask never stored (the backward applies the
// same (seed, offset) to the incoming gradient).
#include "common.cuh"

namespace {

struct Words {
    unsigned int w[4];
};

__device__ __forceinline__ Words philox4x32_10(unsigned long long counter, unsigned long long seed) {
    const unsigned int M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    unsigned int c0 = static_cast<unsigned int>(counter), c1 = static_cast<unsigned int>(counter >> 32);
    unsigned int c2 = 0u, c3 = 0u;
    unsigned int k0 = static_cast<unsigned int>(seed), k1 = static_cast<unsigned int>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
        if (round) {
            k0 += W0;
            k1 += W1;
        }
        const unsigned int hi0 = __umulhi(M0, c0), lo0 = M0 * c0;
        const unsigned int hi1 = __umulhi(M1, c2), lo1 = M1 * c2;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    return Words{{c0, c1, c2, c3}};
}

// out[i] = mask value of element i (x == nullptr) or x[i] * mask value (the reference's x * mask: NaN and
// the sign of zero behave as that product does).
template <typename T>
__device__ __forceinline__ void dropout(const T* __restrict__ x, T* __restrict__ out, long long n,
                                        unsigned long long seed, long long offset, unsigned int threshold, T scale) {
    if (n <= 0) return;
    const long long first = offset / 4;
    const long long blocks = (offset + n + 3) / 4 - first;
    GPUNET_GRID_STRIDE_LOOP(b, blocks) {
        const Words r = philox4x32_10(static_cast<unsigned long long>(first + b), seed);
        const long long base = 4 * (first + b) - offset;  // index of lane 0 (negative in the first block)
        for (int lane = 0; lane < 4; ++lane) {
            const long long i = base + lane;
            if (i >= 0 && i < n) {
                const T m = r.w[lane] >= threshold ? scale : T(0);
                out[i] = x ? x[i] * m : m;
            }
        }
    }
}

}  // namespace

// mask[i] = (word(offset + i) >= threshold) ? scale : 0 for i < n; offset >= 0. Grid: ceil(blocks / block size),
// blocks = ceil((offset + n) / 4) - offset / 4 (any grid: grid-stride).
extern "C" __global__ void dropout_mask_f32(float* __restrict__ mask, long long n, unsigned long long seed,
                                            long long offset, unsigned int threshold, float scale) {
    dropout<float>(nullptr, mask, n, seed, offset, threshold, scale);
}

extern "C" __global__ void dropout_mask_f64(double* __restrict__ mask, long long n, unsigned long long seed,
                                            long long offset, unsigned int threshold, double scale) {
    dropout<double>(nullptr, mask, n, seed, offset, threshold, scale);
}

// y[i] = x[i] * mask[i] for the mask of (seed, offset, threshold, scale) above, without storing the mask.
extern "C" __global__ void dropout_apply_f32(const float* __restrict__ x, float* __restrict__ y, long long n,
                                             unsigned long long seed, long long offset, unsigned int threshold,
                                             float scale) {
    dropout<float>(x, y, n, seed, offset, threshold, scale);
}

extern "C" __global__ void dropout_apply_f64(const double* __restrict__ x, double* __restrict__ y, long long n,
                                             unsigned long long seed, long long offset, unsigned int threshold,
                                             double scale) {
    dropout<double>(x, y, n, seed, offset, threshold, scale);
}
