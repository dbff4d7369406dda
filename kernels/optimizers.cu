// Fused optimizer steps: SGD (momentum, dampening, Nesterov, weight decay, maximize) and Adam / AdamW
// (AMSGrad, maximize, bias correction), float32, one launch per parameter, elementwise (grid-stride).
// Reference: gpunet/backend/numpy_kernels/optimizers.py. Performance model: docs/kernels.md.
//
// Bit-for-bit with the reference: every element goes through the same float32 operations in the same
// order as the NumPy reference's whole-array operations, and every hyper-parameter arrives as the float32
// the reference's NumPy operations round it to (the host computes products such as lr / (1 - beta1^t) in
// double first, as the reference does in Python). Products and sums use __fmul_rn / __fadd_rn, which the
// compiler never contracts into a fused multiply-add (NVRTC contracts a * b + c by default, NumPy never
// does); division and sqrtf are IEEE-rounded under NVRTC's defaults (-prec-div, -prec-sqrt).
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

}  // namespace

// Plain SGD (momentum = 0): param -= lr * d.
extern "C" __global__ void sgd_update_f32(float* __restrict__ param, const float* __restrict__ grad, long long n,
                                          float lr, float weight_decay, int maximize) {
    GPUNET_GRID_STRIDE_LOOP(i, n) {
        const float d = signed_decayed_grad(param[i], grad[i], weight_decay, maximize);
        param[i] = sub_rn(param[i], mul_rn(d, lr));
    }
}

// SGD with momentum: buf = d on the first step, else buf = momentum * buf + (1 - dampening) * d;
// param -= lr * (nesterov ? d + momentum * buf : buf). `one_minus_dampening` is float32(1 - dampening).
extern "C" __global__ void sgd_momentum_update_f32(float* __restrict__ param, const float* __restrict__ grad,
                                                   float* __restrict__ momentum_buffer, long long n, float lr,
                                                   float momentum, float one_minus_dampening, float weight_decay,
                                                   int nesterov, int maximize, int first_step) {
    GPUNET_GRID_STRIDE_LOOP(i, n) {
        const float p = param[i];
        const float d = signed_decayed_grad(p, grad[i], weight_decay, maximize);
        const float b = first_step ? d : add_rn(mul_rn(momentum_buffer[i], momentum), mul_rn(d, one_minus_dampening));
        momentum_buffer[i] = b;
        const float direction = nesterov ? add_rn(mul_rn(b, momentum), d) : b;
        param[i] = sub_rn(p, mul_rn(direction, lr));
    }
}

namespace {

// One Adam step of element i. The scalars are the reference's, rounded to float32 on the host:
// param_scale = 1 - lr * weight_decay (AdamW; 1 when not decoupled), bias_correction2_sqrt =
// sqrt(1 - beta2^step), step_size = lr / (1 - beta1^step). l2_decay is weight_decay for Adam, 0 for AdamW.
template <bool AMSGRAD>
__device__ __forceinline__ void adam_element(long long i, float* __restrict__ param, const float* __restrict__ grad,
                                             float* __restrict__ exp_avg, float* __restrict__ exp_avg_sq,
                                             float* __restrict__ max_exp_avg_sq, float beta1, float one_minus_beta1,
                                             float beta2, float one_minus_beta2, float eps, float param_scale,
                                             float l2_decay, float bias_correction2_sqrt, float step_size,
                                             int maximize) {
    float p = param[i];
    if (param_scale != 1.0f) p = mul_rn(p, param_scale);
    const float g = signed_decayed_grad(p, grad[i], l2_decay, maximize);
    const float m = add_rn(mul_rn(exp_avg[i], beta1), mul_rn(g, one_minus_beta1));
    const float v = add_rn(mul_rn(exp_avg_sq[i], beta2), mul_rn(mul_rn(g, g), one_minus_beta2));
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    float second = v;
    if (AMSGRAD) {
        second = gpunet::MaxOp()(max_exp_avg_sq[i], v);  // NaN-propagating, as numpy.maximum
        max_exp_avg_sq[i] = second;
    }
    const float denom = add_rn(sqrtf(second) / bias_correction2_sqrt, eps);
    param[i] = sub_rn(p, mul_rn(m / denom, step_size));
}

}  // namespace

// Adam / AdamW without AMSGrad: updates param, exp_avg, exp_avg_sq in place.
extern "C" __global__ void adam_update_f32(float* __restrict__ param, const float* __restrict__ grad,
                                           float* __restrict__ exp_avg, float* __restrict__ exp_avg_sq, long long n,
                                           float beta1, float one_minus_beta1, float beta2, float one_minus_beta2,
                                           float eps, float param_scale, float l2_decay, float bias_correction2_sqrt,
                                           float step_size, int maximize) {
    GPUNET_GRID_STRIDE_LOOP(i, n) {
        adam_element<false>(i, param, grad, exp_avg, exp_avg_sq, nullptr, beta1, one_minus_beta1, beta2,
                            one_minus_beta2, eps, param_scale, l2_decay, bias_correction2_sqrt, step_size, maximize);
    }
}

// Adam / AdamW with AMSGrad: also keeps max_exp_avg_sq = max(max_exp_avg_sq, exp_avg_sq) and divides by it.
extern "C" __global__ void adam_amsgrad_update_f32(float* __restrict__ param, const float* __restrict__ grad,
                                                   float* __restrict__ exp_avg, float* __restrict__ exp_avg_sq,
                                                   float* __restrict__ max_exp_avg_sq, long long n, float beta1,
                                                   float one_minus_beta1, float beta2, float one_minus_beta2,
                                                   float eps, float param_scale, float l2_decay,
                                                   float bias_correction2_sqrt, float step_size, int maximize) {
    GPUNET_GRID_STRIDE_LOOP(i, n) {
        adam_element<true>(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, beta1, one_minus_beta1, beta2,
                           one_minus_beta2, eps, param_scale, l2_decay, bias_correction2_sqrt, step_size, maximize);
    }
}
