// Pooling family: 2-D max pooling (with argmax indices) and average pooling, forward and backward (float32).
// Reference: gpunet/backend/numpy_kernels/pool.py. Performance model: docs/kernels.md.
//
// Tensors are viewed as planes: x (P, H, W) and y (P, OH, OW) with P = N * C, C-contiguous. Forward kernels run
// one thread per output element (grid-stride); backward kernels are gathers, one thread per input element that
// sums the outputs whose window holds it (found by a search bounded by the kernel size), so there are no atomics
// and the result is deterministic. Window of output (oh, ow): rows oh * sh - ph + i * dh for i < kh, columns
// likewise; positions outside the input are padding. 1-D pooling is the H = 1 case.
#include "common.cuh"

namespace {

struct Geometry {  // one pooling problem; `plane` and `out_plane` are H * W and OH * OW
    long long H, W, OH, OW, kh, kw, sh, sw, ph, pw, dh, dw;
};

// The first of the window positions start, start + d, ... that is >= 0 (may be >= the input size).
__device__ __forceinline__ long long first_inside(long long start, long long d) {
    return start >= 0 ? start : start + gpunet::ceil_div(-start, d) * d;
}

// Calls f(o) for each output index o (along one axis) whose window holds input position i, i.e. every
// o = (i + p - k * d) / s with 0 <= k < kernel, exact division and 0 <= o < out: at most `kernel` candidates.
template <typename F>
__device__ __forceinline__ void for_each_window(long long i, long long kernel, long long s, long long p, long long d,
                                                long long out, F f) {
    for (long long k = 0; k < kernel; ++k) {
        const long long t = i + p - k * d;
        if (t < 0) break;  // t only decreases with k
        if (t % s != 0) continue;
        const long long o = t / s;
        if (o < out) f(o);
    }
}

// Divisor of average-pooling window (oh, ow), as PyTorch: the window clipped to the padded input when
// count_include_pad, else to the input itself; `divisor` > 0 overrides it. Writes the clipped input range.
__device__ __forceinline__ float avg_divisor(const Geometry& g, long long oh, long long ow, long long count_include_pad,
                                            long long divisor, long long& h0, long long& h1, long long& w0,
                                            long long& w1) {
    h0 = oh * g.sh - g.ph;
    w0 = ow * g.sw - g.pw;
    h1 = h0 + g.kh < g.H + g.ph ? h0 + g.kh : g.H + g.ph;
    w1 = w0 + g.kw < g.W + g.pw ? w0 + g.kw : g.W + g.pw;
    const long long padded = (h1 - h0) * (w1 - w0);
    h0 = h0 > 0 ? h0 : 0;
    w0 = w0 > 0 ? w0 : 0;
    h1 = h1 < g.H ? h1 : g.H;
    w1 = w1 < g.W ? w1 : g.W;
    if (divisor > 0) return static_cast<float>(divisor);
    return static_cast<float>(count_include_pad ? padded : (h1 - h0) * (w1 - w0));
}

}  // namespace

// y[p, oh, ow] = max of x over the window, argmax[p, oh, ow] = its flat index ih * W + iw in the plane (PyTorch's
// return_indices). As PyTorch: the first maximum wins, a NaN wins over any number (the last NaN of the window),
// and a window of -inf (or of padding only) reports its first position inside the input.
extern "C" __global__ void max_pool2d_forward_f32(const float* __restrict__ x, float* __restrict__ y,
                                                  long long* __restrict__ argmax, long long planes, long long H,
                                                  long long W, long long OH, long long OW, long long kh, long long kw,
                                                  long long sh, long long sw, long long ph, long long pw, long long dh,
                                                  long long dw) {
    GPUNET_GRID_STRIDE_LOOP(o, planes * OH * OW) {
        const long long ow = o % OW;
        const long long oh = (o / OW) % OH;
        const long long p = o / (OW * OH);
        const float* xp = x + p * H * W;
        const long long h_start = oh * sh - ph, w_start = ow * sw - pw;
        const long long h_end = h_start + (kh - 1) * dh + 1 < H ? h_start + (kh - 1) * dh + 1 : H;
        const long long w_end = w_start + (kw - 1) * dw + 1 < W ? w_start + (kw - 1) * dw + 1 : W;
        const long long h0 = first_inside(h_start, dh), w0 = first_inside(w_start, dw);
        float best = -gpunet::inf_f32();
        long long best_index = h0 * W + w0;
        for (long long ih = h0; ih < h_end; ih += dh) {
            for (long long iw = w0; iw < w_end; iw += dw) {
                const float v = xp[ih * W + iw];
                if (v > best || v != v) {
                    best = v;
                    best_index = ih * W + iw;
                }
            }
        }
        y[o] = best;
        argmax[o] = best_index;
    }
}

// gx[p, ih, iw] = sum of gy[p, oh, ow] over the outputs whose window holds (ih, iw) and whose argmax is it.
// One thread per input element; visits at most kh * kw outputs.
extern "C" __global__ void max_pool2d_backward_f32(const float* __restrict__ gy, const long long* __restrict__ argmax,
                                                   float* __restrict__ gx, long long planes, long long H, long long W,
                                                   long long OH, long long OW, long long kh, long long kw,
                                                   long long sh, long long sw, long long ph, long long pw,
                                                   long long dh, long long dw) {
    GPUNET_GRID_STRIDE_LOOP(i, planes * H * W) {
        const long long iw = i % W;
        const long long ih = (i / W) % H;
        const long long p = i / (W * H);
        const long long here = ih * W + iw;
        const float* gyp = gy + p * OH * OW;
        const long long* ap = argmax + p * OH * OW;
        float sum = 0.0f;
        for_each_window(ih, kh, sh, ph, dh, OH, [&](long long oh) {
            for_each_window(iw, kw, sw, pw, dw, OW, [&](long long ow) {
                if (ap[oh * OW + ow] == here) sum += gyp[oh * OW + ow];
            });
        });
        gx[i] = sum;
    }
}

// y[p, oh, ow] = sum of x over the window / divisor (see avg_divisor); 0 for a window of padding only.
extern "C" __global__ void avg_pool2d_forward_f32(const float* __restrict__ x, float* __restrict__ y, long long planes,
                                                  long long H, long long W, long long OH, long long OW, long long kh,
                                                  long long kw, long long sh, long long sw, long long ph, long long pw,
                                                  long long count_include_pad, long long divisor) {
    const Geometry g{H, W, OH, OW, kh, kw, sh, sw, ph, pw, 1, 1};
    GPUNET_GRID_STRIDE_LOOP(o, planes * OH * OW) {
        const long long ow = o % OW;
        const long long oh = (o / OW) % OH;
        const long long p = o / (OW * OH);
        long long h0, h1, w0, w1;
        const float div = avg_divisor(g, oh, ow, count_include_pad, divisor, h0, h1, w0, w1);
        const float* xp = x + p * H * W;
        float sum = 0.0f;
        for (long long ih = h0; ih < h1; ++ih)
            for (long long iw = w0; iw < w1; ++iw) sum += xp[ih * W + iw];
        y[o] = (h0 < h1 && w0 < w1) ? sum / div : 0.0f;
    }
}

// gx[p, ih, iw] = sum of gy[p, oh, ow] / divisor(oh, ow) over the outputs whose window holds (ih, iw): the adjoint
// of avg_pool2d_forward_f32, one thread per input element.
extern "C" __global__ void avg_pool2d_backward_f32(const float* __restrict__ gy, float* __restrict__ gx,
                                                   long long planes, long long H, long long W, long long OH,
                                                   long long OW, long long kh, long long kw, long long sh,
                                                   long long sw, long long ph, long long pw,
                                                   long long count_include_pad, long long divisor) {
    const Geometry g{H, W, OH, OW, kh, kw, sh, sw, ph, pw, 1, 1};
    GPUNET_GRID_STRIDE_LOOP(i, planes * H * W) {
        const long long iw = i % W;
        const long long ih = (i / W) % H;
        const long long p = i / (W * H);
        const float* gyp = gy + p * OH * OW;
        float sum = 0.0f;
        for_each_window(ih, kh, sh, ph, 1, OH, [&](long long oh) {
            for_each_window(iw, kw, sw, pw, 1, OW, [&](long long ow) {
                long long h0, h1, w0, w1;
                sum += gyp[oh * OW + ow] / avg_divisor(g, oh, ow, count_include_pad, divisor, h0, h1, w0, w1);
            });
        });
        gx[i] = sum;
    }
}
