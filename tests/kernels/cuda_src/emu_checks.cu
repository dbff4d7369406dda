// Test-only kernels exercising the CUDA emulator (tests/kernels/test_cuda_emu.py).
#include "common.cuh"

// Tiled reduction: each block sums its grid-stride share of x in static shared memory.
extern "C" __global__ void block_sum_f32(const float* __restrict__ x, float* __restrict__ partial, long long n) {
    __shared__ float tile[256];
    float acc = 0.0f;
    GPUNET_GRID_STRIDE_LOOP(i, n) acc += x[i];
    tile[threadIdx.x] = acc;
    __syncthreads();
    for (unsigned int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) tile[threadIdx.x] += tile[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = tile[0];
}

// Each block reverses its tile of x through dynamic shared memory (the last tile may be short).
extern "C" __global__ void reverse_tiles_f32(const float* x, float* y, int n) {
    GPUNET_DYNAMIC_SHARED(float, tile);
    const long long start = static_cast<long long>(blockIdx.x) * blockDim.x;
    const long long len = min(static_cast<long long>(blockDim.x), n - start);
    if (threadIdx.x < len) tile[threadIdx.x] = x[start + threadIdx.x];
    __syncthreads();
    if (threadIdx.x < len) y[start + threadIdx.x] = tile[len - 1 - threadIdx.x];
}

// Histogram, total and maximum with atomics over a 2-D grid of 2-D blocks.
extern "C" __global__ void atomic_stats(const int* values, long long n, int* histogram, int bins,
                                        float* total, int* maximum) {
    const long long threads_per_block = static_cast<long long>(blockDim.x) * blockDim.y;
    const long long block = static_cast<long long>(blockIdx.y) * gridDim.x + blockIdx.x;
    const long long i = block * threads_per_block + threadIdx.y * blockDim.x + threadIdx.x;
    if (i < n) {
        atomicAdd(&histogram[values[i] % bins], 1);
        atomicAdd(total, static_cast<float>(values[i]));
        atomicMax(maximum, values[i]);
    }
}

// Typed scalar parameters, for the argument checks.
extern "C" __global__ void axpy_f32(float alpha, const float* x, float* y, int n, double beta, bool flag) {
    GPUNET_GRID_STRIDE_LOOP(i, n) y[i] = alpha * x[i] + static_cast<float>(beta) * y[i] + (flag ? 1.0f : 0.0f);
}

// Bug: only half of the threads reach the barrier.
extern "C" __global__ void divergent_sync(float* y) {
    if (threadIdx.x < blockDim.x / 2) __syncthreads();
    y[threadIdx.x] = 1.0f;
}

// Bug: thread 0 waits for a flag that thread 1 sets only after a barrier thread 0 never reaches.
extern "C" __global__ void spin_deadlock(int* flag) {
    volatile int* f = flag;
    if (threadIdx.x == 0) {
        while (*f == 0) {
        }
    }
    __syncthreads();
    if (threadIdx.x == 1) *f = 1;
}

// Bug: writes one element past the end (i <= n).
extern "C" __global__ void write_one_past_end(float* y, long long n) {
    const long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i <= n) y[i] = 2.0f;
}

// Bug: like reverse_tiles_f32 but without the barrier between the shared-memory write and read.
extern "C" __global__ void reverse_tiles_no_sync_f32(const float* x, float* y, int n) {
    GPUNET_DYNAMIC_SHARED(float, tile);
    const long long start = static_cast<long long>(blockIdx.x) * blockDim.x;
    const long long len = min(static_cast<long long>(blockDim.x), n - start);
    if (threadIdx.x < len) tile[threadIdx.x] = x[start + threadIdx.x];
    if (threadIdx.x < len) y[start + threadIdx.x] = tile[len - 1 - threadIdx.x];
}

// Every thread of a 3-D grid of 3-D blocks writes its six coordinates at its global rank.
extern "C" __global__ void thread_coordinates(int* out) {
    const long long block = (static_cast<long long>(blockIdx.z) * gridDim.y + blockIdx.y) * gridDim.x + blockIdx.x;
    const long long thread = (static_cast<long long>(threadIdx.z) * blockDim.y + threadIdx.y) * blockDim.x + threadIdx.x;
    int* o = out + 6 * (block * blockDim.x * blockDim.y * blockDim.z + thread);
    o[0] = blockIdx.x; o[1] = blockIdx.y; o[2] = blockIdx.z;
    o[3] = threadIdx.x; o[4] = threadIdx.y; o[5] = threadIdx.z;
}

// The math functions of the shim: y[8 * i + k] for the k-th function of x[i] (x > 0).
extern "C" __global__ void math_functions(const float* x, float* y, int n) {
    GPUNET_GRID_STRIDE_LOOP(i, n) {
        const float v = x[i];
        float* o = y + 8 * i;
        o[0] = expf(v); o[1] = logf(v); o[2] = tanhf(v); o[3] = __expf(-v);
        o[4] = rsqrtf(v); o[5] = fmaxf(v, 1.0f); o[6] = gpunet::sigmoid(v); o[7] = __fdividef(1.0f, v);
    }
}
