"""NumPy implementations of the fused kernels, one module per kernel family (the references for kernels/*.cu)."""
