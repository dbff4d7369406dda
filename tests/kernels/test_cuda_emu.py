"""The CUDA emulator itself: execution model, shared memory, atomics, argument checks, barrier
errors, AddressSanitizer runs. Test kernels: tests/kernels/cuda_src/emu_checks.cu."""

from pathlib import Path

import numpy as np
import pytest

from gpunet.backend import emulated as ce

SRC = Path(__file__).parent / "cuda_src" / "emu_checks.cu"


@pytest.fixture(scope="module", params=["fibers", "shuffled", "threads"])
def mod(request):
    return ce.load(SRC, mode=request.param, timeout=5.0)


@pytest.fixture(scope="module")
def fib():
    return ce.load(SRC, mode="fibers")


@pytest.mark.parametrize("n, grid", [(1, 1), (255, 1), (1000, 3), (100003, 7)])
def test_tiled_reduction_with_syncthreads(mod, n, grid):
    x = np.random.default_rng(n).standard_normal(n).astype(np.float32)
    partial = ce.nan_array(grid)
    mod.launch("block_sum_f32", grid, 256, (x, partial, n))
    # each block's share of the grid-stride loop, summed in float64
    owner = (np.arange(n) // 256) % grid
    expected = np.array([x[owner == b].astype(np.float64).sum() for b in range(grid)])
    np.testing.assert_allclose(partial, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("n, block", [(1000, 128), (7, 32), (64, 64)])
def test_dynamic_shared_memory(mod, n, block):
    x = np.arange(n, dtype=np.float32)
    y = ce.nan_array(n)
    grid = -(-n // block)
    mod.launch("reverse_tiles_f32", grid, block, (x, y, np.int32(n)), shared_mem=block * 4)
    expected = np.concatenate([x[s:s + block][::-1] for s in range(0, n, block)])
    np.testing.assert_array_equal(y, expected)


def test_missing_barrier_reads_unwritten_shared_memory(fib):
    # fibers run each thread up to its next barrier: without one, thread 0 reads tile[last]
    # before the last thread wrote it, and dynamic shared memory starts as NaN
    x = np.arange(64, dtype=np.float32)
    y = ce.nan_array(64)
    fib.launch("reverse_tiles_no_sync_f32", 1, 64, (x, y, np.int32(64)), shared_mem=64 * 4)
    assert np.isnan(y[:32]).all()
    np.testing.assert_array_equal(y[32:], x[:32][::-1])


def test_atomics_over_a_2d_grid_of_2d_blocks(mod):
    rng = np.random.default_rng(1)
    n, bins = 5000, 7
    values = rng.integers(0, 1000, n).astype(np.int32)
    hist = np.zeros(bins, np.int32)
    total = np.zeros(1, np.float32)
    maximum = np.full(1, -1, np.int32)
    mod.launch("atomic_stats", (8, 5), (16, 8), (values, n, hist, np.int32(bins), total, maximum))
    np.testing.assert_array_equal(hist, np.bincount(values % bins, minlength=bins))
    assert total[0] == values.sum()  # integers below 2**24: exact in float32 in any order
    assert maximum[0] == values.max()


def test_thread_and_block_coordinates_in_3d(fib):
    grid, block = (3, 2, 2), (4, 2, 3)
    out = ce.nan_array((2, 2, 3, 3, 2, 4, 6), np.int32)  # (bz, by, bx, tz, ty, tx, coordinate)
    fib.launch("thread_coordinates", grid, block, (out,))
    bz, by, bx, tz, ty, tx = np.meshgrid(*[np.arange(s) for s in out.shape[:6]], indexing="ij")
    np.testing.assert_array_equal(out, np.stack([bx, by, bz, tx, ty, tz], axis=-1))


def test_math_functions_match_float64(fib):
    x = np.linspace(0.05, 6.0, 37).astype(np.float32)
    y = ce.nan_array((37, 8))
    fib.launch("math_functions", 2, 32, (x, y, np.int32(37)))
    v = x.astype(np.float64)
    expected = np.stack([np.exp(v), np.log(v), np.tanh(v), np.exp(-v), 1 / np.sqrt(v), np.maximum(v, 1),
                         1 / (1 + np.exp(-v)), 1 / v], axis=1)
    np.testing.assert_allclose(y, expected, rtol=2e-6, atol=1e-7)


def test_typed_scalars_pass_their_values(fib):
    x = np.arange(10, dtype=np.float32)
    y = np.ones(10, np.float32)
    fib.launch("axpy_f32", 1, 32, (np.float32(2.0), x, y, np.int32(10), 0.5, True))
    np.testing.assert_array_equal(y, 2 * x + 0.5 + 1.0)


@pytest.mark.parametrize("args, needles", [
    ((np.float32(2), "X", "Y", 10, 0.5, True), ["'axpy_f32'", "'n' (int)", "Python int", "long long"]),
    ((2.0, "X", "Y", np.int32(10), 0.5, True), ["'alpha' (float)", "Python float", "double"]),
    ((np.float32(2), "X64", "Y", np.int32(10), 0.5, True), ["'x' (const float*)", "float64 array"]),
    ((np.float32(2), "X", "Y", np.int32(10), np.float32(0.5), True), ["'beta' (double)", "float32 scalar"]),
    ((np.float32(2), "X", "Y", np.int32(10), 0.5, 1), ["'flag' (bool)", "Python int"]),
    ((np.float32(2), "X", np.float32(1), np.int32(10), 0.5, True), ["'y' (float*)", "expects an array"]),
    ((np.float32(2), "X", "Y", np.int32(10), 0.5), ["takes 6 arguments", "got 5"]),
    ((np.float32(2), "XS", "Y", np.int32(10), 0.5, True), ["'x'", "not C-contiguous"]),
    ((np.float32(2), "X", "RO", np.int32(10), 0.5, True), ["'y'", "read-only"]),
])
def test_argument_mismatches_name_kernel_parameter_and_types(fib, args, needles):
    x = np.zeros(20, np.float32)
    read_only = np.zeros(10, np.float32)
    read_only.flags.writeable = False
    arrays = {"X": x[:10], "Y": np.zeros(10, np.float32), "X64": np.zeros(10), "XS": x[::2], "RO": read_only}
    args = tuple(arrays.get(a, a) if isinstance(a, str) else a for a in args)
    with pytest.raises(ce.CudaEmuError) as info:
        fib.launch("axpy_f32", 1, 32, args)
    for needle in needles:
        assert needle in str(info.value)


@pytest.mark.parametrize("grid, block, shared_mem, needle", [
    (0, 32, 0, "grid[0] = 0"),
    (1, 2048, 0, "block[0] = 2048"),
    (1, (32, 32, 2), 0, "more than 1024 threads"),
    ((1, 70000), 32, 0, "grid[1] = 70000"),
    (1, 32, 64 * 1024, "shared_mem=65536"),
])
def test_launch_geometry_is_checked_against_cuda_limits(fib, grid, block, shared_mem, needle):
    with pytest.raises(ce.CudaEmuError, match="'block_sum_f32'") as info:
        fib.launch("block_sum_f32", grid, block, (np.zeros(1, np.float32), np.zeros(1, np.float32), 1), shared_mem)
    assert needle in str(info.value)


def test_unknown_kernel_lists_the_available_ones(fib):
    with pytest.raises(ce.CudaEmuError, match="no kernel 'nope'.*block_sum_f32"):
        fib.get_function("nope")


def test_get_function_has_rawkernel_call_semantics(fib):
    kernel = fib.get_function("reverse_tiles_f32")
    x = np.arange(5, dtype=np.float32)
    y = ce.nan_array(5)
    kernel((1,), (8,), (x, y, np.int32(5)), shared_mem=32)
    np.testing.assert_array_equal(y, x[::-1])


def test_sync_in_a_divergent_branch_is_an_error_and_the_module_recovers(mod):
    with pytest.raises(ce.CudaEmuError) as info:
        mod.launch("divergent_sync", 1, 64, (np.zeros(64, np.float32),))
    message = str(info.value)
    assert "'divergent_sync'" in message and "different barriers" in message
    assert "emu_checks.cu:48" in message and "end of the kernel" in message
    x = np.ones(300, np.float32)
    partial = ce.nan_array(2)
    mod.launch("block_sum_f32", 2, 256, (x, partial, 300))
    np.testing.assert_array_equal(partial, [256, 44])


@pytest.mark.parametrize("mode", ["fibers", "threads"])
def test_deadlock_times_out_with_an_error_naming_the_kernel(mode):
    isolated = ce.load(SRC, mode=mode, isolate=True, timeout=0.5)
    with pytest.raises(ce.CudaEmuError, match="kernel 'spin_deadlock'.*deadlock"):
        isolated.launch("spin_deadlock", 1, 32, (np.zeros(1, np.int32),))


def test_asan_reports_a_write_one_past_the_end():
    asan = ce.load(SRC, sanitize="address")
    y = np.zeros(100, np.float32)
    with pytest.raises(ce.CudaEmuError) as info:
        asan.launch("write_one_past_end", 1, 128, (y, 100))
    message = str(info.value)
    assert "AddressSanitizer: heap-buffer-overflow" in message and "write_one_past_end" in message
    # the same kernel within bounds passes, and its results come back (even from a view)
    y = np.zeros(202, np.float32)
    asan.launch("write_one_past_end", 1, 128, (y[:101], 100))
    np.testing.assert_array_equal(y, np.r_[np.full(101, 2.0), np.zeros(101)])


def test_tsan_reports_a_missing_barrier_and_accepts_correct_kernels():
    tsan = ce.load(SRC, sanitize="thread", mode="threads")
    x = np.arange(64, dtype=np.float32)
    y = ce.nan_array(64)
    tsan.launch("reverse_tiles_f32", 1, 64, (x, y, np.int32(64)), shared_mem=256)
    np.testing.assert_array_equal(y, x[::-1])
    partial = ce.nan_array(3)
    tsan.launch("block_sum_f32", 3, 64, (np.ones(1000, np.float32), partial, 1000))  # several blocks, static shared
    np.testing.assert_array_equal(partial, np.bincount((np.arange(1000) // 64) % 3))
    with pytest.raises(ce.CudaEmuError, match="(?s)ThreadSanitizer: data race.*reverse_tiles_no_sync_f32"):
        tsan.launch("reverse_tiles_no_sync_f32", 1, 64, (x, y, np.int32(64)), shared_mem=256)


def test_fill_nan_poisons_floats_and_integers():
    f, i = np.zeros(3, np.float32), np.zeros(2, np.int64)
    ce.fill_nan(f, i)
    assert np.isnan(f).all() and (i == np.iinfo(np.int64).min).all()


def test_signature_parsing_normalises_spellings():
    src = """
    // extern "C" __global__ void commented_out(int a)
    extern "C" __global__ void __launch_bounds__(256) k(const float* __restrict__ x, float *y,
        unsigned long long seed, const long long* idx, void* raw, bool flag) {}
    template <typename T> __global__ void not_extern_c(T* x) {}
    """
    kernels = ce.parse_kernels(src)
    assert list(kernels) == ["k"]
    params = kernels["k"].params
    assert [p.ctype for p in params] == ["const float*", "float*", "unsigned long long", "const long long*",
                                         "void*", "bool"]
    assert [str(p.dtype) for p in params] == ["float32", "float32", "uint64", "int64", "None", "bool"]
    with pytest.raises(ce.CudaEmuError, match="parameter 'h' has type 'half2'"):
        ce.parse_kernels('extern "C" __global__ void k(half2 h) {}')


def test_builds_are_cached_by_source_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("GPUNET_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "tiny.cu"
    src.write_text('extern "C" __global__ void fill(float* y, float v) { y[threadIdx.x] = v; }\n')
    first = ce.Module(src)
    assert first.library_path.parent == tmp_path / "cache" / "cuda_emu" and first.library_path.exists()
    assert ce.Module(src).library_path == first.library_path
    src.write_text('extern "C" __global__ void fill(float* y, float v) { y[threadIdx.x] = 2 * v; }\n')
    second = ce.Module(src)
    assert second.library_path != first.library_path
    y = ce.nan_array(4)
    second.launch("fill", 1, 4, (y, np.float32(1.5)))
    np.testing.assert_array_equal(y, 3.0)


def test_compile_errors_carry_the_compiler_log(tmp_path):
    src = tmp_path / "broken.cu"
    src.write_text('extern "C" __global__ void k(float* y) { y[0] = undefined_name; }\n')
    with pytest.raises(ce.CudaEmuError, match="(?s)could not compile.*undefined_name"):
        ce.Module(src)


# ----- where a GPU is less forgiving than a plain emulator: shared memory, thread order, FTZ, devices ------------
GPU_HAZARDS = r'''
extern "C" __global__ void shared_left_by_previous_block(float* out) {
    __shared__ float last[1];
    out[blockIdx.x] = last[0];  // never written in this block: garbage on a GPU
    last[0] = blockIdx.x + 1.0f;
}

extern "C" __global__ void read_lower_neighbour_without_barrier(float* out) {
    __shared__ float value[64];
    value[threadIdx.x] = threadIdx.x;
    // missing __syncthreads(): threads run in index order on a CPU emulator, in any order on a GPU
    out[threadIdx.x] = value[threadIdx.x > 0 ? threadIdx.x - 1 : 0];
}

extern "C" __global__ void multiply_f32(const float* x, const float* y, float* out, long long n) {
    for (long long i = threadIdx.x; i < n; i += blockDim.x) out[i] = x[i] * y[i];
}
'''


@pytest.fixture(scope="module")
def hazards(tmp_path_factory):
    path = tmp_path_factory.mktemp("hazards") / "hazards.cu"
    path.write_text(GPU_HAZARDS)
    return path


@pytest.mark.parametrize("mode", ["fibers", "shuffled", "threads"])
def test_static_shared_memory_is_poisoned_at_every_block_start(hazards, mode):
    out = np.zeros(3, np.float32)
    ce.load(hazards, mode=mode).launch("shared_left_by_previous_block", 3, 1, (out,))
    assert np.isnan(out).all()  # before: [0, 1, 2], zeroed static storage kept across blocks


def test_shuffled_order_exposes_a_race_the_fixed_order_hides(hazards):
    expected = np.maximum(np.arange(64, dtype=np.float32) - 1, 0)
    in_order = ce.nan_array(64)
    ce.load(hazards, mode="fibers").launch("read_lower_neighbour_without_barrier", 1, 64, (in_order,))
    np.testing.assert_array_equal(in_order, expected)  # the race is invisible in index order
    shuffled = ce.nan_array(64)
    ce.load(hazards, mode="shuffled").launch("read_lower_neighbour_without_barrier", 1, 64, (shuffled,))
    assert np.isnan(shuffled).sum() > 10  # threads that ran before their neighbour read the poison
    again = ce.nan_array(64)
    ce.load(hazards, mode="shuffled").launch("read_lower_neighbour_without_barrier", 1, 64, (again,))
    np.testing.assert_array_equal(again, shuffled)  # the same order on every run: failures reproduce


def test_the_test_suite_runs_the_shuffled_order():
    assert ce.module.DEFAULT_MODE == "shuffled"  # tests/conftest.py sets GPUNET_CUDA_EMU_MODE


def test_ftz_flushes_subnormal_inputs_and_results_to_zero_when_asked(hazards):
    tiny = np.finfo(np.float32).tiny  # 1.18e-38, the smallest normal float32
    x = np.array([tiny / 4, 1e-20, 3.0, -tiny / 2], np.float32)
    y = np.array([1.0, 1e-20, 0.5, 1.0], np.float32)
    module = ce.load(hazards)
    exact, flushed = ce.nan_array(4), ce.nan_array(4)
    module.launch("multiply_f32", 1, 32, (x, y, exact, np.int64(4)), ftz=False)
    module.launch("multiply_f32", 1, 32, (x, y, flushed, np.int64(4)), ftz=True)
    np.testing.assert_array_equal(exact, x * y)  # NumPy keeps subnormals: 2.9e-39, 1e-40, 1.5, -5.9e-39
    np.testing.assert_array_equal(flushed, [0.0, 0.0, 1.5, -0.0])
    module.launch("multiply_f32", 1, 32, (x, y, exact, np.int64(4)))
    np.testing.assert_array_equal(exact, x * y)  # the flag is the launch's only: the next one is exact again


def test_kernels_agree_with_their_references_under_ftz_within_the_smallest_normal(monkeypatch):
    """With CuPy's -ftz=true (emulated), a float32 kernel against its NumPy reference differs only where a value
    falls below 1.18e-38: softmax of a row spanning 100 gives exp(-100) = 3.7e-44 on the CPU and 0 on a GPU."""
    from gpunet.backend import get_backend
    from gpunet.backend.emulated import cupy_standin
    from gpunet.testing import assert_close

    monkeypatch.setattr(cupy_standin, "flush_subnormals", True)
    x = np.array([[0.0, -100.0, -1.0]], np.float32)
    cpu = get_backend("cpu").softmax(x, 1)
    emu = get_backend("cuda-emu")
    got = emu.to_numpy(emu.softmax(emu.asarray(x), 1))
    assert cpu[0, 1] > 0 and got[0, 1] == 0.0
    assert_close(got, cpu, atol=np.finfo(np.float32).tiny)


def test_a_kernel_runs_only_on_the_device_that_loaded_it():
    from gpunet.backend.emulated import cupy_standin as cp

    module = cp.RawModule(code=SRC.read_text(), options=(f"-I{ce.build.KERNELS_DIR}",))
    with cp.cuda.Device(0):
        kernel = module.get_function("block_sum_f32")
    with cp.cuda.Device(1):
        x, partial = cp.ones(8, dtype=np.float32), cp.empty(1, dtype=np.float32)
        with pytest.raises(ce.CudaEmuError, match=r"'block_sum_f32' was loaded on device 0 and launched with device "
                                                  r"1 current"):
            kernel((1,), (32,), (x, partial, np.int64(8)))
