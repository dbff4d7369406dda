"""gpunet's test kit: ``assert_close`` (the one closeness check, tolerances by dtype), gradient checks
(``gradcheck``), NVRTC compilation (``nvrtc``) and the table of kernel cases (``kernel_cases``) that the parity tests
and the profiler share. The CUDA emulator is the emulated device, ``gpunet.backend.emulated``."""
from .closeness import assert_close
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
