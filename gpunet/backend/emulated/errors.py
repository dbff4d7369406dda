"""The one exception type of the CUDA emulator."""


class CudaEmuError(RuntimeError):
    """A kernel could not be built or launched, or failed while running (the message names the
    kernel and, where it applies, the parameter, block or source line at fault)."""
