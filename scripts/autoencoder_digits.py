"""Seed 002's undercomplete autoencoder: images squeezed through a 32-unit bottleneck and reconstructed.

The notes' Keras network is Dense(32, relu) then Dense(784, sigmoid) on 28x28 MNIST images; here the same
encoder/decoder runs on the 8x8 scikit-learn digits (64-32-64, the default) or on 5000 real MNIST digits
(784-32-784, ``--dataset mnist5k``), pixels scaled to [0, 1], trained with Adam on the mean squared
reconstruction error. No labels are used. The script prints the test reconstruction MSE next to a trivial
baseline, the MSE of predicting every test image by the training set's mean image, and with ``--plot PATH``
writes a PNG of test images (top row) above their reconstructions (bottom row).

    python scripts/autoencoder_digits.py [--dataset digits|mnist5k] [--epochs 50] [--plot ae.png] [--device cpu]

The same from YAML, with a run directory, checkpoints, exact resume and reconstructions.png:
``gpunet train configs/autoencoder_digits.yaml`` (the ``autoencode`` task; its keys give the denoising, sparse
and contractive kinds, and configs/autoencoder_compressor.yaml is the 784-300-2-300-784 compressor).
"""
from __future__ import annotations

import argparse

import numpy as np

import gpunet as gn
from gpunet.data import DataLoader, load_dataset

from example_device import add_device_argument, use_device

DATASETS = ("digits", "mnist5k")


def autoencoder(pixels: int, code: int):
    """Seed 002's undercomplete autoencoder: Linear(pixels, code), ReLU, Linear(code, pixels), Sigmoid."""
    return gn.nn.Sequential(gn.nn.Linear(pixels, code), gn.nn.ReLU(), gn.nn.Linear(code, pixels), gn.nn.Sigmoid())


def reconstruct(net, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """The network's reconstructions of the rows of ``x`` as a NumPy array (no graph kept)."""
    with gn.no_grad():
        return np.concatenate([net(gn.tensor(x[i:i + batch_size])).numpy() for i in range(0, len(x), batch_size)])


def save_plot(path: str, originals: np.ndarray, reconstructions: np.ndarray, columns: int = 10) -> None:
    """A PNG with ``columns`` originals, evenly spaced through the set, above their reconstructions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    side = int(round(np.sqrt(originals.shape[1])))
    columns = min(columns, len(originals))
    picked = np.linspace(0, len(originals) - 1, columns).round().astype(int)  # sets may be sorted by class
    fig, axes = plt.subplots(2, columns, figsize=(columns, 2.2), squeeze=False)
    for col in range(columns):
        for row, images in enumerate((originals, reconstructions)):
            axes[row, col].imshow(images[picked[col]].reshape(side, side), cmap="gray", vmin=0.0, vmax=1.0)
            axes[row, col].axis("off")
    axes[0, 0].set_title("original", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstructed", fontsize=8, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    """Train the autoencoder; return a dict with the per-epoch training losses, the test and baseline MSE,
    their ratio, the network and the plot path (None without ``--plot``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=DATASETS, default="digits",
                        help="digits: 8x8 scikit-learn digits (64-32-64); mnist5k: 28x28 MNIST (784-32-784)")
    parser.add_argument("--code", type=int, default=32, help="bottleneck width (the notes: 32)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    parser.add_argument("--seed", type=int, default=0, help="weights, shuffling and the train/test split")
    add_device_argument(parser)
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of test images and their reconstructions")
    parser.add_argument("--quiet", action="store_true", help="print only the final result")
    args = parser.parse_args(argv)
    if args.code < 1 or args.epochs < 1 or args.batch_size < 1:
        parser.error("--code, --epochs and --batch-size must be at least 1")

    use_device(parser, args.device)
    gn.manual_seed(args.seed)
    data = load_dataset(args.dataset, seed=args.seed, validation_split=0.0, flatten=True, normalize="scale")
    x_train, x_test = data.train.x, data.test.x
    net = autoencoder(x_train.shape[1], args.code)
    optimizer = gn.optim.Adam(net.parameters(), lr=args.lr)
    loader = DataLoader(x_train, batch_size=args.batch_size, shuffle=True, seed=args.seed)

    losses = []
    for epoch in range(args.epochs):
        total = 0.0
        for batch in loader:
            xb = gn.tensor(batch)
            loss = gn.nn.functional.mse_loss(net(xb), xb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        losses.append(total / len(x_train))
        if not args.quiet:
            print(f"epoch {epoch + 1:3d}  train MSE {losses[-1]:.5f}")

    reconstructions = reconstruct(net, x_test)
    test_mse = float(np.mean((reconstructions.astype(np.float64) - x_test) ** 2))
    baseline_mse = float(np.mean((x_train.astype(np.float64).mean(axis=0) - x_test) ** 2))
    pixels = x_train.shape[1]
    print(f"{args.dataset} {pixels}-{args.code}-{pixels}: test reconstruction MSE {test_mse:.5f}, "
          f"mean-image baseline {baseline_mse:.5f} (ratio {test_mse / baseline_mse:.3f})")
    if args.plot:
        save_plot(args.plot, x_test, reconstructions)
        print(f"wrote {args.plot}")
    return {"losses": losses, "test_mse": test_mse, "baseline_mse": baseline_mse,
            "ratio": test_mse / baseline_mse, "net": net, "plot": args.plot}


if __name__ == "__main__":
    main()
