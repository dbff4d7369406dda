"""The TF32 switch (gpunet.backend.cuda_settings): off by default, PyTorch's names, reaches CuPy's float32 compute type
on every CUDA backend (the stand-in records it and multiplies TF32-rounded inputs, as tensor cores do), scoped
correctly, ignored by the CPU, and set by a run's ``allow_tf32`` config key."""

import numpy as np
import pytest

import gpunet as gn
from gpunet.backend import cuda_settings, get_backend
from gpunet.backend.emulated import linalg


@pytest.fixture(autouse=True)
def tf32_off_after():
    yield
    cuda_settings.set_allow_tf32(False)


def _compute_type():
    return linalg.compute_types[linalg.to_compute_type_index(np.float32)]


def tf32_reference(x):
    """x rounded to 10 mantissa bits, nearest even, in float64 arithmetic (independent of the bit trick)."""
    x = np.asarray(x, dtype=np.float64)
    mantissa, exponent = np.frexp(x)  # x = mantissa 2^exponent, 0.5 <= |mantissa| < 1: 11 significant bits kept
    return (np.round(mantissa * 2.0**11) / 2.0**11 * 2.0**exponent).astype(np.float32)  # np.round: ties to even


def test_off_by_default_and_pytorch_names():
    assert gn.backends.cuda.matmul.allow_tf32 is False
    assert gn.get_float32_matmul_precision() == "highest"
    gn.backends.cuda.matmul.allow_tf32 = True
    assert cuda_settings.allow_tf32() is True and gn.get_float32_matmul_precision() == "high"
    gn.set_float32_matmul_precision("highest")
    assert gn.backends.cuda.matmul.allow_tf32 is False


def test_bad_values_are_refused_naming_the_setting():
    with pytest.raises(TypeError, match="allow_tf32 must be True or False, got 1"):
        gn.backends.cuda.matmul.allow_tf32 = 1
    with pytest.raises(AttributeError, match="has no setting 'allow_fp16'; it has allow_tf32"):
        gn.backends.cuda.matmul.allow_fp16 = True
    with pytest.raises(ValueError, match="'medium' .* not supported"):
        gn.set_float32_matmul_precision("medium")
    assert cuda_settings.allow_tf32() is False


def test_the_switch_reaches_cupys_compute_type(monkeypatch):
    monkeypatch.setenv("CUPY_TF32", "1")  # CuPy's own variable: gpunet's switch replaces it
    get_backend("cuda-emu")
    cuda_settings.set_allow_tf32(False)
    assert _compute_type() == linalg.COMPUTE_TYPE_DEFAULT
    before = len(linalg.calls)
    gn.backends.cuda.matmul.allow_tf32 = True
    assert _compute_type() == linalg.COMPUTE_TYPE_TF32
    assert ("float32", linalg.COMPUTE_TYPE_TF32) in linalg.calls[before:]
    gn.backends.cuda.matmul.allow_tf32 = False
    assert _compute_type() == linalg.COMPUTE_TYPE_DEFAULT


def test_a_backend_created_later_applies_the_current_switch():
    from gpunet.backend.cupy_backend import emulated_backend

    get_backend("cuda-emu")
    cuda_settings.set_allow_tf32(True)
    linalg.compute_types[linalg.to_compute_type_index(np.float32)] = linalg.COMPUTE_TYPE_TBD  # as a fresh CuPy
    emulated_backend(1)
    assert _compute_type() == linalg.COMPUTE_TYPE_TF32


def test_the_context_restores_the_previous_setting_even_on_error():
    get_backend("cuda-emu")
    with pytest.raises(RuntimeError):
        with gn.backends.cuda.matmul.tf32(True):
            assert _compute_type() == linalg.COMPUTE_TYPE_TF32
            raise RuntimeError("boom")
    assert cuda_settings.allow_tf32() is False and _compute_type() == linalg.COMPUTE_TYPE_DEFAULT
    cuda_settings.set_allow_tf32(True)
    with cuda_settings.tf32(False):
        assert _compute_type() == linalg.COMPUTE_TYPE_DEFAULT
    assert _compute_type() == linalg.COMPUTE_TYPE_TF32


def test_stand_in_matches_cupys_constants():
    cupy_linalg = pytest.importorskip("cupy")._core._routines_linalg
    for name in ("COMPUTE_TYPE_TBD", "COMPUTE_TYPE_DEFAULT", "COMPUTE_TYPE_PEDANTIC", "COMPUTE_TYPE_FP16",
                 "COMPUTE_TYPE_FP32", "COMPUTE_TYPE_FP64", "COMPUTE_TYPE_BF16", "COMPUTE_TYPE_TF32"):
        assert getattr(linalg, name) == getattr(cupy_linalg, name), name
    for dtype in (np.float16, np.float32, np.complex64, np.float64, np.complex128):
        assert cupy_linalg.to_compute_type_index(dtype) == linalg.to_compute_type_index(dtype), dtype


def test_tf32_rounding_against_a_float64_reference():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(10000) * 10.0 ** rng.integers(-30, 30, 10000),
                        [0.0, -0.0, 1.0, 1 + 2**-11, 1 + 3 * 2**-11, np.inf, -np.inf]]).astype(np.float32)
    got = linalg.round_to_tf32(x)
    np.testing.assert_array_equal(got, tf32_reference(x))
    assert got[-4] == 1.0 and got[-3] == 1 + 2**-9  # ties to even (ulp 2^-10): 1 + 2^-11 down, 1 + 3 2^-11 up
    assert np.isnan(linalg.round_to_tf32(np.float32([np.nan]))).all()


def _relative_error(got, reference):
    return float(np.linalg.norm(got - reference) / np.linalg.norm(reference))


def test_matmul_on_cuda_emu_uses_tf32_only_when_allowed():
    backend = get_backend("cuda-emu")
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(shape).astype(np.float32) for shape in ((64, 512), (512, 48)))
    exact = a.astype(np.float64) @ b.astype(np.float64)
    x, y = backend.asarray(a), backend.asarray(b)
    off = backend.to_numpy(backend.xp.matmul(x, y))
    with gn.backends.cuda.matmul.tf32(True):
        on = backend.to_numpy(x @ y)
        double = backend.to_numpy(backend.xp.matmul(x.astype(np.float64), y.astype(np.float64)))
    np.testing.assert_allclose(on, tf32_reference(a).astype(np.float64) @ tf32_reference(b), rtol=1e-5, atol=1e-4)
    assert _relative_error(off, exact) < 1e-6
    assert 1e-4 < _relative_error(on, exact) < 1e-3  # TF32's 2^-11 input rounding, ~3e-4 measured
    np.testing.assert_array_equal(double, exact)  # float64 products are never TF32


@pytest.mark.parametrize("device", ["cpu", "cuda-emu"])
def test_linear_and_conv2d_follow_the_switch_and_the_cpu_ignores_it(device):
    gn.manual_seed(0)
    conv, linear = gn.nn.Conv2d(8, 16, 3, padding=1), gn.nn.Linear(256, 32)
    rng = np.random.default_rng(2)
    images, rows = rng.standard_normal((4, 8, 10, 10)).astype(np.float32), rng.standard_normal((16, 256))
    conv.to(device), linear.to(device)
    results = {}
    for allowed in (False, True):
        with gn.backends.cuda.matmul.tf32(allowed), gn.no_grad():
            results[allowed] = (conv(gn.tensor(images, device=device)).numpy(),
                                linear(gn.tensor(rows.astype(np.float32), device=device)).numpy())
    for off, on in zip(results[False], results[True]):
        if device == "cpu":
            np.testing.assert_array_equal(on, off)
        else:
            assert 1e-4 < _relative_error(on, off) < 1e-3


def test_config_key_sets_the_switch_for_the_run(monkeypatch):
    from gpunet.config import ConfigError, loads_config
    from gpunet.runner.run import check_run

    text = ("device: cuda-emu\ndata: {name: digits, flatten: true}\nmodel: {layers: [{type: Linear, in_features: 64, "
            "out_features: 10}]}\nloss: {name: cross_entropy}\noptimizer: {name: sgd, lr: 0.1}\n"
            "trainer: {epochs: 1}\n")
    assert loads_config(text)["allow_tf32"] is False
    check_run(loads_config(text, ["allow_tf32=true"]), announce_device=False)
    assert gn.backends.cuda.matmul.allow_tf32 is True and _compute_type() == linalg.COMPUTE_TYPE_TF32
    check_run(loads_config(text), announce_device=False)  # every run sets its own value
    assert gn.backends.cuda.matmul.allow_tf32 is False and _compute_type() == linalg.COMPUTE_TYPE_DEFAULT
    with pytest.raises(ConfigError, match="allow_tf32"):
        loads_config(text + "allow_tf32: maybe\n")
