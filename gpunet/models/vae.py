"""The variational autoencoder of seed 002 (Kingma and Welling 2014) on flat inputs in [0, 1].

The encoder maps x through the hidden layers to the mean ``mu`` and log-variance ``logvar`` of a diagonal Gaussian
q(z|x); ``z = mu + exp(logvar / 2) * eps`` with eps ~ N(0, I) drawn from gpunet's seeded generator (the
reparameterisation trick, so the gradient reaches mu and logvar); the decoder maps z back through the hidden layers in
reverse order to one logit per pixel, the Bernoulli p(x|z). With the standard-normal prior p(z), per sample

    ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z))
            = -sum_pixels BCE(logits, x) - (-1/2) sum_latent (1 + logvar - mu^2 - exp(logvar)),

estimated with one z; training minimises ``vae_loss`` = mean over the batch of -ELBO (with ``beta`` on the KL term,
beta-VAE; beta = 1 is the true bound). Values are in nats per sample.
"""
from __future__ import annotations

from .. import nn, ops
from ..nn import functional as F
from ._args import one_of, positive_int

_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": lambda: nn.LeakyReLU(0.2), "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def _mlp(sizes, activation):
    """Linear layers between consecutive ``sizes``, each followed by the activation."""
    layers = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), _ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """in_features -> hidden... -> (mu, logvar) of latent_dim; latent_dim -> reversed(hidden)... -> in_features logits.

    ``forward(x)`` returns ``(logits, mu, logvar)`` with one sampled z per row; ``encode``, ``reparameterize``,
    ``decode`` and ``sample`` are the steps. Inputs are (N, in_features), pixels in [0, 1].
    """

    def __init__(self, in_features: int = 64, hidden=(128,), latent_dim: int = 2, activation: str = "relu"):
        super().__init__()
        positive_int("vae", "in_features", in_features)
        positive_int("vae", "latent_dim", latent_dim)
        hidden = [positive_int("vae", "hidden", h) for h in (hidden if isinstance(hidden, (list, tuple)) else [hidden])]
        one_of("vae", "activation", activation, tuple(_ACTIVATIONS))
        self.in_features, self.latent_dim = in_features, latent_dim
        self.encoder = _mlp([in_features] + hidden, activation)
        self.mu = nn.Linear(hidden[-1] if hidden else in_features, latent_dim)
        self.logvar = nn.Linear(hidden[-1] if hidden else in_features, latent_dim)
        back = [latent_dim] + hidden[::-1]
        self.decoder = nn.Sequential(*_mlp(back, activation), nn.Linear(back[-1], in_features))

    def encode(self, x):
        """(mu, logvar) of q(z|x)."""
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"vae(in_features={self.in_features}): expects inputs of shape (N, {self.in_features}), "
                             f"got {tuple(x.shape)}; flatten the images (dataset option flatten: true) or build it "
                             f"with in_features of your data")
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    @staticmethod
    def reparameterize(mu, logvar, eps=None):
        """z = mu + exp(logvar / 2) * eps; ``eps`` defaults to a standard-normal draw from gpunet's generator."""
        if eps is None:
            eps = ops.randn_like(mu)
        return mu + ops.exp(logvar * 0.5) * eps

    def decode(self, z):
        """The pixel logits of p(x|z); ``sigmoid`` of them is the mean image."""
        return self.decoder(z)

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    def sample(self, n: int):
        """n mean images sigmoid(decode(z)) for z drawn from the prior N(0, I)."""
        z = ops.randn(n, self.latent_dim, dtype=self.mu.weight.dtype, device=self.mu.weight.device)
        return ops.sigmoid(self.decode(z))


def kl_divergence(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) of each row, summed over the latent dimensions: shape (N,)."""
    return ops.sum(ops.exp(logvar) + mu * mu - logvar - 1.0, 1) * 0.5


def reconstruction_nll(logits, x):
    """-log p(x|z) of each row under the Bernoulli decoder, sum over pixels of BCE(logits, x): shape (N,)."""
    return ops.sum(F.binary_cross_entropy_with_logits(logits, x, reduction="none"), 1)


def elbo(logits, x, mu, logvar):
    """The evidence lower bound of each row (nats): -reconstruction_nll - kl_divergence, shape (N,)."""
    return -(reconstruction_nll(logits, x) + kl_divergence(mu, logvar))


def vae_loss(logits, x, mu, logvar, beta: float = 1.0):
    """The training loss, the batch mean of reconstruction_nll + beta * kl_divergence (-ELBO when beta = 1)."""
    return ops.mean(reconstruction_nll(logits, x) + kl_divergence(mu, logvar) * beta)

