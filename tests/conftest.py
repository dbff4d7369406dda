"""Shared pytest fixtures.

``device``: runs a test once per backend, on "cpu" (NumPy) and on "cuda-emu" (the real CuPy backend code on
a CPU stand-in for CuPy, every custom kernel run by the CUDA emulator). The fixture makes that device the
current one for the test and restores the previous device afterwards; its value is the device string::

    def test_softmax_rows_sum_to_one(device):
        x = gn.randn(4, 7)              # created on `device`
        assert x.device == gn.device(device)

``launched_kernels``: the names of the kernels launched on the emulated device during the test, in order (to show
that a test exercised the CUDA kernels and not an xp reference).

Under CI (``CI`` set in the environment) hypothesis draws the same examples on every run (``derandomize``), so a
failure there is reproducible and a run cannot fail by the luck of the draw; locally each run explores new ones.
"""
import os

import pytest
from hypothesis import settings

from gpunet import backend

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

DEVICES = ("cpu", "cuda-emu")


@pytest.fixture(params=DEVICES)
def device(request):
    previous = backend.current().device
    backend.set_device(request.param)
    try:
        yield request.param
    finally:
        backend.set_device(previous)


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
