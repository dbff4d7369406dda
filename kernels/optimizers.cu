// Fused multi-tensor optimizer steps, float32: SGD (momentum, dampening, Nesterov, weight decay, maximize), Adam /
// AdamW (AMSGrad, bias correction), RMSprop (momentum, centered), Adagrad (lr decay) and Adadelta, PyTorch's rules.
// One launch updates every tensor of a parameter group (PyTorch's foreach/fused optimizers, llm.c): the launcher
// uploads a table of the tensors' addresses and sizes, the tensors are cut into chunks of `chunk` elements, and
// each block takes chunks (block-stride), finds the tensor a chunk belongs to by binary search in the table and
// updates its elements (thread-stride). Reference: gpunet/backend/references/optimizers.py. Performance model:
// docs/kernels.md.
//
// Bit for bit with the reference: every element goes through the same float32 operations in the same order as
// the NumPy reference's whole-array operations, and every hyper-parameter arrives as the float32 the reference's
// NumPy operations round it to (the host computes products such as lr / (1 - beta1^t) in double first, as the
// reference does in Python). Products and sums use __fmul_rn / __fadd_rn, which the compiler never contracts into
// a fused multiply-add (NVRTC contracts a * b + c by default, NumPy never does); division and sqrtf are
// IEEE-rounded under NVRTC's defaults (-prec-div, -prec-sqrt).
#include "common.cuh"

namespace {

#if defined(GPUNET_CUDA_EMU)
// g++ for x86-64 emits separate SSE multiplies and adds (no FMA without -mfma), which is IEEE rounding.
__device__ __forceinline__ float mul_rn(float a, float b) { return a * b; }
__device__ __forceinline__ float add_rn(float a, float b) { return a + b; }
#else
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
#endif
__device__ __forceinline__ float sub_rn(float a, float b) { return add_rn(a, -b); }

// (-g if maximize else g) + weight_decay * p, as the reference's _signed_decayed_grad.
__device__ __forceinline__ float signed_decayed_grad(float p, float g, float weight_decay, int maximize) {
    if (weight_decay != 0.0f) {
        const float d = mul_rn(p, weight_decay);
        return maximize ? sub_rn(d, g) : add_rn(d, g);
    }
    return maximize ? -g : g;
}

// a * scale_a + b * scale_b: a running average's update, as the reference's `a *= s; t *= u; a += t`.
__device__ __forceinline__ float blend(float a, float scale_a, float b, float scale_b) {
    return add_rn(mul_rn(a, scale_a), mul_rn(b, scale_b));
}

// The multi-tensor table (int64, built by gpunet/backend/launchers/optimizers.py) for T = `tensors` tensors:
// LISTS rows of T addresses (row l holds the l-th array of every tensor: param, grad, then the state buffers in
// the kernel's order; 0 for a buffer the step does not use), a row of T sizes, and T + 1 chunk offsets: tensor t
// owns chunks offsets[t] <= c < offsets[t + 1], chunk c covering its elements from (c - offsets[t]) * chunk.
// Every tensor has at least one element, so the offsets increase strictly. `body(arrays, i)` runs for element i
// of every tensor, with arrays[l] its tensor's array of list l.
template <int LISTS, typename Body>
__device__ __forceinline__ void for_each_element(const long long* __restrict__ table, int tensors, long long chunk,
                                                 Body body) {
    const long long* sizes = table + static_cast<long long>(LISTS) * tensors;
    const long long* offsets = sizes + tensors;
    const long long chunks = offsets[tensors];
    for (long long c = blockIdx.x; c < chunks; c += gridDim.x) {
        int lo = 0, hi = tensors - 1;  // the last t with offsets[t] <= c
        while (lo < hi) {
            const int mid = (lo + hi + 1) / 2;
            if (offsets[mid] <= c) lo = mid; else hi = mid - 1;
        }
        float* arrays[LISTS];
        for (int l = 0; l < LISTS; ++l) arrays[l] = reinterpret_cast<float*>(table[l * tensors + lo]);
        const long long begin = (c - offsets[lo]) * chunk;
        const long long end = begin + chunk < sizes[lo] ? begin + chunk : sizes[lo];
        for (long long i = begin + threadIdx.x; i < end; i += blockDim.x) body(arrays, i);
    }
}

}  // namespace

// SGD. Lists: param, grad, momentum_buffer (unused without momentum). d = signed_decayed_grad; with momentum,
// buf = d on the first step, else buf = momentum * buf + (1 - dampening) * d, and the direction is buf, or
// d + momentum * buf (Nesterov); p -= lr * direction. `one_minus_dampening` is float32(1 - dampening).
extern "C" __global__ void sgd_update_f32(const long long* __restrict__ table, int tensors, long long chunk, float lr,
                                          float momentum, float one_minus_dampening, float weight_decay,
                                          int use_momentum, int nesterov, int maximize, int first_step) {
    for_each_element<3>(table, tensors, chunk, [&](float* const* a, long long i) {
        const float p = a[0][i];
        const float d = signed_decayed_grad(p, a[1][i], weight_decay, maximize);
        float direction = d;
        if (use_momentum) {
            const float b = first_step ? d : blend(a[2][i], momentum, d, one_minus_dampening);
            a[2][i] = b;
            direction = nesterov ? add_rn(mul_rn(b, momentum), d) : b;
        }
        a[0][i] = sub_rn(p, mul_rn(direction, lr));
    });
}

// Adam / AdamW. Lists: param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq (unused without AMSGrad). The scalars are
// the reference's, rounded to float32 on the host: param_scale = 1 - lr * weight_decay (AdamW; 1 when not
// decoupled), l2_decay = weight_decay for Adam and 0 for AdamW, bias_correction2_sqrt = sqrt(1 - beta2^step),
// step_size = lr / (1 - beta1^step).
extern "C" __global__ void adam_update_f32(const long long* __restrict__ table, int tensors, long long chunk,
                                           float beta1, float one_minus_beta1, float beta2, float one_minus_beta2,
                                           float eps, float param_scale, float l2_decay, float bias_correction2_sqrt,
                                           float step_size, int amsgrad, int maximize) {
    for_each_element<5>(table, tensors, chunk, [&](float* const* a, long long i) {
        float p = a[0][i];
        if (param_scale != 1.0f) p = mul_rn(p, param_scale);
        const float g = signed_decayed_grad(p, a[1][i], l2_decay, maximize);
        const float m = blend(a[2][i], beta1, g, one_minus_beta1);
        const float v = blend(a[3][i], beta2, mul_rn(g, g), one_minus_beta2);
        a[2][i] = m;
        a[3][i] = v;
        float second = v;
        if (amsgrad) {
            second = gpunet::MaxOp()(a[4][i], v);  // NaN-propagating, as numpy.maximum
            a[4][i] = second;
        }
        const float denom = add_rn(sqrtf(second) / bias_correction2_sqrt, eps);
        a[0][i] = sub_rn(p, mul_rn(m / denom, step_size));
    });
}

// RMSprop. Lists: param, grad, square_avg, grad_avg (centered only), momentum_buffer (momentum only).
// v = alpha v + (1 - alpha) g^2; centered: a = a + (1 - alpha) (g - a), avg = sqrt(v - a^2), else sqrt(v);
// avg += eps; with momentum buf = momentum buf + g / avg, p -= lr buf; without, p -= lr (g / avg).
extern "C" __global__ void rmsprop_update_f32(const long long* __restrict__ table, int tensors, long long chunk,
                                              float lr, float alpha, float one_minus_alpha, float eps,
                                              float weight_decay, float momentum, int centered, int use_momentum,
                                              int maximize) {
    for_each_element<5>(table, tensors, chunk, [&](float* const* a, long long i) {
        const float p = a[0][i];
        const float g = signed_decayed_grad(p, a[1][i], weight_decay, maximize);
        const float v = blend(a[2][i], alpha, mul_rn(g, g), one_minus_alpha);
        a[2][i] = v;
        float avg;
        if (centered) {
            const float mean = a[3][i];
            const float updated = add_rn(mean, mul_rn(sub_rn(g, mean), one_minus_alpha));
            a[3][i] = updated;
            avg = sqrtf(sub_rn(v, mul_rn(updated, updated)));
        } else {
            avg = sqrtf(v);
        }
        avg = add_rn(avg, eps);
        if (use_momentum) {
            const float b = add_rn(mul_rn(a[4][i], momentum), g / avg);
            a[4][i] = b;
            a[0][i] = sub_rn(p, mul_rn(b, lr));
        } else {
            a[0][i] = sub_rn(p, mul_rn(g / avg, lr));
        }
    });
}

// Adagrad. Lists: param, grad, sum. sum += g^2; p -= clr * (g / (sqrt(sum) + eps)), where
// clr = lr / (1 + (step - 1) lr_decay) is formed on the host (one launch per distinct step).
extern "C" __global__ void adagrad_update_f32(const long long* __restrict__ table, int tensors, long long chunk,
                                              float clr, float weight_decay, float eps, int maximize) {
    for_each_element<3>(table, tensors, chunk, [&](float* const* a, long long i) {
        const float p = a[0][i];
        const float g = signed_decayed_grad(p, a[1][i], weight_decay, maximize);
        const float s = add_rn(a[2][i], mul_rn(g, g));
        a[2][i] = s;
        const float denom = add_rn(sqrtf(s), eps);
        a[0][i] = sub_rn(p, mul_rn(g / denom, clr));
    });
}

// Adadelta. Lists: param, grad, square_avg, acc_delta. v = rho v + (1 - rho) g^2;
// delta = sqrt(u + eps) / sqrt(v + eps) * g; u = rho u + (1 - rho) delta^2; p -= lr delta.
extern "C" __global__ void adadelta_update_f32(const long long* __restrict__ table, int tensors, long long chunk,
                                               float lr, float rho, float one_minus_rho, float eps,
                                               float weight_decay, int maximize) {
    for_each_element<4>(table, tensors, chunk, [&](float* const* a, long long i) {
        const float p = a[0][i];
        const float g = signed_decayed_grad(p, a[1][i], weight_decay, maximize);
        const float v = blend(a[2][i], rho, mul_rn(g, g), one_minus_rho);
        a[2][i] = v;
        const float delta = mul_rn(sqrtf(add_rn(a[3][i], eps)) / sqrtf(add_rn(v, eps)), g);
        a[3][i] = blend(a[3][i], rho, mul_rn(delta, delta), one_minus_rho);
        a[0][i] = sub_rn(p, mul_rn(delta, lr));
    });
}
