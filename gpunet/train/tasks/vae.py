"""``vae``: seed 002's variational autoencoder (``gpunet.models.vae``) trained on the negative ELBO of its inputs.

Logged per split: ``loss`` (reconstruction + beta * kl, the objective), ``elbo`` (nats per sample, the bound itself),
``reconstruction`` (-log p(x|z), summed over pixels), ``kl`` and ``mse`` (of the mean reconstruction
sigmoid(decode(mu)), comparable with the autoencoders' ``test_mse``); summary.json gets them as ``test_<name>``.
Each epoch draws a reconstruction grid (``reconstructions/epoch-NNNN.png``) and samples from the prior
(``samples/epoch-NNNN.png``, the same latent codes every epoch); the end of the run draws the 2-D latent-space grid (the decoder over a grid of normal quantiles of the first two latent
dimensions) and the summary has the judge's figures for 1,000 samples (``gpunet.train.sample_quality``).
"""
from __future__ import annotations

import os
from statistics import NormalDist

import numpy as np

from ... import ops
from ...autograd import no_grad
from ...models.vae import VAE, kl_divergence, reconstruction_nll
from ..sample_quality import judge_samples
from ._generative import (batch_normal, host_batch, first_images, fixed_normal, picture_path, plot_grid,
                          sample_shape)
from .base import Key, Task, check_keys, register_task

GRID = 15  # the latent-space grid is GRID x GRID decoded points


@register_task("vae")
class VAETask(Task):
    """A variational autoencoder on inputs in [0, 1] (the task builds it from its keys unless the config gives a
    ``model:`` with ``encode``, ``reparameterize`` and ``decode``)."""

    own_models = ("model",)
    data = "inputs"
    uses_loss = False
    loss_names = ("loss", "elbo", "reconstruction", "kl", "mse")
    keys = {
        "latent_dim": Key("size of the latent code z (2 or more draws the 2-D latent-space grid)", ge=1),
        "hidden": Key("widths of the encoder's hidden layers (the decoder mirrors them)", ge=1),
        "activation": Key("activation of the hidden layers", choices=("relu", "leaky_relu", "tanh", "sigmoid")),
        "beta": Key("weight of the KL term in the loss (1: the negative ELBO; other values: a beta-VAE)", gt=0),
        "quality_samples": Key("samples from the prior that a digits judge rates in summary.json (0: none)", ge=0),
    }

    def __init__(self, latent_dim: int = 2, hidden: list[int] = (256,), activation: str = "relu", beta: float = 1.0,
                 quality_samples: int = 1000):
        check_keys(self, latent_dim=latent_dim, hidden=hidden, activation=activation, beta=beta,
                   quality_samples=quality_samples)
        self.latent_dim, self.hidden, self.activation = latent_dim, list(hidden), activation
        self.beta, self.quality_samples = beta, quality_samples

    def build_model(self, name, info):
        return VAE(int(np.prod(info.input_shape)), self.hidden, self.latent_dim, self.activation)

    def dry_run(self, check, info):
        check("model", (int(np.prod(info.input_shape)),))  # the steps flatten the samples

    def bind(self, trainer, models, optimizers, loss_fn):
        super().bind(trainer, models, optimizers, loss_fn)
        missing = [m for m in ("encode", "reparameterize", "decode") if not hasattr(self.model, m)]
        if missing:
            raise ValueError(f"task vae: the model ({type(self.model).__name__}) has no {', '.join(missing)}; leave "
                             f"model: out of the config to get gpunet.models.VAE built from the task's keys")

    # ----- steps -------------------------------------------------------------------------------------------------
    def _flat(self, x):
        """The host batch ``x`` (checked by ``host_batch``) on the device, one row per sample."""
        return self.input(x.reshape(len(x), -1))

    def _losses(self, x, logits, mu, logvar):
        reconstruction, kl = reconstruction_nll(logits, x), kl_divergence(mu, logvar)
        loss = ops.mean(reconstruction + kl * self.beta)
        with no_grad():
            mse = ops.mean((ops.sigmoid(self.model.decode(mu)) - x) ** 2)
            reconstruction, kl = ops.mean(reconstruction), ops.mean(kl)
        return {"loss": loss, "elbo": -(reconstruction + kl), "reconstruction": reconstruction, "kl": kl,
                "mse": mse}

    def train_step(self, x, y):
        if not len(x):
            self.update("model", None)
            return {}
        x = self._flat(host_batch("vae", x))
        losses = self._losses(x, *self.model(x))
        self.update("model", losses["loss"])
        return losses

    def eval_step(self, x, y):
        x = host_batch("vae", x)
        flat = self._flat(x)
        mu, logvar = self.model.encode(flat)
        eps = self.input(batch_normal(np.asarray(x, flat.dtype), tuple(mu.shape)))  # no copy back from the device
        return self._losses(flat, self.model.decode(self.model.reparameterize(mu, logvar, eps)), mu, logvar)

    # ----- pictures and figures ------------------------------------------------------------------------------------
    def _decode(self, z: np.ndarray) -> np.ndarray:
        with no_grad():
            return ops.sigmoid(self.model.decode(self.input(z))).numpy()

    def epoch_artifacts(self, directory, epoch, splits):
        shape, paths = sample_shape(splits), []
        images = first_images(splits, 32)
        if images is not None:
            with no_grad():
                mu, _ = self.model.encode(self.input(images.reshape(len(images), -1)))
            rebuilt = self._decode(mu.numpy()).reshape(images.shape)
            columns = min(8, len(images))
            used = len(images) // columns * columns
            pairs = np.stack([images[:used].reshape(-1, columns, *shape), rebuilt[:used].reshape(-1, columns, *shape)],
                             axis=1)  # rows of images, each above its reconstructions
            paths.append(plot_grid(pairs.reshape(-1, *shape), shape, picture_path(directory, "reconstructions", epoch),
                                   f"epoch {epoch}: images and their reconstructions decode(mu)", columns,
                                   labels=("images", "decode(mu)")))
        samples = self._decode(fixed_normal(64, self.model.latent_dim)).reshape((-1,) + shape)
        paths.append(plot_grid(samples, shape, picture_path(directory, "samples", epoch),
                               f"epoch {epoch}: decode(z), z ~ N(0, I), the same z every epoch"))
        return [p for p in paths if p]

    def final_artifacts(self, directory, splits):
        if self.model.latent_dim < 2:
            return []
        quantiles = [NormalDist().inv_cdf((k + 0.5) / GRID) for k in range(GRID)]
        z = np.zeros((GRID * GRID, self.model.latent_dim), dtype=np.float32)
        z[:, 0] = np.tile(quantiles, GRID)  # left to right
        z[:, 1] = np.repeat(quantiles[::-1], GRID)  # top to bottom
        shape = sample_shape(splits)
        path = plot_grid(self._decode(z).reshape((-1,) + shape), shape, os.path.join(directory, "latent_grid.png"),
                         "the decoder over a grid of normal quantiles of (z1, z2)", columns=GRID)
        return [path] if path else []

    def summary(self, splits):
        if not self.quality_samples:
            return {}
        return judge_samples(self._decode(fixed_normal(self.quality_samples, self.model.latent_dim)), splits)

