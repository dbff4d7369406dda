"""Generative adversarial networks of seed 002: MLP and DCGAN generators and discriminators, and the GAN losses.

Discriminators return one raw score per sample (a logit for the BCE losses, a critic value for the Wasserstein
ones); generators map (N, latent_dim) standard-normal noise to samples shaped like the data.

Losses (means over the batch; s_r = D(x) on real data, s_f = D(G(z)) on generated):
- ``discriminator_loss``: BCE(s_r, 1) + BCE(s_f, 0), i.e. minimise -[log D(x) + log(1 - D(G(z)))];
- ``generator_loss(kind="minimax")``: log(1 - D(G(z))) = -BCE(s_f, 0), the original game, whose gradient vanishes
  when D rejects the fakes; ``kind="non_saturating"``: -log D(G(z)) = BCE(s_f, 1) (Goodfellow et al. 2014);
- ``critic_loss``: mean s_f - mean s_r and ``wasserstein_generator_loss``: -mean s_f (WGAN, Arjovsky et al. 2017),
  with the critic kept Lipschitz by ``clip_weights`` or by ``gradient_penalty`` (WGAN-GP, Gulrajani et al. 2017:
  mean (||grad_x D(x_hat)||_2 - 1)^2 at x_hat between real and fake samples, through double backprop).
"""
from __future__ import annotations

from .. import nn, ops
from ..autograd import grad
from ..nn import functional as F
from ._args import one_of, positive_int

_OUTPUTS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
GENERATOR_LOSSES = ("minimax", "non_saturating")


def _sizes(arch, name, value):
    values = value if isinstance(value, (list, tuple)) else [value]
    return [positive_int(arch, name, v) for v in values]


class MLPGenerator(nn.Sequential):
    """latent_dim -> hidden... (ReLU) -> out_features (sigmoid for data in [0, 1], tanh for [-1, 1])."""

    def __init__(self, latent_dim: int = 16, hidden=(64,), out_features: int = 64, output: str = "sigmoid"):
        sizes = [positive_int("mlp_generator", "latent_dim", latent_dim)] + _sizes("mlp_generator", "hidden", hidden)
        layers = []
        for fan_in, fan_out in zip(sizes, sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        layers += [nn.Linear(sizes[-1], positive_int("mlp_generator", "out_features", out_features)),
                   _OUTPUTS[one_of("mlp_generator", "output", output, tuple(_OUTPUTS))]()]
        super().__init__(*layers)
        self.latent_dim = latent_dim


class MLPDiscriminator(nn.Sequential):
    """in_features -> hidden... (LeakyReLU negative_slope) -> one score (no sigmoid: the losses take logits)."""

    def __init__(self, in_features: int = 64, hidden=(64,), negative_slope: float = 0.2):
        sizes = [positive_int("mlp_discriminator", "in_features", in_features)] + \
            _sizes("mlp_discriminator", "hidden", hidden)
        layers = []
        for fan_in, fan_out in zip(sizes, sizes[1:]):
            layers += [nn.Linear(fan_in, fan_out), nn.LeakyReLU(negative_slope)]
        super().__init__(*layers, nn.Linear(sizes[-1], 1))


def _side(arch, image_size):
    side = positive_int(arch, "image_size", image_size, 4)
    if side % 4:
        raise ValueError(f"{arch}: image_size must be a multiple of 4 (two stride-2 layers), got {image_size!r}")
    return side // 4


class DCGANGenerator(nn.Module):
    """Radford et al.'s DCGAN generator for small images: z -> Linear -> (2f, s/4, s/4) (batch norm, ReLU) ->
    ConvTranspose2d 4x4 stride 2 -> (f, s/2, s/2) (batch norm, ReLU) -> ConvTranspose2d 4x4 stride 2 ->
    (out_channels, s, s) (sigmoid or tanh); f = ``features``, s = ``image_size`` (8 for the digits, 28 for MNIST)."""

    def __init__(self, latent_dim: int = 100, out_channels: int = 1, image_size: int = 28, features: int = 64,
                 output: str = "sigmoid"):
        super().__init__()
        arch = "dcgan_generator"
        positive_int(arch, "latent_dim", latent_dim)
        positive_int(arch, "out_channels", out_channels)
        f, side = positive_int(arch, "features", features), _side(arch, image_size)
        self.latent_dim, self.shape = latent_dim, (2 * f, side, side)
        self.project = nn.Sequential(nn.Linear(latent_dim, 2 * f * side * side, bias=False),
                                     nn.BatchNorm1d(2 * f * side * side), nn.ReLU())
        self.net = nn.Sequential(nn.ConvTranspose2d(2 * f, f, 4, 2, 1, bias=False), nn.BatchNorm2d(f), nn.ReLU(),
                                 nn.ConvTranspose2d(f, out_channels, 4, 2, 1),
                                 _OUTPUTS[one_of(arch, "output", output, tuple(_OUTPUTS))]())

    def forward(self, z):
        return self.net(ops.reshape(self.project(z), (z.shape[0],) + self.shape))


class DCGANDiscriminator(nn.Sequential):
    """(in_channels, s, s) -> Conv2d 4x4 stride 2 -> f (LeakyReLU 0.2) -> Conv2d 4x4 stride 2 -> 2f (batch norm,
    LeakyReLU 0.2) -> Linear -> one score. ``batch_norm=False`` for a WGAN-GP critic: the penalty is per sample, and
    batch norm would mix the samples of a batch."""

    def __init__(self, in_channels: int = 1, image_size: int = 28, features: int = 64, batch_norm: bool = True):
        arch = "dcgan_discriminator"
        f, side = positive_int(arch, "features", features), _side(arch, image_size)
        super().__init__(nn.Conv2d(positive_int(arch, "in_channels", in_channels), f, 4, 2, 1), nn.LeakyReLU(0.2),
                         nn.Conv2d(f, 2 * f, 4, 2, 1, bias=not batch_norm),
                         *([nn.BatchNorm2d(2 * f)] if batch_norm else []), nn.LeakyReLU(0.2),
                         nn.Flatten(), nn.Linear(2 * f * side * side, 1))


# ----- losses ---------------------------------------------------------------------------------------------------
def discriminator_loss(real_scores, fake_scores):
    """BCE(D(x), 1) + BCE(D(G(z)), 0) from logits."""
    return (F.binary_cross_entropy_with_logits(real_scores, ops.ones_like(real_scores))
            + F.binary_cross_entropy_with_logits(fake_scores, ops.zeros_like(fake_scores)))


def generator_loss(fake_scores, kind: str = "non_saturating"):
    """'non_saturating': BCE(D(G(z)), 1) = -log D(G(z)); 'minimax': -BCE(D(G(z)), 0) = log(1 - D(G(z)))."""
    one_of("generator_loss", "kind", kind, GENERATOR_LOSSES)
    if kind == "minimax":
        return -F.binary_cross_entropy_with_logits(fake_scores, ops.zeros_like(fake_scores))
    return F.binary_cross_entropy_with_logits(fake_scores, ops.ones_like(fake_scores))


def critic_loss(real_scores, fake_scores):
    """The WGAN critic's loss mean D(G(z)) - mean D(x) (minus the Wasserstein-1 estimate)."""
    return ops.mean(fake_scores) - ops.mean(real_scores)


def wasserstein_generator_loss(fake_scores):
    """The WGAN generator's loss -mean D(G(z))."""
    return -ops.mean(fake_scores)


def gradient_penalty(critic, real, fake, alpha=None):
    """mean over samples of (||grad_x critic(x_hat)||_2 - 1)^2 at x_hat = alpha real + (1 - alpha) fake, as a graph
    (create_graph) so that its gradient reaches the critic's parameters. ``alpha`` (N, 1, ...) defaults to a uniform
    draw per sample from gpunet's generator; ``fake`` is detached."""
    if tuple(real.shape) != tuple(fake.shape):
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} samples must have "
                         f"the same shape")
    if alpha is None:
        alpha = ops.rand(real.shape[0], *([1] * (real.ndim - 1)), dtype=real.dtype, device=real.device)
    x_hat = (alpha * real.detach() + (1.0 - alpha) * fake.detach()).detach().requires_grad_()
    (g,) = grad(ops.sum(critic(x_hat)), x_hat, create_graph=True)
    norms = ops.sqrt(ops.sum(ops.reshape(g * g, (g.shape[0], -1)), 1))
    return ops.mean((norms - 1.0) ** 2)


def clip_weights(module, clip_value: float):
    """Clamp every parameter of ``module`` to [-clip_value, clip_value] in place (WGAN's Lipschitz constraint)."""
    if not clip_value > 0:
        raise ValueError(f"clip_weights: clip_value must be > 0, got {clip_value!r}")
    for p in module.parameters():
        p.data[...] = p.backend.xp.clip(p.data, -clip_value, clip_value)
