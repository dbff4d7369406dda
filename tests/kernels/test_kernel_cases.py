"""Every case of the kernel table (``gpunet.testing.kernel_cases``, which the profiler reads too) gives on "cuda-emu"
(the CuPy backend's launcher, the CUDA kernel run by the emulator) what it gives on "cpu" (the xp reference), at
every size the case checks: odd sizes along the kernel axis (1, 7, 33, 1025) for launch geometry, one element, more
than a block. The launches are the entry points the registry declares for the kernel; every declared entry point is
launched by some case, and every kernel with a ``.cu`` has a case."""
from __future__ import annotations

import pytest

from gpunet.backend import get_backend
from gpunet.backend.registry import KERNELS
from gpunet.testing import assert_close
from gpunet.testing.kernel_cases import all_cases

CASES = all_cases()
CHECKS = [(case, sizes) for case in CASES for sizes in case.checks]


def _id(check) -> str:
    case, sizes = check
    return f"{case.name}-" + ",".join(f"{k}={v}" for k, v in sizes.items())


@pytest.mark.parametrize("case, sizes", CHECKS, ids=map(_id, CHECKS))
def test_cuda_emu_agrees_with_cpu(case, sizes, launched_kernels):
    expected = case.run(get_backend("cpu"), sizes)
    emu = get_backend("cuda-emu")
    args = case.arguments(emu, sizes)
    launched_kernels.clear()  # the kernel's own launches, not those that made its arguments
    got = case.call(emu, args)
    declared = KERNELS[case.kernel].entry_points
    assert launched_kernels and set(launched_kernels) <= set(declared), f"{case.name} launched {launched_kernels}"
    assert len(got) == len(expected) > 0
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a.dtype == b.dtype, f"{case.name} output {i}: {a.dtype} on cuda-emu, {b.dtype} on cpu"
        assert_close(a, b, what=f"{case.name} output {i} at {sizes}", **case.tolerance)


def test_every_kernel_with_a_cuda_file_has_cases_launching_every_entry_point(launched_kernels):
    for case in CASES:
        case.run(get_backend("cuda-emu"), case.checks[0])
    for name, kernel in KERNELS.items():
        if kernel.family is not None:
            assert any(case.kernel == name for case in CASES), f"no kernel case for {name}"
            missing = set(kernel.entry_points) - set(launched_kernels)
            assert not missing, f"no kernel case launches {sorted(missing)} of {name}"
