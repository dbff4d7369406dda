"""Fused-kernel references, one module per kernel family (the references for kernels/*.cu).

Each function takes the array namespace ``xp`` first and uses only ``xp`` for array math, so the same code is
the NumPy backend's kernel and the CuPy backend's fallback for a family without a ``.cu`` file
(see ``gpunet.backend.fused``).
"""
