#!/usr/bin/env python
"""Seed 002's GAN on the 8x8 scikit-learn digits, with the non-saturating generator loss, through the Python API.

``gpunet train configs/gan_digits.yaml`` trains the same networks the same way from YAML (the ``gan`` task), with a
run directory, sample grids every epoch, checkpoints and exact resume, and the judge's quality figure in
summary.json; configs/gan_dcgan_digits.yaml and configs/gan_wgan_gp_digits.yaml are its DCGAN and WGAN-GP variants.

The generator (``gpunet.models.MLPGenerator``) maps 16 standard-normal numbers through a hidden layer of 64 (ReLU)
to 64 pixels (sigmoid, so in [0, 1] like the digits scaled from 0..16); the discriminator (``MLPDiscriminator``)
maps 64 pixels through 64 LeakyReLU(0.2) units to one logit. Each batch takes one step of each, with its own Adam:

- discriminator: maximise log D(x) + log(1 - D(G(z))) (``gan.discriminator_loss``), on a *detached* fake batch so
  that this step computes no generator gradients;
- generator: maximise log D(G(z)) (seed 002: "we maximize E[log D(G(z))] rather than minimizing
  E[log(1 - D(G(z)))]"; ``gan.generator_loss(..., "non_saturating")``), which still gives gradients when D rejects
  the fakes easily.

    python scripts/gan_digits.py [--epochs 30] [--plot samples.png] [--device cpu]

Prints the mean D and G losses of every epoch, and the mean pixel of the samples before and after training against
the data's. ``main`` returns them (see ``train``).
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gpunet as gn  # noqa: E402  (after the path is set, so a source checkout works uninstalled)
from gpunet.data import DataLoader, load_dataset  # noqa: E402
from gpunet.models import MLPDiscriminator, MLPGenerator, gan  # noqa: E402
from gpunet.train.plots import plot_image_rows  # noqa: E402

from example_device import add_device_argument, use_device  # noqa: E402  (beside this script)

NOISE, HIDDEN, PIXELS = 16, 64, 64


def build_generator(noise=NOISE, hidden=HIDDEN, pixels=PIXELS):
    """noise -> hidden (ReLU) -> pixels (sigmoid)."""
    return MLPGenerator(noise, hidden, pixels)


def build_discriminator(pixels=PIXELS, hidden=HIDDEN):
    """pixels -> hidden (LeakyReLU 0.2) -> one logit (no sigmoid: the loss takes logits)."""
    return MLPDiscriminator(pixels, hidden)


def discriminator_step(discriminator, d_optimizer, real, fake):
    """One Adam step of D on BCE(D(real), 1) + BCE(D(fake), 0); ``fake`` must be detached. Returns the loss."""
    loss = gan.discriminator_loss(discriminator(real), discriminator(fake))
    d_optimizer.zero_grad()
    loss.backward()
    d_optimizer.step()
    return loss.item()


def generator_step(discriminator, g_optimizer, fake):
    """One Adam step of G on the non-saturating loss BCE(D(fake), 1). Gradients also reach D's parameters, but only
    G's optimizer steps (and D's zeroes them before its next step). Returns the loss."""
    loss = gan.generator_loss(discriminator(fake), "non_saturating")
    g_optimizer.zero_grad()
    loss.backward()
    g_optimizer.step()
    return loss.item()


def sample(generator, noise):
    """The generator's images for ``noise`` as a NumPy array (n, 8, 8)."""
    with gn.no_grad():
        return generator(noise).numpy().reshape(-1, 8, 8)


def train(epochs=30, batch_size=64, lr=2e-3, beta1=0.5, seed=0, log=print):
    """Train the GAN on the digits' training split; returns a dict of per-epoch ``d_loss`` and ``g_loss`` lists,
    ``data_mean`` (mean training pixel), ``initial_samples`` and ``samples`` (256 images, 256x8x8, from one fixed
    noise batch before and after training), their mean pixels ``initial_mean`` and ``final_mean``, and the two
    networks."""
    gn.manual_seed(seed)
    data = load_dataset("digits", seed=seed, normalize="scale", flatten=True).train.x  # pixels in [0, 1]
    generator, discriminator = build_generator(), build_discriminator()
    g_optimizer = gn.optim.Adam(generator.parameters(), lr=lr, betas=(beta1, 0.999))
    d_optimizer = gn.optim.Adam(discriminator.parameters(), lr=lr, betas=(beta1, 0.999))
    fixed_noise = gn.randn(256, NOISE)
    initial_samples = sample(generator, fixed_noise)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, drop_last=True, seed=seed)
    d_losses, g_losses = [], []
    for epoch in range(epochs):
        d_sum = g_sum = 0.0
        for batch in loader:
            real = gn.tensor(batch)
            fake = generator(gn.randn(len(batch), NOISE))
            d_sum += discriminator_step(discriminator, d_optimizer, real, fake.detach())
            g_sum += generator_step(discriminator, g_optimizer, fake)
        d_losses.append(d_sum / len(loader))
        g_losses.append(g_sum / len(loader))
        log(f"epoch {epoch + 1:3d}/{epochs}  D loss {d_losses[-1]:.4f}  G loss {g_losses[-1]:.4f}")
    samples = sample(generator, fixed_noise)
    return {"d_loss": d_losses, "g_loss": g_losses, "data_mean": float(data.mean()),
            "initial_samples": initial_samples, "samples": samples,
            "initial_mean": float(initial_samples.mean()), "final_mean": float(samples.mean()),
            "generator": generator, "discriminator": discriminator}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training digits (default 30)")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate of both networks (default 2e-3)")
    parser.add_argument("--beta1", type=float, default=0.5, help="Adam's first beta (default 0.5, as DCGAN)")
    parser.add_argument("--seed", type=int, default=0, help="gn.manual_seed and the data split (default 0)")
    add_device_argument(parser)
    parser.add_argument("--plot", metavar="PATH", help="write an 8x8 grid of generated digits to this PNG")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be at least 1")
    use_device(parser, args.device)
    results = train(args.epochs, args.batch_size, args.lr, args.beta1, args.seed)
    print(f"mean pixel: data {results['data_mean']:.3f}, samples before training {results['initial_mean']:.3f}, "
          f"after {results['final_mean']:.3f}")
    if args.plot:
        rows = [("", results["samples"][k:k + 8]) for k in range(0, 64, 8)]
        if plot_image_rows(rows, (1, 8, 8), args.plot, "samples after training", 0.0, 1.0):
            print(f"samples written to {args.plot}")
    return results


if __name__ == "__main__":
    main()
