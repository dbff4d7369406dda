"""PNG plots of training curves and sweep heatmaps, with matplotlib (an optional dependency: without it the plots
are skipped after a one-line hint)."""
from __future__ import annotations

import os
import sys

import numpy as np

from .atomic import atomic_write

__all__ = ["image_shape", "plot_augmented_samples", "plot_codes", "plot_heatmap", "plot_history", "plot_image_rows",
           "pyplot_or_hint"]

HINT = "gpunet: plots skipped: matplotlib is not installed (pip install matplotlib)"


def pyplot_or_hint():
    """``matplotlib.pyplot`` on the file-only Agg backend, or None after printing the install hint to stderr."""
    try:
        import matplotlib
    except ImportError:
        print(HINT, file=sys.stderr)
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_history(epochs: list[dict], directory) -> list[str]:
    """One PNG per quantity in the per-epoch logs (``loss.png``, ``accuracy.png``, ...), each with its train and
    validation curves against the epoch. Returns the paths written (none without matplotlib or epochs)."""
    if not epochs:
        return []
    plt = pyplot_or_hint()
    if plt is None:
        return []
    names = []
    for key in epochs[0]:
        for split in ("train_", "val_"):
            if key.startswith(split) and key[len(split):] not in names:
                names.append(key[len(split):])
    paths = []
    for name in names:
        figure, axes = plt.subplots(figsize=(6, 4))
        for split, label in (("train_", "train"), ("val_", "validation")):
            # the epochs that logged it (a DBN logs recon_error only while its RBMs train)
            points = [(e["epoch"], e[split + name]) for e in epochs if isinstance(e.get(split + name), (int, float))]
            if points:
                axes.plot(*zip(*points), marker="o", markersize=3, label=label)
        axes.set_xlabel("epoch")
        axes.set_ylabel(name)
        axes.set_title(name)
        axes.grid(alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = os.path.join(os.fspath(directory), f"{name}.png")
        _save(figure, path)
        plt.close(figure)
        paths.append(path)
    return paths


def plot_heatmap(values, row_labels, col_labels, row_name: str, col_name: str, title: str, path) -> str | None:
    """A heatmap of ``values[i][j]`` (rows: ``row_name`` values, columns: ``col_name`` values) with each cell
    annotated, as in seed 001's learning-rate x L2 grid. Returns the path, or None without matplotlib."""
    plt = pyplot_or_hint()
    if plt is None:
        return None
    figure, axes = plt.subplots(figsize=(1.2 * len(col_labels) + 3, 0.8 * len(row_labels) + 2))
    image = axes.imshow(values, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(col_labels)), [str(c) for c in col_labels])
    axes.set_yticks(range(len(row_labels)), [str(r) for r in row_labels])
    axes.set_xlabel(col_name)
    axes.set_ylabel(row_name)
    axes.set_title(title)
    middle = sum(image.get_clim()) / 2
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if value is not None:
                axes.text(j, i, f"{value:.3f}", ha="center", va="center", fontsize=8,
                          color="k" if value > middle else "w")  # readable on bright and dark cells
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    _save(figure, os.fspath(path))
    plt.close(figure)
    return os.fspath(path)


AUGMENTED_SAMPLES = "augmented_samples.png"


def _label(y) -> str:
    """A label, or the two likeliest classes of class probabilities (``3: 0.62, 7: 0.38``)."""
    if np.ndim(y) == 0:
        return str(int(y))
    top = np.argsort(-y)[:2]
    return ", ".join(f"{c}: {y[c]:.2f}" for c in top if y[c] > 0)


def _display(images: np.ndarray, low: float, high: float) -> np.ndarray:
    """(N, C, H, W) images as (N, H, W, 3) colours in [0, 1]: grey for one channel, RGB for three, else channel 0."""
    shown = images if images.shape[1] == 3 else np.repeat(images[:, :1], 3, axis=1)
    return np.clip((shown.transpose(0, 2, 3, 1) - low) / max(high - low, 1e-12), 0, 1)


def plot_augmented_samples(loader, directory, count: int = 16) -> str | None:
    """``augmented_samples.png`` in ``directory``: the first ``count`` images of the training loader's first batch
    (epoch 0) with their labels, each above itself as the loader's ``transform`` gives it to the model (one picture:
    a montage, drawn on the original images' value range). Written once (a resumed run keeps it); returns its path,
    or None without a transform or matplotlib."""
    path = os.path.join(os.fspath(directory), AUGMENTED_SAMPLES)
    if loader.transform is None or os.path.exists(path):
        return None
    plt = pyplot_or_hint()
    if plt is None:
        return None
    first = [a[loader.order(0)[:loader.batch_size]] for a in loader.arrays]
    x, y = first[0], first[1] if len(first) > 1 else None
    new_x, new_y = loader.transform(x, y, loader.batch_generator(0, 0))
    count = min(count, len(x))
    columns = min(count, 8)
    rows = -(-count // columns)
    low, high = float(x.min()), float(x.max())
    height, width = x.shape[2:]
    gap_h, gap_w = max(height // 2, 4), max(width // 6, 1)  # room for a label above each image
    cell_h, cell_w = height + gap_h, width + gap_w
    canvas = np.ones((2 * rows * cell_h, columns * cell_w, 3))
    figure, axes = plt.subplots(figsize=(1.2 * columns, 2.6 * rows))
    for block, images, targets in ((0, x, y), (1, new_x, new_y)):
        shown = _display(images[:count], low, high)
        for k in range(count):
            top, left = (2 * (k // columns) + block) * cell_h + gap_h, (k % columns) * cell_w
            canvas[top:top + height, left:left + width] = shown[k]
            if targets is not None:
                axes.text(left + width / 2, top - 0.5, _label(targets[k]), ha="center", va="bottom", fontsize=6)
    axes.imshow(canvas, interpolation="nearest")
    axes.axis("off")
    axes.set_title("training images (upper) and as augmented for the first step (lower)", fontsize=9)
    figure.tight_layout()
    _save(figure, path)
    plt.close(figure)
    return path


def image_shape(sample_shape) -> tuple | None:
    """The (C, H, W) picture of samples of ``sample_shape``: images as they are, a flattened square image (784 ->
    (1, 28, 28)) unflattened; None for samples that are not pictures."""
    shape = tuple(sample_shape)
    if len(shape) == 3 and shape[0] in (1, 3):
        return shape
    if len(shape) == 2:
        return (1, *shape)
    side = int(round(np.sqrt(np.prod(shape)))) if shape else 0
    return (1, side, side) if side > 1 and side * side == int(np.prod(shape)) else None


def plot_image_rows(rows: list, shape, path, title: str, low: float | None = None,
                    high: float | None = None) -> str | None:
    """A PNG of images in labelled rows (``rows``: (label, images) pairs, each images array holding one sample per
    item, reshaped to the (C, H, W) ``shape``), e.g. test images above their reconstructions. Grey levels span
    ``low``..``high`` (default: the range of all rows). Returns the path, or None without matplotlib."""
    plt = pyplot_or_hint()
    if plt is None:
        return None
    arrays = [np.asarray(images, dtype=np.float64).reshape(-1, *shape) for _, images in rows]
    low = min(float(a.min()) for a in arrays) if low is None else low
    high = max(float(a.max()) for a in arrays) if high is None else high
    columns = max(len(a) for a in arrays)
    height, width = shape[1:]
    gap, label_room = max(1, width // 8), max(3, height // 2)  # pixels between images; above each labelled row
    room = [label_room if label else 0 for label, _ in rows]
    canvas = np.ones((sum(room) + len(rows) * (height + gap) + gap, columns * (width + gap) + gap, 3))
    tops = np.cumsum([gap + room[0]] + [height + gap + r for r in room[1:]])
    for top, images in zip(tops, arrays):  # one picture for all images: one imshow, not one axes per image
        for c, image in enumerate(_display(images, low, high)):
            left = gap + c * (width + gap)
            canvas[top:top + height, left:left + width] = image
    inches = min(10.0, max(3.0, canvas.shape[1] / 10)) / canvas.shape[1]  # per pixel: 3 to 10 inches wide
    figure, axes = plt.subplots(figsize=(inches * canvas.shape[1], inches * canvas.shape[0] + 0.4))
    axes.imshow(canvas, interpolation="nearest")
    for top, (label, _) in zip(tops, rows):
        if label:
            axes.text(gap, top - 0.7, label, fontsize=8, va="bottom")
    axes.axis("off")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    _save(figure, os.fspath(path))
    plt.close(figure)
    return os.fspath(path)


def plot_codes(codes, labels, path, title: str, class_names=None) -> str | None:
    """A scatter PNG of 2-D codes coloured by class (an autoencoder's bottleneck, a VAE's latent means). Returns
    the path, or None without matplotlib."""
    plt = pyplot_or_hint()
    if plt is None:
        return None
    codes, labels = np.asarray(codes, dtype=np.float64), np.asarray(labels)
    figure, axes = plt.subplots(figsize=(6, 5))
    cmap = plt.get_cmap("tab10")
    for k, cls in enumerate(np.unique(labels)):
        chosen = labels == cls
        name = class_names[int(cls)] if class_names is not None and 0 <= int(cls) < len(class_names) else str(cls)
        axes.scatter(codes[chosen, 0], codes[chosen, 1], s=6, alpha=0.7, color=cmap(k % 10), label=name)
    axes.set_xlabel("code 1")
    axes.set_ylabel("code 2")
    axes.set_title(title)
    axes.legend(markerscale=3, fontsize=7, loc="best")
    figure.tight_layout()
    _save(figure, os.fspath(path))
    plt.close(figure)
    return os.fspath(path)


def _save(figure, path: str) -> None:
    """Write ``figure`` as a PNG, atomically."""
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100))
