"""``autoencode``: seed 002's autoencoders -- an encoder squeezes each input into a code, a decoder rebuilds the
input from it, and the loss (default mse) compares the rebuilt input with the clean one.

One task covers the seed's kinds through its keys: undercomplete (a narrow code, e.g. 784-32-784), the 2-D
compressor (784-300-2-300-784; its codes are plotted by class), denoising (``noise_std``: Gaussian noise on the
encoder's input, the target stays clean), sparse (``sparsity: l1`` or ``kl`` on the code activations) and
contractive (``contractive_weight``: the squared Frobenius norm of the encoder's Jacobian, through second-order
autodiff), with MLP or convolutional (ConvTranspose2d / Upsample) encoders and decoders.
"""
from __future__ import annotations

import os
from math import prod

import numpy as np

from ...autograd import enable_grad, grad
from ...nn.functional import mse_loss
from ...ops import randn_like
from ..plots import image_shape, plot_codes, plot_image_rows
from .base import Key, ModelShapeError, Task, check_keys, register_task

__all__ = ["Autoencode", "contractive_penalty", "kl_sparsity", "l1_sparsity"]

RECONSTRUCTIONS = "reconstructions.png"
CODES = "codes.png"


def l1_sparsity(code):
    """The L1 penalty on code activations: the sum of |code| over a sample's units, averaged over the batch."""
    return code.abs().reshape(code.shape[0], -1).sum(dim=1).mean()


def kl_sparsity(code, rho: float, eps: float = 1e-6):
    """The KL sparsity penalty: sum over code units j of KL(rho || rho_hat_j), rho_hat_j the unit's mean activation
    over the batch (activations in (0, 1), e.g. after a Sigmoid)."""
    rho_hat = code.reshape(code.shape[0], -1).mean(dim=0).clamp(eps, 1 - eps)
    return (rho * (rho / rho_hat).log() + (1 - rho) * ((1 - rho) / (1 - rho_hat)).log()).sum()


def contractive_penalty(code, inputs, create_graph: bool = True):
    """The squared Frobenius norm of d code / d input, per sample, averaged over the batch: one backward per code
    unit, recorded (``create_graph``) so the penalty itself can be differentiated. ``inputs`` must require grad, and
    each sample's code must depend on that sample alone (no batch statistics)."""
    flat = code.reshape(code.shape[0], -1)
    total = None
    for unit in range(flat.shape[1]):
        (row,) = grad(flat[:, unit].sum(), inputs, retain_graph=True, create_graph=create_graph)
        term = (row * row).sum()
        total = term if total is None else total + term
    return total / code.shape[0]


@register_task("autoencode")
class Autoencode(Task):
    """Reconstruct the inputs through a code: models.encoder maps an input to its code, models.decoder the code back
    to the input's shape; the loss (default mse) plus any sparsity or contractive penalty is minimised."""

    models = ("encoder", "decoder")
    data = "inputs"
    default_loss = "mse"
    loss_names = ("loss", "mse", "sparsity", "contractive")
    keys = {
        "noise_std": Key("standard deviation of the Gaussian noise added to the encoder's input while training "
                         "(denoising autoencoder; the target stays clean; 0: none)", ge=0),
        "sparsity": Key("penalty on the code activations: none; l1: sum of |code|; kl: sum over units of "
                        "KL(sparsity_target || unit's mean activation), for codes in (0, 1)",
                        choices=("none", "l1", "kl")),
        "sparsity_weight": Key("weight of the sparsity penalty in the loss", ge=0),
        "sparsity_target": Key("rho: the mean activation each code unit should have (sparsity: kl)", gt=0, lt=1),
        "contractive_weight": Key("weight of the squared Frobenius norm of d code / d input (contractive "
                                  "autoencoder; 0: none)", ge=0),
        "grid_images": Key("test images shown in reconstructions.png (above their reconstructions)", ge=1),
    }

    def __init__(self, noise_std: float = 0.0, sparsity: str = "none", sparsity_weight: float = 1e-3,
                 sparsity_target: float = 0.05, contractive_weight: float = 0.0, grid_images: int = 10):
        check_keys(self, noise_std=noise_std, sparsity=sparsity, sparsity_weight=sparsity_weight,
                   sparsity_target=sparsity_target, contractive_weight=contractive_weight, grid_images=grid_images)
        self.noise_std, self.sparsity, self.sparsity_weight = float(noise_std), sparsity, float(sparsity_weight)
        self.sparsity_target, self.contractive_weight = float(sparsity_target), float(contractive_weight)
        self.grid_images = grid_images

    # ----- models -------------------------------------------------------------------------------------------------
    def dry_run(self, check, info) -> None:
        code = check("encoder", info.input_shape)
        if code is None:
            raise ModelShapeError("encoder", "the encoder must return one tensor, the code")
        output = check("decoder", code, "the encoder")
        if output is None or prod(output) != prod(info.input_shape):
            raise ModelShapeError("decoder", f"the decoder turns codes of shape {code} into {output}, which cannot be "
                                  f"compared with the inputs of shape {tuple(info.input_shape)}: make its last layer "
                                  f"give {prod(info.input_shape)} values per sample")

    def reconstruct(self, x):
        """(code, reconstruction shaped like ``x``) of a Tensor batch ``x``."""
        code = self.models["encoder"](x)
        return code, self.models["decoder"](code).reshape(*x.shape)

    # ----- steps --------------------------------------------------------------------------------------------------
    def _losses(self, x, training: bool) -> dict:
        clean = self.input(x)
        seen = clean + randn_like(clean) * self.noise_std if training and self.noise_std else clean
        if self.contractive_weight:
            seen = seen.detach().requires_grad_()
        code, rebuilt = self.reconstruct(seen)
        loss = self.loss_fn(rebuilt, clean)
        losses = {"mse": mse_loss(rebuilt, clean)}
        if self.sparsity != "none":
            penalty = l1_sparsity(code) if self.sparsity == "l1" else kl_sparsity(code, self.sparsity_target)
            losses["sparsity"] = penalty
            loss = loss + self.sparsity_weight * penalty
        if self.contractive_weight:
            penalty = contractive_penalty(code, seen, create_graph=training)
            losses["contractive"] = penalty
            loss = loss + self.contractive_weight * penalty
        return {"loss": loss, **losses}

    def train_step(self, x, y):
        if not len(x):  # an empty share of a data-parallel batch
            self.update(("encoder", "decoder"), None)
            return {}
        losses = self._losses(x, training=True)
        self.update(("encoder", "decoder"), losses["loss"])
        return losses

    def eval_step(self, x, y):
        if not self.contractive_weight:
            return self._losses(x, training=False)
        with enable_grad():  # the penalty needs d code / d input
            return {name: value.detach() for name, value in self._losses(x, training=False).items()}

    def predict_step(self, x):
        return self.reconstruct(self.input(x))[1]

    # ----- pictures and figures -----------------------------------------------------------------------------------
    @staticmethod
    def _shown_split(splits: dict):
        """(name, loader) of the split the pictures show: test, else validation, else training."""
        return next((name, splits[name]) for name in ("test", "val", "train") if splits.get(name) is not None)

    def _codes_and_reconstructions(self, x: np.ndarray):
        code, rebuilt = self.reconstruct(self.input(x))
        return code.numpy(), rebuilt.numpy()

    def epoch_artifacts(self, directory, epoch, splits):
        split, loader = self._shown_split(splits)
        x = loader.arrays[0]
        shape = image_shape(x.shape[1:])
        if shape is None:
            return []
        picked = np.linspace(0, len(x) - 1, min(self.grid_images, len(x))).round().astype(int)  # sets may be sorted
        seen = originals = x[picked]
        rows = [("original", originals)]
        if self.noise_std:  # what the denoiser sees: a fixed draw, not from gpunet's generator
            seen = (originals + np.random.default_rng(0).normal(0, self.noise_std, originals.shape)).astype(x.dtype)
            rows.append(("noisy input", seen))
        rows.append(("reconstructed", self._codes_and_reconstructions(seen)[1]))
        low, high = float(x.min()), float(x.max())
        path = plot_image_rows(rows, shape, os.path.join(directory, RECONSTRUCTIONS), f"epoch {epoch}: {split} "
                               "images and their reconstructions", low, high)
        return [path] if path else []

    def final_artifacts(self, directory, splits):
        split, loader = self._shown_split(splits)
        x, y = loader.arrays[0], loader.arrays[1] if len(loader.arrays) > 1 else None
        if y is None or self._codes_and_reconstructions(x[:1])[0].size != 2:  # only 2-D codes are drawn
            return []
        codes = np.concatenate([self._codes_and_reconstructions(x[i:i + 1000])[0] for i in range(0, len(x), 1000)])
        codes = codes.reshape(len(codes), -1)
        path = plot_codes(codes, y, os.path.join(directory, CODES), f"2-D codes of the {split} images, by class")
        return [path] if path else []

    def summary(self, splits):
        """``test_baseline_mse``: the MSE of predicting every test image by the training set's mean image, the
        figure a reconstruction must beat."""
        test = splits.get("test")
        if test is None:
            return {}
        mean = splits["train"].arrays[0].astype(np.float64).mean(axis=0)
        return {"test_baseline_mse": float(np.mean((test.arrays[0] - mean) ** 2))}
