"""CuPy launchers of gpunet's kernel families, one module per ``kernels/<family>.cu``.

Each launcher takes the backend and the fused kernel's arguments, packs them and launches the family's CUDA
kernels through ``backend.launch``; ``gpunet.backend.registry`` declares which launcher serves which fused kernel,
for which dtypes, and which argument checks run first. Shared arithmetic lives in ``common``.
"""
