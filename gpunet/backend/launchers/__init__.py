"""CuPy launchers of gpunet's kernel families, one mixin class per ``kernels/<family>.cu``, bases of ``CupyBackend``.

Each mixin's methods have the names and signatures of the fused kernels they implement (see docs/internals.md);
they launch through ``CupyBackend._launch`` and fall back to the xp reference for dtypes the ``.cu`` file lacks.
"""
