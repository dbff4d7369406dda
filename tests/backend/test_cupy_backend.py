"""The CuPy backend on the emulated device: kernels/softmax.cu through the CUDA emulator agrees with the CPU
backend and a float64 reference; launch geometry, argument checks, lazy compilation and xp fallbacks."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpunet as gn
import gpunet.nn
import gpunet.nn.functional
import gpunet.optim
from gpunet.backend import Device, get_backend
from gpunet.backend import cupy_backend
from gpunet.backend.cupy_backend import CupyBackend
from gpunet.backend.registry import KERNELS, FusedKernel
from gpunet.backend.emulated import CudaEmuError, cupy_standin
from gpunet.backend.kernel_source import kernel_source

REPO = Path(__file__).resolve().parents[2]
F32 = dict(rtol=2e-5, atol=2e-6)  # float32 against float64: a few ulps per exp/log/sum

# (shape, axis): one row, rows of length 1, a row longer than a block (1025), odd sizes, strided axes
SOFTMAX_CASES = [((1, 7), 1), ((6, 1), 1), ((3, 1025), 1), ((33, 17), -1), ((5,), 0), ((2, 3, 5), 1),
                 ((4, 9), 0), ((3, 1, 4), 0), ((1, 1), 1)]


def reference_log_softmax(x, axis):
    x = x.astype(np.float64)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def call(backend, kernel, *args):
    """Fused ``kernel`` of ``backend`` (or a device name) on host arrays: inputs moved to the device, outputs back."""
    backend = get_backend(backend) if isinstance(backend, str) else backend
    out = getattr(backend, kernel)(*(backend.asarray(a) if isinstance(a, np.ndarray) else a for a in args))
    return tuple(map(backend.to_numpy, out)) if isinstance(out, tuple) else backend.to_numpy(out)


@pytest.fixture
def fresh():
    """A new emulated-device backend: nothing compiled yet, its own kernel caches."""
    return CupyBackend(Device("cuda-emu"), cupy_standin)


@pytest.fixture
def launches(monkeypatch):
    """Every kernel launch on the emulated device, as (kernel name, grid, block)."""
    seen = []
    original = cupy_standin._Kernel.__call__

    def spy(self, grid, block, args, *, shared_mem=0):
        seen.append((self.name, grid, block))
        return original(self, grid, block, args, shared_mem=shared_mem)

    monkeypatch.setattr(cupy_standin._Kernel, "__call__", spy)
    return seen


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_softmax_family_on_cuda_emu_matches_cpu_and_float64(op, shape, axis):
    x = (np.random.default_rng(len(shape) * 100 + shape[0]).standard_normal(shape) * 4).astype(np.float32)
    got = call("cuda-emu", op, x, axis)
    expected = reference_log_softmax(x, axis)
    if op == "softmax":
        expected = np.exp(expected)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, expected, **F32)
    np.testing.assert_allclose(got, call("cpu", op, x, axis), **F32)


@pytest.mark.parametrize("shape,axis", [((2, 0), 1), ((0, 3), 1), ((0, 3), 0)])
def test_empty_input_gives_empty_output_on_both_backends(shape, axis):
    for device in ("cpu", "cuda-emu"):
        for op in ("softmax", "log_softmax"):
            out = call(device, op, np.zeros(shape, np.float32), axis)
            assert out.shape == shape and out.dtype == np.float32


def test_softmax_of_large_logits_stays_finite():
    x = np.array([[1000.0, -1000.0, 999.0], [-3e4, -3e4, -3e4]], dtype=np.float32)
    got = call("cuda-emu", "log_softmax", x, 1)  # (x - max) - log(sum): no rounding at the logits' magnitude
    np.testing.assert_allclose(got, reference_log_softmax(x, 1), rtol=1e-6, atol=1e-6)
    loss, _ = call("cuda-emu", "softmax_cross_entropy", x, np.array([2, 1]), -100)
    np.testing.assert_allclose(loss, -reference_log_softmax(x, 1)[[0, 1], [2, 1]], rtol=1e-6, atol=1e-6)


def test_softmax_kernels_run_for_float32_and_the_reference_for_float64(fresh, launches):
    x = np.random.default_rng(0).standard_normal((4, 3))
    np.testing.assert_allclose(call(fresh, "softmax", x, 1), np.exp(reference_log_softmax(x, 1)), rtol=1e-12)
    assert launches == [] and fresh.compiled_families() == ()
    call(fresh, "softmax", x.astype(np.float32), 1)
    assert [name for name, _, _ in launches] == ["softmax_rows_f32"]


def test_softmax_cross_entropy_matches_cpu_with_ignored_rows():
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((9, 1025)) * 3).astype(np.float32)
    target = rng.integers(0, 1025, 9)
    target[[2, 5]] = -100
    loss, log_probs = call("cuda-emu", "softmax_cross_entropy", logits, target, -100)
    expected_log_probs = reference_log_softmax(logits, 1)
    expected = np.where(target == -100, 0.0, -expected_log_probs[np.arange(9), np.where(target < 0, 0, target)])
    np.testing.assert_allclose(log_probs, expected_log_probs, **F32)
    np.testing.assert_allclose(loss, expected, **F32)
    assert loss[2] == 0.0 and loss[5] == 0.0
    cpu_loss, cpu_log_probs = call("cpu", "softmax_cross_entropy", logits, target, -100)
    np.testing.assert_allclose(loss, cpu_loss, **F32)


@pytest.mark.parametrize("rows,classes", [(1, 1), (9, 1025), (5, 3)])
def test_softmax_cross_entropy_backward_matches_cpu_and_float64(rows, classes):
    rng = np.random.default_rng(rows * classes)
    logits = (rng.standard_normal((rows, classes)) * 3).astype(np.float32)
    target = rng.integers(0, classes, rows)
    target[::4] = -1  # ignored rows
    grad_loss = rng.standard_normal(rows).astype(np.float32)
    log_probs = reference_log_softmax(logits, 1).astype(np.float32)
    got = call("cuda-emu", "softmax_cross_entropy_backward", log_probs, target, grad_loss, -1)
    onehot = np.eye(classes)[np.where(target < 0, 0, target)]
    expected = (np.exp(log_probs.astype(np.float64)) - onehot) * np.where(target < 0, 0.0, grad_loss)[:, None]
    np.testing.assert_allclose(got, expected, **F32)
    np.testing.assert_allclose(got, call("cpu", "softmax_cross_entropy_backward", log_probs, target, grad_loss, -1),
                               **F32)
    assert not got[::4].any()


def test_cross_entropy_accepts_int32_targets_and_one_row():
    logits = np.array([[0.5, -1.0, 2.0]], dtype=np.float32)
    loss, _ = call("cuda-emu", "softmax_cross_entropy", logits, np.array([1], dtype=np.int32), -100)
    np.testing.assert_allclose(loss, [-reference_log_softmax(logits, 1)[0, 1]], **F32)


def test_more_rows_than_the_grid_are_covered_by_block_stride(fresh, launches):
    fresh.max_grid_blocks = 2  # force the stride path without a huge tensor
    x = np.random.default_rng(1).standard_normal((70, 5)).astype(np.float32)  # 3 blocks of 32 rows wanted
    np.testing.assert_allclose(call(fresh, "softmax", x, 1), np.exp(reference_log_softmax(x, 1)), **F32)
    lanes = np.random.default_rng(2).standard_normal((3, 4, 300)).astype(np.float32)  # 900 lanes > 2 blocks
    np.testing.assert_allclose(call(fresh, "log_softmax", lanes, 1), reference_log_softmax(lanes, 1), **F32)
    logits = np.random.default_rng(3).standard_normal((150, 4)).astype(np.float32)  # 3 blocks of 64 rows wanted
    target = np.arange(150) % 4
    loss, _ = call(fresh, "softmax_cross_entropy", logits, target, -100)
    np.testing.assert_allclose(loss, -reference_log_softmax(logits, 1)[np.arange(150), target], **F32)
    assert [(name, grid) for name, grid, _ in launches] == [
        ("softmax_rows_f32", (2, 1, 1)), ("log_softmax_cols_f32", (2, 1, 1)), ("softmax_xent_forward_f32", (2, 1, 1))]


def test_launch_geometry_for_odd_sizes(fresh, launches):
    call(fresh, "softmax", np.zeros((3, 1025), np.float32), 1)  # row longer than 1024: 256 threads stride over it
    call(fresh, "softmax", np.zeros((1, 1), np.float32), 1)  # one element: one thread
    call(fresh, "softmax", np.zeros((2, 3, 257), np.float32), 1)  # 514 lanes: 3 blocks of 256, the last partly idle
    assert launches == [("softmax_rows_f32", (3, 1, 1), (256, 1, 1)), ("softmax_rows_f32", (1, 1, 1), (1, 1, 1)),
                        ("softmax_cols_f32", (3, 1, 1), (256, 1, 1))]


def test_default_grid_limit_comes_from_the_device(fresh):
    assert fresh.max_grid_blocks == min(cupy_standin.MAX_GRID_SIZE[0], 65535)


def test_non_contiguous_input_is_made_contiguous_before_the_launch():
    emu = get_backend("cuda-emu")
    x = np.random.default_rng(4).standard_normal((6, 8)).astype(np.float32)
    view = emu.asarray(x)[:, ::2].T  # strided and transposed, on the device
    assert not view.flags.c_contiguous
    expected = np.exp(reference_log_softmax(x[:, ::2].T, 1))
    np.testing.assert_allclose(emu.to_numpy(emu.softmax(view, 1)), expected, **F32)


def test_dtype_errors_name_the_argument():
    emu = get_backend("cuda-emu")
    with pytest.raises(TypeError, match="softmax: x must be float32 or float64, got int64"):
        emu.softmax(emu.asarray(np.arange(6).reshape(2, 3)), 1)
    logits = emu.asarray(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="targets must be integer class indices, got float32"):
        emu.softmax_cross_entropy(logits, emu.asarray(np.zeros(2, np.float32)), -100)
    with pytest.raises(ValueError, match=r"\(rows, classes\) and targets \(rows,\), got \(2, 3\) and \(3,\)"):
        emu.softmax_cross_entropy(logits, emu.asarray(np.zeros(3, np.int64)), -100)


def test_kernel_arguments_are_checked_as_cupy_passes_them():
    emu = get_backend("cuda-emu")
    kernel = emu._function("softmax", "softmax_rows_f32")
    x, y = emu.asarray(np.zeros((2, 3), np.float32)), emu.asarray(np.zeros((2, 3), np.float32))
    group = np.int64(32)
    with pytest.raises(CudaEmuError, match=r"parameter 'rows' \(long long\): got a numpy.int32 scalar"):
        kernel((1, 1, 1), (32, 1, 1), (x, y, np.int32(2), np.int64(3), group))
    with pytest.raises(CudaEmuError, match=r"parameter 'cols' \(long long\): got a Python float"):
        kernel((1, 1, 1), (32, 1, 1), (x, y, np.int64(2), 3.0, group))
    with pytest.raises(CudaEmuError, match=r"parameter 'x' \(const float\*\): expects a float32 array, got a float64"):
        kernel((1, 1, 1), (32, 1, 1), (x.astype(np.float64), y, np.int64(2), np.int64(3), group))
    with pytest.raises(CudaEmuError, match="grid must be a tuple"):
        kernel(1, (32, 1, 1), (x, y, np.int64(2), np.int64(3), group))
    with pytest.raises(CudaEmuError, match=r"got a host NumPy array \(shape \(2, 3\)\).*cupy.asarray"):
        kernel((1, 1, 1), (32, 1, 1), (np.zeros((2, 3), np.float32), y, np.int64(2), np.int64(3), group))


def test_kernel_files_compile_on_first_use_once_per_backend(fresh, monkeypatch):
    built = []

    class CountingRawModule(cupy_standin.RawModule):
        def __init__(self, code=None, **kwargs):
            built.append((code, kwargs.get("options", ())))
            super().__init__(code, **kwargs)

    monkeypatch.setattr(cupy_standin, "RawModule", CountingRawModule)
    x = np.ones((2, 3), np.float32)
    assert fresh.compiled_families() == () and built == []
    for _ in range(3):
        fresh.softmax(x, 1)
        fresh.log_softmax(x, 1)
    assert fresh.compiled_families() == ("softmax",)
    assert built == [(kernel_source("softmax"), ())]  # every header inlined: no include path
    assert set(fresh._functions) == {("softmax", "softmax_rows_f32"), ("softmax", "log_softmax_rows_f32")}


@pytest.fixture
def xp_only_kernel(monkeypatch):
    """A fused kernel ``scaled_copy(x, factor)`` declared with an xp reference and no .cu file."""
    monkeypatch.setitem(KERNELS, "scaled_copy", FusedKernel("scaled_copy", lambda xp, x, factor: xp.multiply(x, factor)))
    return "scaled_copy"


def test_warmup_compiles_the_families_of_the_named_kernels(fresh, monkeypatch, xp_only_kernel):
    assert fresh.warmup([xp_only_kernel]) == () and fresh.compiled_families() == ()  # no .cu: nothing to compile
    assert fresh.warmup(["log_softmax"]) == ("softmax",) and fresh.compiled_families() == ("softmax",)
    monkeypatch.setattr(cupy_backend, "KERNELS", {name: KERNELS[name] for name in ("softmax", "log_softmax")})
    assert fresh.warmup() == ("softmax",)  # default: every kernel with a .cu
    with pytest.raises(KeyError, match="'conv9d'"):
        fresh.warmup(["conv9d"])


def test_importing_gpunet_compiles_nothing():
    code = ("import sys, gpunet as gn\n"
            "from gpunet.backend.emulated import cupy_standin\n"
            "assert 'cupy' not in sys.modules, 'import gpunet imported cupy'\n"
            "gn.set_device('cuda-emu'); x = gn.randn(3, 4); y = (x * 2).sum()\n"
            "b = x.backend; print(cupy_standin.compilations, b.compiled_families())\n"
            "gn.softmax(x, 1); gn.softmax(x, 1); print(cupy_standin.compilations, b.compiled_families())\n")
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["0 ()", "1 ('softmax',)"]


def test_fused_kernels_without_cuda_source_run_the_xp_reference(fresh, xp_only_kernel):
    assert fresh.kernel_implementation("softmax") == "kernels/softmax.cu"
    where = fresh.kernel_implementation("scaled_copy")
    assert where.startswith("xp reference ") and where.endswith("xp_only_kernel.<locals>.<lambda>")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(fresh.scaled_copy(x, np.float32(1.5)), x * 1.5)
    assert fresh.compiled_families() == ()


def test_a_declaration_is_refused_unless_its_reference_takes_xp_first(fresh):
    with pytest.raises(TypeError, match=r"'host_only': its reference must take the array namespace xp first.*\(x\)"):
        FusedKernel("host_only", lambda x: x)
    with pytest.raises(TypeError, match="'half': give both family and launcher, or neither"):
        FusedKernel("half", lambda xp, x: x, family="softmax")
    with pytest.raises(TypeError, match="dtype_arg 'y' is not a parameter of its reference"):
        FusedKernel("odd", lambda xp, x: x, family="softmax", launcher=lambda backend, x: x, dtype_arg="y")
    with pytest.raises(AttributeError, match="no attribute or fused kernel 'no_such_kernel'"):
        fresh.no_such_kernel


def test_stand_in_refuses_names_cupy_lacks():
    assert cupy_standin.exp is np.exp
    with pytest.raises(AttributeError, match="busday_count"):
        cupy_standin.busday_count


def test_stand_in_arrays_refuse_host_arrays_as_cupy_does():
    device = cupy_standin.asarray(np.arange(4.0))
    assert isinstance(device, cupy_standin.ndarray) and isinstance(device + 1.0, cupy_standin.ndarray)
    for mix in (lambda: device + np.ones(4), lambda: cupy_standin.where(np.ones(4, bool), device, 0.0),
                lambda: cupy_standin.concatenate([device, np.ones(2)]), lambda: cupy_standin.zeros_like(np.ones(3))):
        with pytest.raises(TypeError, match="host NumPy array.*backend.asarray"):
            mix()
    assert type(cupy_standin.asnumpy(device)) is np.ndarray


def test_stand_in_transfers_copy_and_reductions_give_0d_device_arrays():
    host = np.arange(3.0)
    device = cupy_standin.asarray(host)
    host[0] = 99.0  # the device copy is not the host's memory
    assert device[0] == 0.0
    total, first = device.sum(), device[1]
    assert isinstance(total, cupy_standin.ndarray) and total.shape == () and float(total) == 3.0
    assert isinstance(first, cupy_standin.ndarray) and first.shape == ()


def test_gradients_through_softmax_agree_between_devices(device):
    rng = np.random.default_rng(5)
    x = gn.tensor(rng.standard_normal((4, 6)).astype(np.float32), requires_grad=True)
    w = rng.standard_normal((4, 6)).astype(np.float32)
    (gn.log_softmax(x, 1) * gn.tensor(w)).sum().backward()
    softmax = np.exp(reference_log_softmax(x.numpy(), 1))
    np.testing.assert_allclose(x.grad.numpy(), w - softmax * w.sum(1, keepdims=True), **F32)


def _train(device):
    gn.manual_seed(0)
    with_device = gn.device(device)
    net = gn.nn.Sequential(gn.nn.Linear(8, 5), gn.nn.Sigmoid(), gn.nn.Linear(5, 3)).to(with_device)
    opt = gn.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    rng = np.random.default_rng(1)
    x = gn.tensor(rng.standard_normal((7, 8)).astype(np.float32), device=device)
    y = gn.tensor(rng.integers(0, 3, 7), device=device)

    def step():
        opt.zero_grad()
        loss = gn.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return [step() for _ in range(4)], net.state_dict()


def test_training_steps_on_cuda_emu_match_cpu():
    cpu_losses, cpu_state = _train("cpu")
    emu_losses, emu_state = _train("cuda-emu")
    assert cpu_losses[-1] < cpu_losses[0]
    np.testing.assert_allclose(emu_losses, cpu_losses, **F32)
    for key, value in cpu_state.items():
        np.testing.assert_allclose(emu_state[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
