// Pooling family: 2-D max pooling (with argmax indices) and average pooling, forward and backward (float32).
// Reference: gpunet/backend/numpy_kernels/pool.py. Performance model: docs/kernels.md.
//
// Tensors are viewed as planes: x (P, H, W) and y (P, OH, OW) with P = N * C, C-contiguous. Forward kernels run
// one thread per output element (grid-stride); backward kernels are gathers, one thread per input element that
// sums the outputs whose window holds it (found by a search bounded by the kernel size), so there are no atomics
// and the result is deterministic. Window of output (oh, ow): rows oh * sh - ph + i * dh for i < kh, columns
// likewise; positions outside the input are padding. 1-D pooling is the H = 1 case.
//
// Index math: every kernel has two entry points, the 64-bit one (`*_f32`, long long sizes) and a 32-bit one
// (`*_i32_f32`, int sizes) for tensors whose every index, grid-stride step included, fits in an int: a 64-bit
// division or remainder is a long PTX sequence, and the backward does several per element. The launcher
// (gpunet/backend/launchers/pool.py) chooses per launch.
#include "common.cuh"

namespace {

// Every element index i < n handled by this thread, counted in I (int or long long; the launcher guarantees that
// n - 1 + gridDim.x * blockDim.x fits in I).
#define POOL_GRID_STRIDE_LOOP(I, i, n)                                                            \
    for (I i = static_cast<I>(blockIdx.x) * static_cast<I>(blockDim.x) + static_cast<I>(threadIdx.x); i < (n); \
         i += static_cast<I>(blockDim.x) * static_cast<I>(gridDim.x))

template <typename I>
struct Geometry {  // one pooling problem
    I H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw;
};

// Splits flat index i of (planes, rows, cols) into (plane, row, col): one division and one multiply-subtract per
// coordinate.
template <typename I>
__device__ __forceinline__ void split_index(I i, I rows, I cols, I& plane, I& row, I& col) {
    const I q = i / cols;
    col = i - q * cols;
    plane = q / rows;
    row = q - plane * rows;
}

// The first of the window positions start, start + d, ... that is >= 0 (may be >= the input size).
template <typename I>
__device__ __forceinline__ I first_inside(I start, I d) {
    return start >= 0 ? start : start + (-start + d - 1) / d * d;
}

// Calls f(o) for each output index o (along one axis) whose window holds input position i, i.e. every
// o = (i + p - k * d) / s with 0 <= k < kernel, exact division and 0 <= o < out: at most `kernel` candidates.
template <typename I, typename F>
__device__ __forceinline__ void for_each_window(I i, I kernel, I s, I p, I d, I out, F f) {
    for (I k = 0; k < kernel; ++k) {
        const I t = i + p - k * d;
        if (t < 0) break;  // t only decreases with k
        const I o = t / s;
        if (o * s != t) continue;
        if (o < out) f(o);
    }
}

// Divisor of average-pooling window (oh, ow), as PyTorch: the window clipped to the padded input when
// count_include_pad, else to the input itself; `divisor` > 0 overrides it. Writes the clipped input range.
template <typename I>
__device__ __forceinline__ float avg_divisor(const Geometry<I>& g, I oh, I ow, I count_include_pad, I divisor, I& h0,
                                            I& h1, I& w0, I& w1) {
    h0 = oh * g.sh - g.ph;
    w0 = ow * g.sw - g.pw;
    h1 = h0 + g.kh < g.H + g.ph ? h0 + g.kh : g.H + g.ph;
    w1 = w0 + g.kw < g.W + g.pw ? w0 + g.kw : g.W + g.pw;
    const I padded = (h1 - h0) * (w1 - w0);
    h0 = h0 > 0 ? h0 : 0;
    w0 = w0 > 0 ? w0 : 0;
    h1 = h1 < g.H ? h1 : g.H;
    w1 = w1 < g.W ? w1 : g.W;
    if (divisor > 0) return static_cast<float>(divisor);
    return static_cast<float>(count_include_pad ? padded : (h1 - h0) * (w1 - w0));
}

// y[p, oh, ow] = max of x over the window, argmax[p, oh, ow] = its flat index ih * W + iw in the plane (PyTorch's
// return_indices). As PyTorch: the first maximum wins, a NaN wins over any number (the last NaN of the window),
// and a window of -inf (or of padding only) reports its first position inside the input.
template <typename I>
__device__ __forceinline__ void max_pool_forward(const float* __restrict__ x, float* __restrict__ y,
                                                 long long* __restrict__ argmax, I planes, const Geometry<I> g) {
    POOL_GRID_STRIDE_LOOP(I, o, planes * g.OH * g.OW) {
        I p, oh, ow;
        split_index(o, g.OH, g.OW, p, oh, ow);
        const float* xp = x + p * g.H * g.W;
        const I h_start = oh * g.sh - g.ph, w_start = ow * g.sw - g.pw;
        const I h_end = h_start + (g.kh - 1) * g.dh + 1 < g.H ? h_start + (g.kh - 1) * g.dh + 1 : g.H;
        const I w_end = w_start + (g.kw - 1) * g.dw + 1 < g.W ? w_start + (g.kw - 1) * g.dw + 1 : g.W;
        const I h0 = first_inside(h_start, g.dh), w0 = first_inside(w_start, g.dw);
        float best = -gpunet::inf_f32();
        I best_index = h0 * g.W + w0;
        for (I ih = h0; ih < h_end; ih += g.dh) {
            for (I iw = w0; iw < w_end; iw += g.dw) {
                const float v = xp[ih * g.W + iw];
                if (v > best || v != v) {
                    best = v;
                    best_index = ih * g.W + iw;
                }
            }
        }
        y[o] = best;
        argmax[o] = best_index;
    }
}

// gx[p, ih, iw] = sum of gy[p, oh, ow] over the outputs whose window holds (ih, iw) and whose argmax is it.
// One thread per input element; visits at most kh * kw outputs.
template <typename I>
__device__ __forceinline__ void max_pool_backward(const float* __restrict__ gy, const long long* __restrict__ argmax,
                                                  float* __restrict__ gx, I planes, const Geometry<I> g) {
    POOL_GRID_STRIDE_LOOP(I, i, planes * g.H * g.W) {
        I p, ih, iw;
        split_index(i, g.H, g.W, p, ih, iw);
        const long long here = ih * g.W + iw;
        const float* gyp = gy + p * g.OH * g.OW;
        const long long* ap = argmax + p * g.OH * g.OW;
        float sum = 0.0f;
        for_each_window(ih, g.kh, g.sh, g.ph, g.dh, g.OH, [&](I oh) {
            for_each_window(iw, g.kw, g.sw, g.pw, g.dw, g.OW, [&](I ow) {
                if (ap[oh * g.OW + ow] == here) sum += gyp[oh * g.OW + ow];
            });
        });
        gx[i] = sum;
    }
}

// y[p, oh, ow] = sum of x over the window / divisor (see avg_divisor); 0 for a window of padding only.
template <typename I>
__device__ __forceinline__ void avg_pool_forward(const float* __restrict__ x, float* __restrict__ y, I planes,
                                                 const Geometry<I> g, I count_include_pad, I divisor) {
    POOL_GRID_STRIDE_LOOP(I, o, planes * g.OH * g.OW) {
        I p, oh, ow;
        split_index(o, g.OH, g.OW, p, oh, ow);
        I h0, h1, w0, w1;
        const float div = avg_divisor(g, oh, ow, count_include_pad, divisor, h0, h1, w0, w1);
        const float* xp = x + p * g.H * g.W;
        float sum = 0.0f;
        for (I ih = h0; ih < h1; ++ih)
            for (I iw = w0; iw < w1; ++iw) sum += xp[ih * g.W + iw];
        y[o] = (h0 < h1 && w0 < w1) ? sum / div : 0.0f;
    }
}

// gx[p, ih, iw] = sum of gy[p, oh, ow] / divisor(oh, ow) over the outputs whose window holds (ih, iw): the adjoint
// of avg_pool_forward, one thread per input element.
template <typename I>
__device__ __forceinline__ void avg_pool_backward(const float* __restrict__ gy, float* __restrict__ gx, I planes,
                                                  const Geometry<I> g, I count_include_pad, I divisor) {
    POOL_GRID_STRIDE_LOOP(I, i, planes * g.H * g.W) {
        I p, ih, iw;
        split_index(i, g.H, g.W, p, ih, iw);
        const float* gyp = gy + p * g.OH * g.OW;
        float sum = 0.0f;
        for_each_window(ih, g.kh, g.sh, g.ph, I(1), g.OH, [&](I oh) {
            for_each_window(iw, g.kw, g.sw, g.pw, I(1), g.OW, [&](I ow) {
                I h0, h1, w0, w1;
                sum += gyp[oh * g.OW + ow] / avg_divisor(g, oh, ow, count_include_pad, divisor, h0, h1, w0, w1);
            });
        });
        gx[i] = sum;
    }
}

}  // namespace

// The entry points (written out: the emulator reads their signatures from the source). x (planes, H, W),
// y (planes, OH, OW), argmax int64 like y. `_f32` takes long long sizes, `_i32_f32` int sizes.

extern "C" __global__ void max_pool2d_forward_f32(const float* __restrict__ x, float* __restrict__ y,
        long long* __restrict__ argmax, long long planes, long long H, long long W, long long OH, long long OW,
        long long kh, long long kw, long long sh, long long sw, long long ph, long long pw, long long dh,
        long long dw) {
    max_pool_forward<long long>(x, y, argmax, planes,
                                Geometry<long long>{H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw});
}

extern "C" __global__ void max_pool2d_backward_f32(const float* __restrict__ gy, const long long* __restrict__ argmax,
        float* __restrict__ gx, long long planes, long long H, long long W, long long OH, long long OW, long long kh,
        long long kw, long long sh, long long sw, long long ph, long long pw, long long dh, long long dw) {
    max_pool_backward<long long>(gy, argmax, gx, planes,
                                 Geometry<long long>{H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw});
}

extern "C" __global__ void avg_pool2d_forward_f32(const float* __restrict__ x, float* __restrict__ y,
        long long planes, long long H, long long W, long long OH, long long OW, long long kh, long long kw,
        long long sh, long long sw, long long ph, long long pw, long long count_include_pad, long long divisor) {
    avg_pool_forward<long long>(x, y, planes, Geometry<long long>{H, W, OH, OW, kh, kw, sh, sw, ph, pw, 1, 1},
            count_include_pad, divisor);
}

extern "C" __global__ void avg_pool2d_backward_f32(const float* __restrict__ gy, float* __restrict__ gx,
        long long planes, long long H, long long W, long long OH, long long OW, long long kh, long long kw,
        long long sh, long long sw, long long ph, long long pw, long long count_include_pad, long long divisor) {
    avg_pool_backward<long long>(gy, gx, planes, Geometry<long long>{H, W, OH, OW, kh, kw, sh, sw, ph, pw, 1, 1},
            count_include_pad, divisor);
}

extern "C" __global__ void max_pool2d_forward_i32_f32(const float* __restrict__ x, float* __restrict__ y,
        long long* __restrict__ argmax, int planes, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw,
        int ph, int pw, int dh, int dw) {
    max_pool_forward<int>(x, y, argmax, planes, Geometry<int>{H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw});
}

extern "C" __global__ void max_pool2d_backward_i32_f32(const float* __restrict__ gy,
        const long long* __restrict__ argmax, float* __restrict__ gx, int planes, int H, int W, int OH, int OW,
        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
    max_pool_backward<int>(gy, argmax, gx, planes, Geometry<int>{H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw});
}

extern "C" __global__ void avg_pool2d_forward_i32_f32(const float* __restrict__ x, float* __restrict__ y, int planes,
        int H, int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw, int count_include_pad,
        int divisor) {
    avg_pool_forward<int>(x, y, planes, Geometry<int>{H, W, OH, OW, kh, kw, sh, sw, ph, pw, 1, 1}, count_include_pad,
            divisor);
}

extern "C" __global__ void avg_pool2d_backward_i32_f32(const float* __restrict__ gy, float* __restrict__ gx,
        int planes, int H, int W, int OH, int OW, int kh, int kw, int sh, int sw, int ph, int pw,
        int count_include_pad, int divisor) {
    avg_pool_backward<int>(gy, gx, planes, Geometry<int>{H, W, OH, OW, kh, kw, sh, sw, ph, pw, 1, 1},
            count_include_pad, divisor);
}
