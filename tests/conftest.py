"""Shared pytest fixtures.

``device``: runs a test once per backend, on "cpu" (NumPy) and on "cuda-emu" (the real CuPy backend code on
a CPU stand-in for CuPy, every custom kernel run by the CUDA emulator). The fixture makes that device the
current one for the test and restores the previous device afterwards; its value is the device string::

    def test_softmax_rows_sum_to_one(device):
        x = gn.randn(4, 7)              # created on `device`
        assert x.device == gn.device(device)

``launched_kernels``: the names of the kernels launched on the emulated device during the test, in order (to show
that a test exercised the CUDA kernels and not an xp reference).
"""
import pytest

from gpunet import backend

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
    from gpunet.testing.cuda_emu import fake_cupy

    names = []
    original = fake_cupy._Kernel.__call__

    def spy(self, *args, **kwargs):
        names.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(fake_cupy._Kernel, "__call__", spy)
    return names
