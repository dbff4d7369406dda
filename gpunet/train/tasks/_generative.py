"""What the generative tasks (``vae``, ``gan``) share: noise that does not touch gpunet's generator, for evaluation
batches and for the pictures, the check that the data suits a sigmoid output, and the pictures' grids."""
from __future__ import annotations

import os
import zlib

import numpy as np

from ...autograd import Tensor
from .. import plots

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


def host_batch(task: str, x) -> np.ndarray:
    """A batch as a host array (a Tensor too, as ``gpunet warmup`` passes), checked to lie in [0, 1]: the model's
    sigmoid output and the BCE/Bernoulli terms need that; the error says how to get it."""
    x = x.numpy() if isinstance(x, Tensor) else np.asarray(x)
    if len(x) and (float(np.min(x)) < 0 or float(np.max(x)) > 1):
        raise ValueError(f"task {task}: the inputs lie in [{float(np.min(x)):.3g}, {float(np.max(x)):.3g}] but the "
                         f"model's sigmoid output covers [0, 1]; set the dataset's normalize: scale (or minmax)")
    return x


def sample_shape(splits: dict) -> tuple:
    """The shape of one sample of the data (from any of the run's whole-split loaders)."""
    return tuple(next(iter(splits.values())).arrays[0].shape[1:])


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


def plot_grid(images, sample_shape, path: str, title: str, columns: int = 8, labels=()) -> str | None:
    """``images`` (one sample of ``sample_shape`` each) as a PNG grid of ``columns`` per row, grey levels 0..1 (the
    sigmoid's range), rows labelled by ``labels`` (cycled); None when the samples are not pictures or without
    matplotlib."""
    shape = plots.image_shape(sample_shape)
    if shape is None:
        return None
    images = np.asarray(images)
    starts = range(0, len(images), columns)
    names = [labels[k % len(labels)] if labels else "" for k in range(len(starts))]
    return plots.plot_image_rows([(name, images[k:k + columns]) for name, k in zip(names, starts)], shape, path,
                                 title, low=0.0, high=1.0)
