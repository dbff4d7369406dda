"""Run CUDA kernels on the CPU: the exact ``.cu`` source, compiled by g++ with a shim for the
CUDA built-ins, launched from Python on NumPy arrays.

API (small on purpose, so that a ``cupy.RawModule`` / ``cupy.RawKernel`` stand-in can wrap it)::

    module = load("kernels/softmax.cu")          # compile once, cached by source hash
    module.launch("softmax_rows_f32", grid, block, (x, y, rows, cols), shared_mem=0)
    kernel = module.get_function("softmax_rows_f32")
    kernel(grid, block, (x, y, rows, cols), shared_mem=0)   # cupy.RawKernel call semantics

- ``grid`` and ``block`` are ints or tuples of up to 3 ints, within CUDA's limits; ``shared_mem``
  is the dynamic shared memory size in bytes (kernels declare it with ``GPUNET_DYNAMIC_SHARED``
  from ``kernels/common.cuh``).
- ``args`` follow CuPy's rules (arrays -> pointers; Python int/float/bool -> long long/double/bool;
  NumPy scalars keep their dtype) and are checked against the kernel's C signature parsed from the
  source: any mismatch raises :class:`CudaEmuError` naming the kernel, the parameter and both types.
  Arrays must be C-contiguous; arrays behind non-const pointers must be writeable.
- Blocks run one after another (so ``__shared__`` can be static storage, refilled with 0xFF bytes
  - NaN - at every block start, as a GPU gives a block garbage). The threads of a block run as
  fibers switched at every ``__syncthreads()`` (default, fast and repeatable), as fibers in a
  shuffled but repeatable order (``mode="shuffled"``, what the test suite runs: a race that the
  index order hides shows), or, with ``mode="threads"``, as concurrent OS threads of a reused pool
  meeting at a real barrier.
- ``ftz=True`` (per module or launch, or ``GPUNET_CUDA_EMU_FTZ=1``) flushes subnormal floats to
  zero as CuPy's ``-ftz=true`` does on a GPU (double arithmetic too, which a GPU does not flush).
  Threads reaching different barriers (or one reaching the end of the kernel while others wait),
  or a barrier wait longer than ``timeout`` seconds (deadlock), raise :class:`CudaEmuError`
  naming the kernel, the block and the source lines.
- ``load(path, sanitize="address")`` builds with AddressSanitizer and runs each launch in a
  subprocess on exactly sized copies of the arrays (results copied back): an out-of-bounds access
  raises :class:`CudaEmuError` holding the ASan report. ``load(path, sanitize="thread",
  mode="threads")`` does the same with ThreadSanitizer, which reports data races between the
  threads of a block (a missing ``__syncthreads()``). ``isolate=True`` uses a subprocess alone.
- Not emulated: warp primitives (``__shfl_*_sync``, ``__ballot_sync``; kernels use shared-memory
  reductions), streams (launches run in host order; the CuPy stand-in checks their order: ``streams``),
  textures. Fiber stacks are 256 KB per thread (a GPU's default is 1 KB).
- :func:`fill_nan` / :func:`nan_array` poison output buffers so unwritten elements show up.

Built libraries are cached in ``$GPUNET_CACHE/cuda_emu`` (default ``~/.cache/gpunet/cuda_emu``).
"""

from .errors import CudaEmuError
from .module import Kernel, Module, fill_nan, load, nan_array
from .signature import KernelSignature, Param, parse_kernels

__all__ = ["CudaEmuError", "Kernel", "KernelSignature", "Module", "Param", "fill_nan", "load", "nan_array",
           "parse_kernels"]
