"""Tools for testing gpunet: gradient checks (``gradcheck``) and NVRTC compilation (``nvrtc``); the CUDA emulator is
the emulated device, ``gpunet.backend.emulated``."""
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
