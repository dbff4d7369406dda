"""PNG plots of training curves and sweep heatmaps, with matplotlib (an optional dependency: without it the plots
are skipped after a one-line hint)."""
from __future__ import annotations

import os
import sys

from .atomic import atomic_write

__all__ = ["plot_heatmap", "plot_history", "pyplot_or_hint"]

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
    x = [e["epoch"] for e in epochs]
    for name in names:
        figure, axes = plt.subplots(figsize=(6, 4))
        for split, label in (("train_", "train"), ("val_", "validation")):
            if all(isinstance(e.get(split + name), (int, float)) for e in epochs):
                axes.plot(x, [e[split + name] for e in epochs], marker="o", markersize=3, label=label)
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


def _save(figure, path: str) -> None:
    """Write ``figure`` as a PNG, atomically."""
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100))
