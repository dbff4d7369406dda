"""``gan``: seed 002's generative adversarial networks -- a generator and a discriminator (a critic for the
Wasserstein losses), each with its own optimizer (``gpunet.models.gan`` has the networks and the losses).

Every training batch takes one discriminator step on the real batch against a fresh generated one (detached); every
``d_steps``-th batch also takes one generator step (Goodfellow et al.'s k discriminator steps per generator step,
each on its own minibatch). ``generator_loss`` picks the game: ``non_saturating`` (-log D(G(z))) or ``minimax``
(log(1 - D(G(z)))) against the BCE discriminator, or ``wasserstein`` (WGAN) with weight clipping (``clip_value``)
or the gradient penalty (``gradient_penalty``: its weight lambda, WGAN-GP, through double backprop).

Logged per split: ``d_loss`` (with the penalty when there is one), ``g_loss`` (on batches without a generator step,
the generator's loss against the updated discriminator, without a step) and ``loss`` = d_loss + g_loss (what the
progress display shows and the non-finite check watches). Each epoch draws a grid of 64 samples from the same latent
codes (``samples/epoch-NNNN.png``); summary.json gets the judge's figures for ``quality_samples`` samples (``gpunet.train.sample_quality``:
confidence, class histogram for mode collapse, classifier score, next to the same figures of the real test images).
"""
from __future__ import annotations

import numpy as np

from ... import ops
from ...autograd import enable_grad, no_grad
from ...models.gan import (GENERATOR_LOSSES, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator,
                           clip_weights, critic_loss, discriminator_loss, generator_loss, gradient_penalty,
                           wasserstein_generator_loss)
from ..sample_quality import judge_samples
from ._generative import (batch_normal, host_batch, fixed_normal, picture_path, plot_grid,
                          sample_shape)
from .base import Key, ModelShapeError, Task, check_keys, register_task

ARCHITECTURES = ("mlp", "dcgan")


@register_task("gan")
class GANTask(Task):
    """A GAN on inputs in [0, 1]; the task builds both networks from its keys unless the config's ``models:`` gives
    ``generator`` (latent codes (N, latent_dim) -> samples) and ``discriminator`` (samples -> one score each)."""

    models = ("generator", "discriminator")
    own_models = ("generator", "discriminator")
    data = "inputs"
    uses_loss = False
    loss_names = ("loss", "d_loss", "g_loss")
    keys = {
        "architecture": Key("mlp: fully connected networks on flat inputs; dcgan: transposed convolutions and "
                            "convolutions on images (C, s, s), s a multiple of 4", choices=ARCHITECTURES),
        "latent_dim": Key("size of the generator's noise input z ~ N(0, I)", ge=1),
        "hidden": Key("mlp: hidden widths of both networks", ge=1),
        "features": Key("dcgan: channels of the first discriminator / last generator convolution", ge=1),
        "generator_loss": Key("non_saturating or minimax (with the BCE discriminator loss), or wasserstein (WGAN "
                              "critic and generator losses; needs clip_value or gradient_penalty)",
                              choices=GENERATOR_LOSSES + ("wasserstein",)),
        "d_steps": Key("discriminator steps (batches) per generator step, k", ge=1),
        "clip_value": Key("wasserstein: clip the critic's weights to [-c, c] after each step (WGAN: 0.01)", gt=0),
        "gradient_penalty": Key("wasserstein: weight lambda of the gradient penalty (WGAN-GP: 10); 0: none", ge=0),
        "quality_samples": Key("samples that a digits judge rates in summary.json (0: none)", ge=0),
    }

    def __init__(self, architecture: str = "mlp", latent_dim: int = 16, hidden: list[int] = (64,), features: int = 32,
                 generator_loss: str = "non_saturating", d_steps: int = 1, clip_value: float | None = None,
                 gradient_penalty: float = 0.0, quality_samples: int = 1000):
        check_keys(self, architecture=architecture, latent_dim=latent_dim, hidden=hidden, features=features,
                   generator_loss=generator_loss, d_steps=d_steps, clip_value=clip_value,
                   gradient_penalty=gradient_penalty, quality_samples=quality_samples)
        wasserstein = generator_loss == "wasserstein"
        if (clip_value is not None or gradient_penalty) and not wasserstein:
            raise ValueError("task gan: clip_value and gradient_penalty are for generator_loss: wasserstein (the BCE "
                             f"game keeps D's output a probability); generator_loss is {generator_loss!r}")
        if wasserstein and clip_value is None and not gradient_penalty:
            raise ValueError("task gan: generator_loss: wasserstein needs the critic kept 1-Lipschitz: set "
                             "clip_value (WGAN: 0.01) or gradient_penalty (WGAN-GP: 10)")
        self.architecture, self.latent_dim, self.hidden, self.features = architecture, latent_dim, list(hidden), \
            features
        self.generator_loss, self.d_steps, self.clip_value = generator_loss, d_steps, clip_value
        self.gradient_penalty, self.quality_samples = gradient_penalty, quality_samples

    def build_model(self, name, info):
        shape = tuple(info.input_shape)
        if self.architecture == "mlp":
            if name == "generator":
                return MLPGenerator(self.latent_dim, self.hidden, int(np.prod(shape)))
            return MLPDiscriminator(int(np.prod(shape)), self.hidden[::-1])
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ValueError(f"task gan: architecture dcgan needs square images (C, s, s), the data gives samples of "
                             f"shape {shape}; set the dataset's flatten: false, or use architecture: mlp")
        if name == "generator":
            return DCGANGenerator(self.latent_dim, shape[0], shape[1], self.features)
        return DCGANDiscriminator(shape[0], shape[1], self.features, batch_norm=not self.gradient_penalty)

    def _seen_shape(self, sample_shape) -> tuple:
        """The shape of one sample as the discriminator sees it: flat for mlp, as the data gives it for dcgan."""
        return (int(np.prod(sample_shape)),) if self.architecture == "mlp" else tuple(sample_shape)

    def dry_run(self, check, info):
        made = check("generator", (self.latent_dim,))
        if made is not None and int(np.prod(made)) != int(np.prod(info.input_shape)):
            raise ModelShapeError("generator", f"task gan: the generator turns latent codes of size "
                                  f"{self.latent_dim} into samples of shape {tuple(made)}, but the data's samples "
                                  f"have shape {tuple(info.input_shape)}; build it with the data's sample size")
        check("discriminator", self._seen_shape(info.input_shape))

    # ----- steps ---------------------------------------------------------------------------------------------------
    def _real(self, x):
        """The host batch ``x`` (checked by ``host_batch``) on the device, shaped as the discriminator sees it."""
        return self.input(x.reshape((len(x),) + self._seen_shape(x.shape[1:])))

    def _fake(self, z, real):
        """G(z) shaped like the ``real`` batch the discriminator sees (a generator of images for a flat mlp
        discriminator, or the other way round; the dry run checked that the sizes agree)."""
        return ops.reshape(self.models["generator"](z), tuple(real.shape))

    def _d_loss(self, real, fake):
        discriminator = self.models["discriminator"]
        real_scores, fake_scores = discriminator(real), discriminator(fake.detach())
        if self.generator_loss != "wasserstein":
            return discriminator_loss(real_scores, fake_scores)
        loss = critic_loss(real_scores, fake_scores)
        if self.gradient_penalty:
            with enable_grad():
                loss = loss + gradient_penalty(discriminator, real, fake) * self.gradient_penalty
        return loss

    def _g_loss(self, fake):
        scores = self.models["discriminator"](fake)
        if self.generator_loss == "wasserstein":
            return wasserstein_generator_loss(scores)
        return generator_loss(scores, self.generator_loss)

    def train_step(self, x, y):
        generator_step = (self.trainer.global_step + 1) % self.d_steps == 0
        if not len(x):
            self.update("discriminator", None)
            if generator_step:
                self.update("generator", None)
            return {}
        real = self._real(host_batch("gan", x))
        fake = self._fake(ops.randn(len(real), self.latent_dim, dtype=real.dtype, device=real.device), real)
        d_loss = self._d_loss(real, fake)
        self.update("discriminator", d_loss)
        if self.clip_value is not None:
            clip_weights(self.models["discriminator"], self.clip_value)
        if generator_step:
            g_loss = self._g_loss(fake)
            self.update("generator", g_loss)
        else:
            with no_grad():
                g_loss = self._g_loss(fake.detach())
        return {"loss": d_loss.detach() + g_loss.detach(), "d_loss": d_loss, "g_loss": g_loss}

    def eval_step(self, x, y):
        x = host_batch("gan", x)
        real = self._real(x)  # the noise comes from the host batch: no copy back from the device
        fake = self._fake(self.input(batch_normal(np.asarray(x, real.dtype), (len(real), self.latent_dim))), real)
        d_loss, g_loss = self._d_loss(real, fake), self._g_loss(fake)
        return {"loss": d_loss + g_loss, "d_loss": d_loss, "g_loss": g_loss}

    # ----- pictures and figures ------------------------------------------------------------------------------------
    def _samples(self, count: int, splits) -> np.ndarray:
        """``count`` samples from the fixed latent codes, shaped like the data."""
        with no_grad():
            fake = self.models["generator"](self.input(fixed_normal(count, self.latent_dim))).numpy()
        return fake.reshape((count,) + sample_shape(splits))

    def epoch_artifacts(self, directory, epoch, splits):
        path = plot_grid(self._samples(64, splits), sample_shape(splits), picture_path(directory, "samples", epoch),
                         f"epoch {epoch}: G(z), the same z every epoch")
        return [path] if path else []

    def summary(self, splits):
        if not self.quality_samples:
            return {}
        return judge_samples(self._samples(self.quality_samples, splits), splits)
