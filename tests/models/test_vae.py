"""gpunet.models.vae against independent references: the network and the ELBO's value and gradients against
PyTorch (torch.distributions' KL and Bernoulli log-likelihood) with the same weights and the same noise, the KL term
against float64 NumPy, the reparameterisation's statistics and its use of the seeded generator."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import distributions as td
from torch import nn as tnn

import gpunet as gn
from gpunet.models import vae
from gpunet.testing import assert_close


class TorchVAE(tnn.Module):
    def __init__(self, inp, hidden, latent):
        super().__init__()
        self.encoder = tnn.Sequential(tnn.Linear(inp, hidden), tnn.ReLU())
        self.mu, self.logvar = tnn.Linear(hidden, latent), tnn.Linear(hidden, latent)
        self.decoder = tnn.Sequential(tnn.Linear(latent, hidden), tnn.ReLU(), tnn.Linear(hidden, inp))

    def forward(self, x, eps):
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h)
        return self.decoder(mu + torch.exp(0.5 * logvar) * eps), mu, logvar


def torch_elbo(logits, x, mu, logvar):
    """log p(x|z) - KL(q || p) per row, from torch.distributions (independent of the closed forms in vae.py); the
    Bernoulli log-likelihood of grey pixels in [0, 1] is the usual BCE, so its support check is off."""
    log_px = td.Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(1)
    kl = td.kl_divergence(td.Normal(mu, torch.exp(0.5 * logvar)), td.Normal(0.0, 1.0)).sum(1)
    return log_px - kl


def test_kl_divergence_matches_numpy():
    rng = np.random.default_rng(0)
    mu, logvar = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    var = np.exp(logvar)
    expected = 0.5 * np.sum(var + mu ** 2 - 1 - np.log(var), axis=1)
    assert_close(vae.kl_divergence(gn.tensor(mu), gn.tensor(logvar)), expected)
    assert_close(vae.kl_divergence(gn.zeros(2, 4), gn.zeros(2, 4)), np.zeros(2))  # q = p


@pytest.mark.parametrize("beta", [1.0, 0.25])
def test_elbo_and_loss_values_and_gradients_match_pytorch(device, beta):
    gn.manual_seed(0)
    model = vae.VAE(12, (7,), 3).to(dtype=np.float64)
    reference = TorchVAE(12, 7, 3).double()
    reference.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in model.state_dict().items()})
    rng = np.random.default_rng(1)
    x, eps = rng.random((6, 12)), rng.standard_normal((6, 3))

    mu, logvar = model.encode(gn.tensor(x))
    logits = model.decode(model.reparameterize(mu, logvar, gn.tensor(eps)))
    t_logits, t_mu, t_logvar = reference(torch.tensor(x), torch.tensor(eps))
    assert_close(logits, t_logits.detach().numpy(), what="logits")
    expected_elbo = torch_elbo(t_logits, torch.tensor(x), t_mu, t_logvar)
    assert_close(vae.elbo(logits, gn.tensor(x), mu, logvar), expected_elbo.detach().numpy(), what="elbo")

    loss = vae.vae_loss(logits, gn.tensor(x), mu, logvar, beta)
    kl = td.kl_divergence(td.Normal(t_mu, torch.exp(0.5 * t_logvar)), td.Normal(0.0, 1.0)).sum(1)
    t_loss = (-td.Bernoulli(logits=t_logits, validate_args=False).log_prob(torch.tensor(x)).sum(1) + beta * kl).mean()
    assert_close(loss, t_loss.detach().numpy(), what="loss")
    loss.backward()
    t_loss.backward()
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        assert_close(p.grad, q.grad.numpy(), what=f"d loss / d {name}")


def test_reparameterize_has_the_posterior_moments_and_uses_the_seeded_generator():
    mu, logvar = gn.tensor([[1.5, -2.0]] * 20000, dtype=gn.float64), gn.tensor([[0.0, np.log(0.25)]] * 20000,
                                                                              dtype=gn.float64)
    gn.manual_seed(5)
    z = vae.VAE.reparameterize(mu, logvar).numpy()
    np.testing.assert_allclose(z.mean(0), [1.5, -2.0], atol=0.03)  # 4 standard errors
    np.testing.assert_allclose(z.std(0), [1.0, 0.5], rtol=0.02)
    gn.manual_seed(5)
    np.testing.assert_array_equal(vae.VAE.reparameterize(mu, logvar).numpy(), z)


def test_reparameterized_gradient_reaches_mu_and_logvar():
    """dz/dmu = 1 and dz/dlogvar = eps exp(logvar / 2) / 2."""
    mu, logvar = gn.tensor([[0.3]], dtype=gn.float64, requires_grad=True), gn.tensor([[0.8]], dtype=gn.float64,
                                                                                     requires_grad=True)
    vae.VAE.reparameterize(mu, logvar, gn.tensor([[-1.2]], dtype=gn.float64)).sum().backward()
    assert float(mu.grad) == 1.0
    assert float(logvar.grad) == pytest.approx(-1.2 * np.exp(0.4) / 2, rel=1e-12)


def test_forward_sample_and_shapes():
    gn.manual_seed(0)
    model = vae.VAE(64, [32, 16], 2)
    logits, mu, logvar = model(gn.rand(5, 64))
    assert (logits.shape, mu.shape, logvar.shape) == ((5, 64), (5, 2), (5, 2))
    samples = model.sample(9).numpy()
    assert samples.shape == (9, 64) and samples.min() >= 0 and samples.max() <= 1


def test_bad_input_and_arguments_are_named():
    with pytest.raises(ValueError, match=r"vae\(in_features=64\): expects inputs of shape \(N, 64\), got \(2, 1, 8, 8\)"):
        vae.VAE(64)(gn.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="vae: latent_dim must be an integer >= 1"):
        vae.VAE(latent_dim=0)
    with pytest.raises(ValueError, match="vae: activation must be one of"):
        vae.VAE(activation="swish")
