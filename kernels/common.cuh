// Shared helpers for every gpunet kernel file (kernels/*.cu).
//
// Conventions: entry points are `extern "C" __global__`; sizes and indices are `long long`
// (64-bit, so tensors beyond 2^31 elements work); float32 first. The same source compiles with
// NVRTC (what CuPy uses) and with g++ under gpunet.testing.cuda_emu, which defines
// GPUNET_CUDA_EMU. No standard headers: NVRTC has none.
#pragma once

// Every element index i < n handled by this thread, for any grid (1-D) and any n.
#define GPUNET_GRID_STRIDE_LOOP(i, n)                                                   \
    for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;   \
         i < static_cast<long long>(n); i += static_cast<long long>(blockDim.x) * gridDim.x)

// Every row < n handled by this block (one block per row, any grid size).
#define GPUNET_BLOCK_STRIDE_LOOP(row, n) \
    for (long long row = blockIdx.x; row < static_cast<long long>(n); row += gridDim.x)

// Every column j < n of the current row handled by this thread (blockDim.x threads per row).
#define GPUNET_THREAD_STRIDE_LOOP(j, n) \
    for (long long j = threadIdx.x; j < static_cast<long long>(n); j += blockDim.x)

// Dynamic shared memory (launch argument `shared_mem`, in bytes) viewed as an array of T.
#if defined(GPUNET_CUDA_EMU)
#define GPUNET_DYNAMIC_SHARED(T, name) \
    T* name = reinterpret_cast<T*>(::cuda_emu::dynamic_shared_memory())
#else
#define GPUNET_DYNAMIC_SHARED(T, name)                                        \
    extern __shared__ __align__(16) unsigned char gpunet_dynamic_shared_[]; \
    T* name = reinterpret_cast<T*>(gpunet_dynamic_shared_)
#endif

// Largest block any gpunet kernel is launched with (the CUDA limit).
#define GPUNET_MAX_THREADS 1024

namespace gpunet {

__device__ __forceinline__ float inf_f32() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float nan_f32() { return __int_as_float(0x7fffffff); }

__device__ __forceinline__ long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

__device__ __forceinline__ float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

// Reduce `value` over each group of `group` consecutive threads of a 1-D block (group divides blockDim.x) with
// `op` (associative, commutative) using `scratch`, shared memory of at least blockDim.x elements. Every thread of
// the block must call it (it synchronises); every thread gets its group's result, and `scratch` is free again on
// return. Works for any group size, power of two or not. Kernels that give each row a group of threads (a warp
// for a narrow row) reduce all rows of the block at once with it.
template <typename T, typename Op>
__device__ __forceinline__ T group_reduce(T value, T* scratch, unsigned int group, Op op) {
    const unsigned int tid = threadIdx.x;
    const unsigned int lane = tid % group;
    scratch[tid] = value;
    __syncthreads();
    unsigned int half = 1;
    while (half < group) half <<= 1;
    for (half >>= 1; half > 0; half >>= 1) {
        if (lane < half && lane + half < group) scratch[tid] = op(scratch[tid], scratch[tid + half]);
        __syncthreads();
    }
    T result = scratch[tid - lane];
    __syncthreads();
    return result;
}

// Runs body(row, lane, active) for every row < rows, `group` consecutive threads of a block per row (group divides
// blockDim.x; lane = the thread's place in its group), the groups of all blocks striding over the rows (any grid).
// Every thread of the block runs every iteration, so body may call group_reduce: a group past the last row gets
// active = false and row = rows - 1 (a valid row to read, not to write).
template <typename Body>
__device__ __forceinline__ void for_each_row_group(long long rows, unsigned int group, Body body) {
    const long long per_block = blockDim.x / group, slot = threadIdx.x / group;
    const long long lane = threadIdx.x % group;
    for (long long first = blockIdx.x * per_block; first < rows; first += gridDim.x * per_block) {
        const long long row = first + slot;
        body(row < rows ? row : rows - 1, lane, row < rows);
    }
}

// group_reduce over the whole block.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T value, T* scratch, Op op) {
    return group_reduce(value, scratch, blockDim.x, op);
}

struct SumOp {
    template <typename T>
    __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

struct MaxOp {  // NaN-propagating, unlike fmaxf
    __device__ __forceinline__ float operator()(float a, float b) const { return (a > b || a != a) ? a : b; }
};

}  // namespace gpunet
