// CUDA built-ins for running a kernel file on the CPU (gpunet.backend.emulated).
//
// Force-included (g++ -include) ahead of the exact kernel source. Execution model:
// - the blocks of a launch run one after another; the threads of a block run as real,
//   concurrently scheduled OS threads taken from a pool that lives as long as the module;
// - __syncthreads() is a barrier among the threads of the block; each arrival records its
//   call site, so threads reaching different barriers (or one reaching the end of the
//   kernel) are reported at once, and a barrier that waits longer than the launch timeout
//   is reported as a deadlock;
// - __shared__ is static storage in the section "gpunet_shared", correct because blocks of a
//   launch never overlap; the whole section is refilled with 0xFF bytes (NaN as float, -1 as an
//   integer) before every block, as a GPU's shared memory holds garbage at a block's start;
// - dynamic shared memory (GPUNET_DYNAMIC_SHARED in kernels/common.cuh) is an exactly
//   sized heap buffer, refilled with 0xFF bytes before every block;
// - mode "fibers" resumes the threads of a block in index order between barriers; mode
//   "shuffled" in a pseudo-random order drawn per block and per barrier (repeatable), so a
//   thread reading what another writes without a barrier between sees poison or stale data;
// - with `ftz` the launch runs with the SSE flush-to-zero and denormals-are-zero flags set, as
//   CuPy's -ftz=true does for float32 on a GPU (here double arithmetic is flushed too).
#pragma once
#define GPUNET_CUDA_EMU 1

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <climits>
#include <sys/mman.h>
#include <ucontext.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __shared__ static __attribute__((section("gpunet_shared")))
#define __constant__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
#define GPUNET_EMU_EXPORT extern "C" __attribute__((visibility("default")))

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

extern "C" char __start_gpunet_shared[] __attribute__((weak));  // defined by the linker when the
extern "C" char __stop_gpunet_shared[] __attribute__((weak));   // kernel file has __shared__ data

namespace cuda_emu {

struct Abort {};

inline void poison_shared() {
    if (__start_gpunet_shared != nullptr && __stop_gpunet_shared > __start_gpunet_shared)
        std::memset(__start_gpunet_shared, 0xFF, static_cast<size_t>(__stop_gpunet_shared - __start_gpunet_shared));
}

constexpr unsigned int kFlushToZero = 0x8040;  // MXCSR: FTZ (bit 15) and DAZ (bit 6)

inline unsigned int read_mxcsr() {
    unsigned int value;
    asm volatile("stmxcsr %0" : "=m"(value));
    return value;
}

inline void write_mxcsr(unsigned int value) { asm volatile("ldmxcsr %0" : : "m"(value)); }

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
// Minimal fiber switch (callee-saved registers, MXCSR and x87 control word), ~100x cheaper than
// swapcontext, which makes a system call. ASan builds use swapcontext, which ASan understands.
#define GPUNET_EMU_ASM_SWITCH 1
extern "C" void gpunet_emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .p2align 4
    .type gpunet_emu_switch,@function
gpunet_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size gpunet_emu_switch, .-gpunet_emu_switch
)");
#else
#define GPUNET_EMU_ASM_SWITCH 0
#endif  // thrown inside kernel threads to unwind them after a launch error

struct Site {
    const char* file;
    int line;  // -1: end of the kernel
};

inline long futex(std::atomic<uint32_t>* addr, int op, uint32_t val, const timespec* ts) {
    return syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), op, val, ts, nullptr, 0);
}

class Runtime;
Runtime& runtime();

}  // namespace cuda_emu

thread_local dim3 threadIdx;
thread_local dim3 blockIdx;
dim3 blockDim;
dim3 gridDim;
constexpr int warpSize = 32;

namespace cuda_emu {

class Runtime {
public:
    // Launch state, written by the launching thread before workers are released.
    void (*entry)(void**) = nullptr;
    void** args = nullptr;
    unsigned int nthreads = 0;
    unsigned long long nblocks = 0;
    double timeout_s = 10.0;
    int spin_limit = 0;  // yields before sleeping at a barrier (0 when threads outnumber cores)
    std::string kernel;
    unsigned char* dyn_smem = nullptr;
    size_t dyn_smem_bytes = 0;

    // Barrier state.
    std::atomic<uint32_t> arrived{0};
    std::atomic<uint32_t> barrier_gen{0};
    std::vector<Site> sites;
    unsigned long long current_block = 0;

    // Incremented whenever a thread reaches a barrier or finishes (read by watchdogs).
    std::atomic<unsigned long long> progress{0};

    // Error state.
    std::atomic<bool> aborted{false};
    std::mutex error_mutex;
    std::string error;
    bool broken = false;

    // Fiber state (mode "fibers": the threads of a block are coroutines of the launching thread).
    bool fibers = false;
    bool shuffled = false;  // resume them in a pseudo-random order
    bool ftz = false;       // flush subnormal floats to zero
    char* stacks = nullptr;  // nthreads stacks of kFiberStack bytes, mapped lazily
    size_t stack_count = 0;
    std::vector<unsigned char> done;
    static constexpr size_t kFiberStack = 256 * 1024;

    // Pool state.
    std::vector<std::thread*> workers;
    std::atomic<uint32_t> launch_gen{0};
    std::atomic<uint32_t> finished{0};
    // Workers that have seen the current launch (all of them, busy or idle): a launch returns only when every
    // worker has read its thread count, so a worker slow to wake never reads the next launch's count instead.
    std::atomic<uint32_t> acknowledged{0};

    void fail(const std::string& message) {
        {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (error.empty()) error = message;
        }
        aborted.store(true, std::memory_order_release);
        futex(&barrier_gen, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
    }

    std::string block_name(unsigned long long b) const {
        const dim3 i = block_index(b);
        return "(" + std::to_string(i.x) + "," + std::to_string(i.y) + "," + std::to_string(i.z) + ")";
    }

    static std::string site_name(const Site& s) {
        if (s.line < 0) return "the end of the kernel";
        return "__syncthreads() at " + std::string(s.file) + ":" + std::to_string(s.line);
    }

    static bool same_site(const Site& a, const Site& b) {
        if (a.line != b.line) return false;
        if (a.line < 0) return true;
        return a.file == b.file || std::strcmp(a.file, b.file) == 0;
    }

    // Called by the last thread to arrive: check that every thread is at the same barrier.
    void check_sites() {
        const Site& first = sites[0];
        for (unsigned int t = 1; t < nthreads; ++t) {
            if (!same_site(sites[t], first)) {
                fail("kernel '" + kernel + "', block " + block_name(current_block) +
                     ": threads reached different barriers (thread 0 at " + site_name(first) +
                     ", thread " + std::to_string(t) + " at " + site_name(sites[t]) +
                     "); every thread of a block must reach the same __syncthreads() "
                     "(a __syncthreads() inside a branch that not all threads take "
                     "deadlocks or corrupts a real GPU)");
                return;
            }
        }
    }

    void arrive(unsigned int tid, Site site) {
        if (aborted.load(std::memory_order_acquire)) throw Abort{};
        progress.fetch_add(1, std::memory_order_relaxed);
        sites[tid] = site;
        if (fibers) {  // back to the scheduler, which resumes us once every thread is here
            yield_to_scheduler(tid);
            if (aborted.load(std::memory_order_acquire)) throw Abort{};
            return;
        }
        uint32_t gen = barrier_gen.load(std::memory_order_acquire);
        if (arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == nthreads) {
            check_sites();
            if (site.line < 0) {  // end of block: prepare the next one
                ++current_block;
                if (dyn_smem_bytes) std::memset(dyn_smem, 0xFF, dyn_smem_bytes);
                poison_shared();
            }
            arrived.store(0, std::memory_order_relaxed);
            barrier_gen.fetch_add(1, std::memory_order_acq_rel);
            futex(&barrier_gen, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
        } else {
            auto start = std::chrono::steady_clock::now();
            for (int spin = 0; barrier_gen.load(std::memory_order_acquire) == gen; ++spin) {
                if (aborted.load(std::memory_order_acquire)) throw Abort{};
                if (spin < spin_limit) { std::this_thread::yield(); continue; }
                timespec ts{0, 50 * 1000 * 1000};
                futex(&barrier_gen, FUTEX_WAIT_PRIVATE, gen, &ts);
                double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
                if (waited > timeout_s && barrier_gen.load(std::memory_order_acquire) == gen) {
                    char buf[64];
                    std::snprintf(buf, sizeof buf, "%.3g", timeout_s);
                    fail("kernel '" + kernel + "', block " + block_name(current_block) + ": deadlock: " +
                         std::to_string(arrived.load()) + " of " + std::to_string(nthreads) +
                         " threads waited more than " + buf + " s at " + site_name(site) +
                         " for the others (a __syncthreads() that not every thread reaches, or a "
                         "thread that never finishes)");
                }
            }
        }
        if (aborted.load(std::memory_order_acquire)) throw Abort{};
    }

    static dim3 thread_index(unsigned int tid) {
        return dim3(tid % blockDim.x, (tid / blockDim.x) % blockDim.y, tid / (blockDim.x * blockDim.y));
    }

    static dim3 block_index(unsigned long long b) {
        return dim3(static_cast<unsigned>(b % gridDim.x), static_cast<unsigned>((b / gridDim.x) % gridDim.y),
                    static_cast<unsigned>(b / (static_cast<unsigned long long>(gridDim.x) * gridDim.y)));
    }

    // Mode "threads": pool thread `tid` runs thread `tid` of every block, in step with the others.
    void run_thread(unsigned int tid) {
        threadIdx = thread_index(tid);
        const unsigned int saved_mxcsr = read_mxcsr();
        write_mxcsr(ftz ? saved_mxcsr | kFlushToZero : saved_mxcsr & ~kFlushToZero);
        try {
            for (unsigned long long b = 0; b < nblocks; ++b) {
                blockIdx = block_index(b);
                entry(args);
                arrive(tid, Site{nullptr, -1});
            }
        } catch (Abort&) {
        } catch (std::exception& e) {
            fail("kernel '" + kernel + "': C++ exception: " + e.what());
        }
        write_mxcsr(saved_mxcsr);
        if (finished.fetch_add(1, std::memory_order_acq_rel) + 1 == nthreads)
            futex(&finished, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
    }

    void worker_loop(unsigned int index) {
        uint32_t seen = 0;
        for (;;) {
            uint32_t gen;
            while ((gen = launch_gen.load(std::memory_order_acquire)) == seen)
                futex(&launch_gen, FUTEX_WAIT_PRIVATE, seen, nullptr);
            seen = gen;
            const bool active = index < nthreads;
            acknowledged.fetch_add(1, std::memory_order_acq_rel);
            if (active) run_thread(index);
        }
    }

    void fiber_body(unsigned int tid) {
        try {
            entry(args);
        } catch (Abort&) {
        } catch (std::exception& e) {
            fail("kernel '" + kernel + "': C++ exception: " + e.what());
        }
        sites[tid] = Site{nullptr, -1};
        done[tid] = 1;
        progress.fetch_add(1, std::memory_order_relaxed);
    }

#if GPUNET_EMU_ASM_SWITCH
    void* scheduler_sp = nullptr;
    std::vector<void*> fiber_sp;
    unsigned int current_tid = 0;

    static void fiber_start() {  // entered by `ret` from gpunet_emu_switch; never returns
        Runtime& rt = runtime();
        unsigned int tid = rt.current_tid;
        rt.fiber_body(tid);
        gpunet_emu_switch(&rt.fiber_sp[tid], rt.scheduler_sp);
        __builtin_unreachable();
    }
    void init_fiber(unsigned int t) {
        fiber_sp.resize(nthreads);
        uintptr_t top = reinterpret_cast<uintptr_t>(stacks + (t + 1) * kFiberStack) & ~uintptr_t(15);
        uint64_t* sp = reinterpret_cast<uint64_t*>(top);
        sp[-1] = 0;                                             // fake caller of fiber_start
        sp[-2] = reinterpret_cast<uint64_t>(&fiber_start);     // popped by `ret`
        for (int r = 3; r <= 8; ++r) sp[-r] = 0;               // rbp rbx r12 r13 r14 r15
        uint32_t control[2] = {0, 0};
        asm volatile("stmxcsr %0\n\tfnstcw %1" : "=m"(control[0]), "=m"(control[1]));
        std::memcpy(&sp[-9], control, 8);
        fiber_sp[t] = &sp[-9];
    }
    void resume(unsigned int t) {
        current_tid = t;
        threadIdx = thread_index(t);
        gpunet_emu_switch(&scheduler_sp, fiber_sp[t]);
    }
    void yield_to_scheduler(unsigned int t) { gpunet_emu_switch(&fiber_sp[t], scheduler_sp); }
#else
    ucontext_t scheduler;
    std::vector<ucontext_t> contexts;

    static void fiber_main(unsigned int tid) { runtime().fiber_body(tid); }  // returns to uc_link
    void init_fiber(unsigned int t) {
        contexts.resize(nthreads);
        getcontext(&contexts[t]);
        contexts[t].uc_stack.ss_sp = stacks + t * kFiberStack;
        contexts[t].uc_stack.ss_size = kFiberStack;
        contexts[t].uc_link = &scheduler;
        makecontext(&contexts[t], reinterpret_cast<void (*)()>(&fiber_main), 1, t);
    }
    void resume(unsigned int t) {
        threadIdx = thread_index(t);
        swapcontext(&scheduler, &contexts[t]);
    }
    void yield_to_scheduler(unsigned int t) { swapcontext(&contexts[t], &scheduler); }
#endif

    // Fisher-Yates with splitmix64 seeded by (block, round): the same launch runs in the same order.
    static void shuffle(std::vector<unsigned int>& order, unsigned long long block, unsigned long long round) {
        unsigned long long state = block * 0x9E3779B97F4A7C15ull + round * 0xBF58476D1CE4E5B9ull + 1;
        for (size_t i = order.size(); i > 1; --i) {
            state += 0x9E3779B97F4A7C15ull;
            unsigned long long z = state;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
            z ^= z >> 31;
            std::swap(order[i - 1], order[z % i]);
        }
    }

    // Mode "fibers": run the blocks one by one; in each, resume every unfinished thread in turn
    // until it reaches a barrier or returns, then check they all stopped at the same place.
    int launch_fibers() {
        if (stack_count < nthreads) {
            if (stacks) munmap(stacks, stack_count * kFiberStack);
            void* p = mmap(nullptr, nthreads * kFiberStack, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            if (p == MAP_FAILED) {
                fail("kernel '" + kernel + "': cannot map fiber stacks");
                return 1;
            }
            stacks = static_cast<char*>(p);
            stack_count = nthreads;
            for (unsigned int t = 0; t < nthreads; ++t)  // guard page: an overflow faults, never corrupts
                mprotect(stacks + t * kFiberStack, 4096, PROT_NONE);
        }
        std::vector<unsigned int> order(nthreads);
        for (current_block = 0; current_block < nblocks && !aborted.load(); ++current_block) {
            blockIdx = block_index(current_block);
            if (dyn_smem_bytes) std::memset(dyn_smem, 0xFF, dyn_smem_bytes);
            poison_shared();
            done.assign(nthreads, 0);
            for (unsigned int t = 0; t < nthreads; ++t) init_fiber(t);
            for (unsigned long long round = 0;; ++round) {
                for (unsigned int t = 0; t < nthreads; ++t) order[t] = t;
                if (shuffled) shuffle(order, current_block, round);
                unsigned int finished_threads = 0;
                for (unsigned int t : order) {
                    if (done[t]) { ++finished_threads; continue; }
                    resume(t);
                    finished_threads += done[t];
                }
                if (aborted.load()) {  // unwind the threads parked at a barrier
                    for (unsigned int t = 0; t < nthreads; ++t)
                        if (!done[t]) resume(t);
                    break;
                }
                if (finished_threads == nthreads) break;
                check_sites();
            }
        }
        return aborted.load() ? 1 : 0;
    }

    // Returns 0 on success, 1 on a kernel error (message in `error`).
    int launch() {
        if (broken) {
            error = "this module has a thread stuck in kernel code since an earlier deadlock; load it again in a new process";
            return 1;
        }
        if (fibers) {
            error.clear();
            aborted.store(false);
            sites.assign(nthreads, Site{nullptr, 0});
            return launch_fibers();
        }
        while (workers.size() < nthreads) {
            unsigned int index = static_cast<unsigned int>(workers.size());
            workers.push_back(new std::thread([this, index] { worker_loop(index); }));
        }
        error.clear();
        aborted.store(false);
        arrived.store(0);
        finished.store(0);
        acknowledged.store(0);
        current_block = 0;
        sites.assign(nthreads, Site{nullptr, 0});
        if (dyn_smem_bytes) std::memset(dyn_smem, 0xFF, dyn_smem_bytes);
        poison_shared();
        launch_gen.fetch_add(1, std::memory_order_acq_rel);
        futex(&launch_gen, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
        auto abort_seen = std::chrono::steady_clock::time_point{};
        for (;;) {
            uint32_t done = finished.load(std::memory_order_acquire);
            if (done == nthreads) break;
            timespec ts{0, 20 * 1000 * 1000};
            futex(&finished, FUTEX_WAIT_PRIVATE, done, &ts);
            if (aborted.load(std::memory_order_acquire)) {
                auto now = std::chrono::steady_clock::now();
                if (abort_seen == std::chrono::steady_clock::time_point{}) abort_seen = now;
                if (std::chrono::duration<double>(now - abort_seen).count() > 1.0 &&
                    finished.load() != nthreads) {
                    broken = true;  // a thread never reached a barrier: it cannot be stopped
                    error += "; " + std::to_string(nthreads - finished.load()) +
                             " thread(s) never returned, so this module cannot launch again";
                    return 1;
                }
            }
        }
        while (acknowledged.load(std::memory_order_acquire) < workers.size()) std::this_thread::yield();
        return aborted.load() ? 1 : 0;
    }
};

inline Runtime& runtime() {
    static Runtime* rt = new Runtime();  // never destroyed: pool threads live until exit
    return *rt;
}

inline void syncthreads(const char* file, int line) {
    Runtime& rt = runtime();
    unsigned int tid = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    rt.arrive(tid, Site{file, line});
}

inline void* dynamic_shared_memory() { return runtime().dyn_smem; }

template <typename T>
inline T atomic_add(T* address, T val) {
    return std::atomic_ref<T>(*address).fetch_add(val, std::memory_order_relaxed);
}

// Store val while better(val, old) holds for the value old found there; returns the value before.
template <typename T, typename Better>
inline T atomic_improve(T* address, T val, Better better) {
    std::atomic_ref<T> ref(*address);
    T old = ref.load(std::memory_order_relaxed);
    while (better(val, old) && !ref.compare_exchange_weak(old, val, std::memory_order_relaxed)) {}
    return old;
}

template <typename T>
inline T atomic_max(T* address, T val) { return atomic_improve(address, val, [](T a, T b) { return b < a; }); }

template <typename T>
inline T atomic_min(T* address, T val) { return atomic_improve(address, val, [](T a, T b) { return a < b; }); }

}  // namespace cuda_emu

#define __syncthreads() ::cuda_emu::syncthreads(__FILE__, __LINE__)
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// Atomics (relaxed, as on the GPU).
inline int atomicAdd(int* a, int v) { return cuda_emu::atomic_add(a, v); }
inline unsigned int atomicAdd(unsigned int* a, unsigned int v) { return cuda_emu::atomic_add(a, v); }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) { return cuda_emu::atomic_add(a, v); }
inline float atomicAdd(float* a, float v) { return cuda_emu::atomic_add(a, v); }
inline double atomicAdd(double* a, double v) { return cuda_emu::atomic_add(a, v); }
inline int atomicSub(int* a, int v) { return cuda_emu::atomic_add(a, -v); }
inline unsigned int atomicSub(unsigned int* a, unsigned int v) { return cuda_emu::atomic_add(a, 0u - v); }
inline int atomicMax(int* a, int v) { return cuda_emu::atomic_max(a, v); }
inline unsigned int atomicMax(unsigned int* a, unsigned int v) { return cuda_emu::atomic_max(a, v); }
inline long long atomicMax(long long* a, long long v) { return cuda_emu::atomic_max(a, v); }
inline unsigned long long atomicMax(unsigned long long* a, unsigned long long v) { return cuda_emu::atomic_max(a, v); }
inline int atomicMin(int* a, int v) { return cuda_emu::atomic_min(a, v); }
inline unsigned int atomicMin(unsigned int* a, unsigned int v) { return cuda_emu::atomic_min(a, v); }
inline long long atomicMin(long long* a, long long v) { return cuda_emu::atomic_min(a, v); }
inline unsigned long long atomicMin(unsigned long long* a, unsigned long long v) { return cuda_emu::atomic_min(a, v); }
template <typename T>
inline T atomicExch(T* a, T v) { return std::atomic_ref<T>(*a).exchange(v, std::memory_order_relaxed); }
template <typename T>
inline T atomicCAS(T* a, T compare, T v) {
    std::atomic_ref<T>(*a).compare_exchange_strong(compare, v, std::memory_order_relaxed);
    return compare;
}

// Math: <cmath> provides expf, logf, fmaxf, tanhf, sqrtf, ... in the global namespace.
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __powf(float x, float y) { return powf(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __saturatef(float x) { return x != x ? 0.0f : fminf(fmaxf(x, 0.0f), 1.0f); }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
inline int __float2int_rn(float x) { return static_cast<int>(nearbyintf(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline float __int_as_float(int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int __float_as_int(float f) { int x; std::memcpy(&x, &f, 4); return x; }
inline unsigned int __float_as_uint(float f) { unsigned int x; std::memcpy(&x, &f, 4); return x; }
inline float __uint_as_float(unsigned int x) { float f; std::memcpy(&f, &x, 4); return f; }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return static_cast<unsigned int>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return static_cast<unsigned long long>((static_cast<unsigned __int128>(a) * b) >> 64);
}
template <typename T>
inline T __ldg(const T* p) { return *p; }
// CUDA's integer/float min and max overloads in the global namespace.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned int min(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int max(unsigned int a, unsigned int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

GPUNET_EMU_EXPORT unsigned long long gpunet_emu_progress() { return cuda_emu::runtime().progress.load(); }

// Entry point for Python (ctypes): run `entry` (a generated wrapper that unpacks `args`
// and calls the kernel) on a grid. Returns 0, or 1 with a message in errbuf.
GPUNET_EMU_EXPORT int gpunet_emu_launch(void (*entry)(void**), void** args, const char* kernel,
                                        unsigned int gx, unsigned int gy, unsigned int gz,
                                        unsigned int bx, unsigned int by, unsigned int bz,
                                        unsigned long long shared_mem, double timeout_s, int mode, int ftz,
                                        char* errbuf, unsigned long long errlen) {
    cuda_emu::Runtime& rt = cuda_emu::runtime();
    gridDim = dim3(gx, gy, gz);
    blockDim = dim3(bx, by, bz);
    rt.entry = entry;
    rt.args = args;
    rt.kernel = kernel;
    rt.nthreads = bx * by * bz;
    rt.nblocks = static_cast<unsigned long long>(gx) * gy * gz;
    rt.timeout_s = timeout_s;
    rt.fibers = mode != 0;  // 0: threads, 1: fibers in index order, 2: fibers shuffled
    rt.shuffled = mode == 2;
    rt.ftz = ftz != 0;
    rt.spin_limit = rt.nthreads <= std::thread::hardware_concurrency() ? 64 : 0;
    rt.dyn_smem_bytes = shared_mem;
    rt.dyn_smem = static_cast<unsigned char*>(std::malloc(shared_mem ? shared_mem : 1));
    const unsigned int saved_mxcsr = cuda_emu::read_mxcsr();  // fibers inherit the launching thread's
    cuda_emu::write_mxcsr(rt.ftz ? saved_mxcsr | cuda_emu::kFlushToZero : saved_mxcsr & ~cuda_emu::kFlushToZero);
    int status = rt.launch();
    cuda_emu::write_mxcsr(saved_mxcsr);
    if (status == 0 || !rt.broken) std::free(rt.dyn_smem);  // a stuck thread may still use it
    rt.dyn_smem = nullptr;
    if (status != 0) std::snprintf(errbuf, errlen, "%s", rt.error.c_str());
    return status;
}
