"""Tools for testing gpunet: NVRTC compilation (``nvrtc``) and a CPU emulator of CUDA (``cuda_emu``)."""
from .gradcheck import GradcheckError, gradcheck, gradgradcheck
