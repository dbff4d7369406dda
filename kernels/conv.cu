// Convolution family: im2col and its adjoint col2im (float32), for 1-D (H = 1) and 2-D convolution with
// stride, padding and dilation; groups are a view of the columns. Reference:
// gpunet/backend/references/conv.py. Performance model: docs/kernels.md.
//
// Layouts: x (N, C, H, W) contiguous. cols is stored batch-innermost, (C*kh*kw, OH*OW, N) contiguous (im2col can
// also write it batch-major, (N, C*kh*kw, OH*OW), for the CUDA forward's per-sample GEMM): row
// c*kh*kw + i*kw + j holds input channel c at kernel offset (i, j) for every output position and sample.
// Viewed as (N, C*kh*kw, OH*OW) it is PyTorch's F.unfold layout; stored this way the weight product of a whole
// batch is one GEMM, weight (O, C*kh*kw) @ cols (C*kh*kw, OH*OW*N), for both gradients (and the forward pass
// where it is not batch-major), and the CPU reference moves rows of OW*N elements instead of OW.
// Padding is implicit (zeros, never materialised).
//
// im2col: one thread per (n, c, oh, ow) writes its kh*kw column entries; neighbouring threads handle
// neighbouring n (batch-innermost) or ow (batch-major), the innermost axis of the columns, so every store is
// coalesced.
// col2im: a gather, one thread per input pixel (n, c, h, w) sums the column entries that read it, in (i, j)
// order: no atomics, the same result on every run; neighbouring threads handle neighbouring n, so every load is
// coalesced.
// Both use 32-bit index arithmetic when every index fits (a 64-bit division costs several times more).
#include "common.cuh"

namespace {

template <typename I>
struct Signed;
template <>
struct Signed<unsigned int> {
    using type = int;
};
template <>
struct Signed<unsigned long long> {
    using type = long long;
};

struct Geometry {
    long long N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW;
};

// Every index of a launch over `total` items, in index type I.
#define CONV_GRID_STRIDE_LOOP(I, t, total)                                                  \
    for (I t = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; t < (total);         \
         t += static_cast<I>(blockDim.x) * gridDim.x)

template <typename I>
__device__ __forceinline__ void im2col_body(const float* __restrict__ x, float* __restrict__ cols, I total,
                                            const Geometry g, bool batch_major) {
    using S = typename Signed<I>::type;
    const I N = g.N, OW = g.OW, OH = g.OH, H = g.H, W = g.W, C = g.C, kh = g.kh, kw = g.kw, L = OH * OW;
    const I row_step = batch_major ? L : L * N;  // from entry (r, n, l) to (r + 1, n, l)
    const S sh = g.sh, sw = g.sw, ph = g.ph, pw = g.pw, dh = g.dh, dw = g.dw, Hs = g.H, Ws = g.W;
    CONV_GRID_STRIDE_LOOP(I, t, total) {
        I n, c, oh, ow, rest;
        if (batch_major) {  // t = ((n * C + c) * OH + oh) * OW + ow
            ow = t % OW;
            rest = t / OW;
            oh = rest % OH;
            rest /= OH;
            n = rest / C;
            c = rest - n * C;
        } else {  // t = ((c * OH + oh) * OW + ow) * N + n
            n = t % N;
            rest = t / N;
            ow = rest % OW;
            rest /= OW;
            oh = rest % OH;
            c = rest / OH;
        }
        const float* xp = x + (n * C + c) * (H * W);
        // entry (c*kh*kw + k, oh*OW + ow, n), or (n, c*kh*kw + k, oh*OW + ow): consecutive k are row_step apart
        float* out = cols + c * (kh * kw * row_step) +
                     (batch_major ? n * (C * kh * kw * L) + oh * OW + ow : (oh * OW + ow) * N + n);
        const S h0 = static_cast<S>(oh) * sh - ph, w0 = static_cast<S>(ow) * sw - pw;
        for (S i = 0; i < static_cast<S>(kh); ++i) {
            const S h = h0 + i * dh;
            const bool row_inside = h >= 0 && h < Hs;
            for (S j = 0; j < static_cast<S>(kw); ++j) {
                const S w = w0 + j * dw;
                *out = (row_inside && w >= 0 && w < Ws) ? xp[static_cast<I>(h) * W + static_cast<I>(w)] : 0.0f;
                out += row_step;
            }
        }
    }
}

// UNIT_STRIDE: sh = sw = 1, the common case, without the integer divisions by the stride (~20 instructions
// each), which would otherwise make the gather instruction-bound rather than memory-bound.
template <typename I, bool UNIT_STRIDE>
__device__ __forceinline__ void col2im_body(const float* __restrict__ cols, float* __restrict__ x, I total,
                                            const Geometry g) {
    using S = typename Signed<I>::type;
    const I N = g.N, OW = g.OW, LN = g.OH * g.OW * g.N, H = g.H, W = g.W, C = g.C, K = g.kh * g.kw;
    const S sh = g.sh, sw = g.sw, dh = g.dh, dw = g.dw, kh = g.kh, kw = g.kw, OHs = g.OH, OWs = g.OW;
    CONV_GRID_STRIDE_LOOP(I, t, total) {  // t = ((c * H + h) * W + w) * N + n
        const I n = t % N;
        I rest = t / N;
        const I w = rest % W;
        rest /= W;
        const I h = rest % H, c = rest / H;
        const float* col = cols + c * (K * LN) + n;  // entry (c*K + k, l, n) is col[k * LN + l * N]
        // Output row oh reads input row h at kernel row i when oh * sh + i * dh == h + ph.
        const S hp = static_cast<S>(h) + g.ph, wp = static_cast<S>(w) + g.pw;
        float sum = 0.0f;
        for (S i = 0; i < kh; ++i) {
            const S hh = hp - i * dh;
            if (hh < 0) break;  // decreasing in i
            if (!UNIT_STRIDE && hh % sh != 0) continue;
            const S oh = UNIT_STRIDE ? hh : hh / sh;
            if (oh >= OHs) continue;
            for (S j = 0; j < kw; ++j) {
                const S ww = wp - j * dw;
                if (ww < 0) break;
                if (!UNIT_STRIDE && ww % sw != 0) continue;
                const S ow = UNIT_STRIDE ? ww : ww / sw;
                if (ow >= OWs) continue;
                sum += col[static_cast<I>(i * kw + j) * LN + (static_cast<I>(oh) * OW + static_cast<I>(ow)) * N];
            }
        }
        x[((n * C + c) * H + h) * W + w] = sum;
    }
}

__device__ __forceinline__ bool fits_32_bits(long long a, long long b) {
    return a < 0x7FFFFFFFll && b < 0x7FFFFFFFll;  // and t + grid stride (< 2^26) cannot wrap an unsigned int
}

}  // namespace

// cols = im2col(x): x (N, C, H, W), cols (C*kh*kw, OH*OW, N), or with batch_major != 0 (N, C*kh*kw, OH*OW)
// (the layout of a per-sample GEMM that writes the convolution's (N, O, OH*OW) output directly). One thread per
// (n, c, oh, ow), n fastest (ow fastest when batch-major); any grid.
extern "C" __global__ void im2col_f32(const float* __restrict__ x, float* __restrict__ cols, long long N, long long C,
                                      long long H, long long W, long long kh, long long kw, long long sh, long long sw,
                                      long long ph, long long pw, long long dh, long long dw, long long OH,
                                      long long OW, long long batch_major) {
    const Geometry g{N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW};
    const long long total = N * C * OH * OW;
    if (fits_32_bits(total * kh * kw, N * C * H * W)) {
        im2col_body<unsigned int>(x, cols, static_cast<unsigned int>(total), g, batch_major != 0);
    } else {
        im2col_body<unsigned long long>(x, cols, static_cast<unsigned long long>(total), g, batch_major != 0);
    }
}

// x = col2im(cols), the adjoint of im2col (cols (C*kh*kw, OH*OW, N)), as a gather: one thread per input pixel
// (n, c, h, w), n fastest; any grid.
extern "C" __global__ void col2im_f32(const float* __restrict__ cols, float* __restrict__ x, long long N, long long C,
                                      long long H, long long W, long long kh, long long kw, long long sh, long long sw,
                                      long long ph, long long pw, long long dh, long long dw, long long OH,
                                      long long OW) {
    const Geometry g{N, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, OH, OW};
    const long long total = N * C * H * W;
    const bool unit = sh == 1 && sw == 1;
    if (fits_32_bits(N * C * kh * kw * OH * OW, total)) {
        const unsigned int t = static_cast<unsigned int>(total);
        unit ? col2im_body<unsigned int, true>(cols, x, t, g) : col2im_body<unsigned int, false>(cols, x, t, g);
    } else {
        const unsigned long long t = static_cast<unsigned long long>(total);
        unit ? col2im_body<unsigned long long, true>(cols, x, t, g)
             : col2im_body<unsigned long long, false>(cols, x, t, g);
    }
}
