"""What the generative tasks (``vae``, ``gan``) share: noise that does not touch gpunet's generator, for evaluation
batches and for the pictures, and the check that the data suits a sigmoid output."""
from __future__ import annotations

import os
import zlib

import numpy as np

#: seed of the fixed latent codes the sample grids show every epoch and the quality figure judges
PICTURE_SEED = 2024


def batch_normal(x: np.ndarray, shape) -> np.ndarray:
    """Standard-normal noise of ``shape`` that depends only on the batch ``x`` (float32): an evaluation pass draws the
    same noise for the same batch whenever it runs, and leaves gpunet's generator (the training stream) alone."""
    rng = np.random.default_rng([PICTURE_SEED, zlib.crc32(np.ascontiguousarray(x).tobytes())])
    return rng.standard_normal(shape).astype(np.float32)


def fixed_normal(count: int, dim: int) -> np.ndarray:
    """The same ``count`` standard-normal latent codes of size ``dim`` in every call (the pictures' noise)."""
    return np.random.default_rng(PICTURE_SEED).standard_normal((count, dim)).astype(np.float32)


def check_unit_range(task: str, x: np.ndarray) -> None:
    """The model's sigmoid output and Bernoulli/BCE terms need data in [0, 1]; say how to get it otherwise."""
    if len(x) and (float(np.min(x)) < 0 or float(np.max(x)) > 1):
        raise ValueError(f"task {task}: the inputs lie in [{float(np.min(x)):.3g}, {float(np.max(x)):.3g}] but the "
                         f"model's sigmoid output covers [0, 1]; set the dataset's normalize: scale (or minmax)")


def first_images(splits: dict, count: int):
    """Up to ``count`` images of the validation split (else test, else train) for reconstruction grids, or None."""
    for name in ("val", "test", "train"):
        loader = splits.get(name)
        if loader is not None and len(loader.arrays[0]):
            return np.asarray(loader.arrays[0][:count])
    return None


def picture_path(directory: str, kind: str, epoch: int) -> str:
    """``<directory>/<kind>/epoch-NNNN.png`` (the folder made if need be): one picture of a kind per epoch."""
    folder = os.path.join(directory, kind)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"epoch-{epoch:04d}.png")
