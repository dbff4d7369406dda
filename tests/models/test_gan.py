"""gpunet.models.gan against PyTorch: the generators and discriminators with the same weights (float64 outputs, train
and eval mode, state_dict keys), the GAN losses' values and gradients, the WGAN-GP penalty (value and its gradient
through double backprop, on both devices, and against finite differences) and weight clipping."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn as tnn

import gpunet as gn
from gpunet.models import gan
from gpunet.testing import assert_close, gradcheck

F = gn.nn.functional


# ----- the references, in PyTorch -------------------------------------------------------------------------------
def torch_mlp_generator(latent, hidden, out):
    return tnn.Sequential(tnn.Linear(latent, hidden), tnn.ReLU(), tnn.Linear(hidden, out), tnn.Sigmoid())


def torch_mlp_discriminator(inp, hidden):
    return tnn.Sequential(tnn.Linear(inp, hidden), tnn.LeakyReLU(0.2), tnn.Linear(hidden, 1))


class TorchDCGANGenerator(tnn.Module):
    def __init__(self, latent, channels, size, f):
        super().__init__()
        self.s = size // 4
        self.f = f
        self.project = tnn.Sequential(tnn.Linear(latent, 2 * f * self.s ** 2, bias=False),
                                      tnn.BatchNorm1d(2 * f * self.s ** 2), tnn.ReLU())
        self.net = tnn.Sequential(tnn.ConvTranspose2d(2 * f, f, 4, 2, 1, bias=False), tnn.BatchNorm2d(f), tnn.ReLU(),
                                  tnn.ConvTranspose2d(f, channels, 4, 2, 1), tnn.Sigmoid())

    def forward(self, z):
        return self.net(self.project(z).reshape(len(z), 2 * self.f, self.s, self.s))


def torch_dcgan_discriminator(channels, size, f, batch_norm):
    return tnn.Sequential(tnn.Conv2d(channels, f, 4, 2, 1), tnn.LeakyReLU(0.2),
                          tnn.Conv2d(f, 2 * f, 4, 2, 1, bias=not batch_norm),
                          *([tnn.BatchNorm2d(2 * f)] if batch_norm else []), tnn.LeakyReLU(0.2), tnn.Flatten(),
                          tnn.Linear(2 * f * (size // 4) ** 2, 1))


def twin(model, reference):
    """``reference`` with ``model``'s weights (float64 both), after checking the state_dict keys and shapes match."""
    model.to(dtype=np.float64)
    state = model.state_dict()
    ref_state = reference.state_dict()
    assert {k: tuple(np.shape(v)) for k, v in state.items()} == {k: tuple(v.shape) for k, v in ref_state.items()}
    reference.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in state.items()})
    return reference.double()


def t(array, requires_grad=False):
    return torch.tensor(array, dtype=torch.float64, requires_grad=requires_grad)


def g(array, requires_grad=False):
    return gn.tensor(array, dtype=gn.float64, requires_grad=requires_grad)


# ----- networks -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_networks_match_pytorch(mode):
    gn.manual_seed(0)
    rng = np.random.default_rng(1)
    z, z8 = rng.standard_normal((6, 16)), rng.standard_normal((6, 10))
    images = rng.random((6, 1, 8, 8))
    cases = [
        (gan.MLPGenerator(16, 32, 64), torch_mlp_generator(16, 32, 64), z),
        (gan.MLPDiscriminator(64, 32), torch_mlp_discriminator(64, 32), images.reshape(6, 64)),
        (gan.DCGANGenerator(10, 1, 8, 4), TorchDCGANGenerator(10, 1, 8, 4), z8),
        (gan.DCGANDiscriminator(1, 8, 4), torch_dcgan_discriminator(1, 8, 4, True), images),
        (gan.DCGANDiscriminator(1, 8, 4, batch_norm=False), torch_dcgan_discriminator(1, 8, 4, False), images),
    ]
    for model, reference, x in cases:
        reference = twin(model, reference)
        getattr(model, mode)(), getattr(reference, mode)()
        xg, xt = g(x, True), t(x, True)
        yg, yt = model(xg), reference(xt)
        assert_close(yg, yt.detach().numpy(), what=f"{type(model).__name__} {mode}")
        (yg * yg).sum().backward()
        (yt * yt).sum().backward()
        assert_close(xg.grad, xt.grad.numpy(), what=f"{type(model).__name__} input gradient")
        for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
            assert_close(p.grad, q.grad.numpy(), what=f"{type(model).__name__}.{name}.grad")


def test_dcgan_generator_makes_images_of_the_data_shape():
    gn.manual_seed(0)
    assert gan.DCGANGenerator(100, 1, 28, 8)(gn.randn(3, 100)).shape == (3, 1, 28, 28)
    assert gan.DCGANDiscriminator(3, 28, 8)(gn.rand(3, 3, 28, 28)).shape == (3, 1)


def test_bad_arguments_name_the_network_and_argument():
    with pytest.raises(ValueError, match="dcgan_generator: image_size must be a multiple of 4"):
        gan.DCGANGenerator(image_size=10)
    with pytest.raises(ValueError, match="mlp_generator: output must be one of 'sigmoid', 'tanh'"):
        gan.MLPGenerator(output="relu")
    with pytest.raises(ValueError, match="mlp_discriminator: hidden must be an integer >= 1"):
        gan.MLPDiscriminator(hidden=[64, 0])
    with pytest.raises(ValueError, match="generator_loss: kind must be one of 'minimax', 'non_saturating'"):
        gan.generator_loss(gn.zeros(2, 1), "wasserstein")
    with pytest.raises(ValueError, match="clip_value must be > 0"):
        gan.clip_weights(gan.MLPDiscriminator(), 0)


# ----- losses ---------------------------------------------------------------------------------------------------
def _loss_cases():
    """(gpunet loss of (real, fake), PyTorch reference written from the definitions)."""
    return [
        (lambda r, f: gan.discriminator_loss(r, f),
         lambda r, f: -(torch.log(torch.sigmoid(r)).mean() + torch.log(1 - torch.sigmoid(f)).mean())),
        (lambda r, f: gan.generator_loss(f, "minimax"), lambda r, f: torch.log(1 - torch.sigmoid(f)).mean()),
        (lambda r, f: gan.generator_loss(f, "non_saturating"), lambda r, f: -torch.log(torch.sigmoid(f)).mean()),
        (lambda r, f: gan.critic_loss(r, f), lambda r, f: f.mean() - r.mean()),
        (lambda r, f: gan.wasserstein_generator_loss(f), lambda r, f: -f.mean()),
    ]


@pytest.mark.parametrize("case", range(5))
def test_losses_and_their_gradients_match_the_definitions(case):
    ours, reference = _loss_cases()[case]
    rng = np.random.default_rng(case)
    real, fake = rng.normal(1, 2, (7, 1)), rng.normal(-1, 2, (7, 1))
    rg, fg, rt, ft = g(real, True), g(fake, True), t(real, True), t(fake, True)
    value, expected = ours(rg, fg), reference(rt, ft)
    assert_close(value, expected.detach().numpy(), what="loss")
    value.backward()
    expected.backward()
    for mine, theirs in ((rg, rt), (fg, ft)):
        if theirs.grad is None:
            assert mine.grad is None or not np.any(mine.grad.numpy())
        else:
            assert_close(mine.grad, theirs.grad.numpy(), what="gradient")


def test_minimax_saturates_where_non_saturating_does_not():
    """Seed 002's reason for the non-saturating loss: when D confidently rejects a fake (logit -8) the minimax
    loss's gradient is about sigmoid(-8) = 3e-4, the non-saturating one about 1."""
    grads = {}
    for kind in gan.GENERATOR_LOSSES:
        s = g([[-8.0]], True)
        gan.generator_loss(s, kind).backward()
        grads[kind] = abs(float(s.grad.numpy()[0, 0]))
    assert grads["minimax"] == pytest.approx(1 / (1 + np.exp(8)), rel=1e-9)
    assert grads["non_saturating"] == pytest.approx(1 - 1 / (1 + np.exp(8)), rel=1e-9)


# ----- gradient penalty -----------------------------------------------------------------------------------------
def _critics():
    return [(lambda: gan.MLPDiscriminator(12, 9), lambda: torch_mlp_discriminator(12, 9), (5, 12)),
            (lambda: gan.DCGANDiscriminator(1, 8, 3, batch_norm=False),
             lambda: torch_dcgan_discriminator(1, 8, 3, False), (4, 1, 8, 8))]


@pytest.mark.parametrize("critic_case", [0, 1], ids=["mlp", "dcgan"])
def test_gradient_penalty_and_its_gradient_match_pytorch(device, critic_case):
    make, make_ref, shape = _critics()[critic_case]
    gn.manual_seed(3)
    critic = make()
    reference = twin(critic, make_ref())
    rng = np.random.default_rng(critic_case)
    real, fake = rng.random(shape), rng.random(shape)
    alpha = rng.random((shape[0],) + (1,) * (len(shape) - 1))
    gp = gan.gradient_penalty(critic, g(real), g(fake, True), g(alpha))
    gp.backward()

    x_hat = t(alpha * real + (1 - alpha) * fake, True)
    (gx,) = torch.autograd.grad(reference(x_hat).sum(), x_hat, create_graph=True)
    expected = ((gx.reshape(len(gx), -1).norm(2, dim=1) - 1) ** 2).mean()
    expected.backward()
    assert_close(gp, expected.detach().numpy(), what="gradient penalty")
    for (name, p), (_, q) in zip(critic.named_parameters(), reference.named_parameters()):
        theirs = np.zeros(q.shape) if q.grad is None else q.grad.numpy()
        assert_close(np.zeros(p.shape) if p.grad is None else p.grad, theirs, what=f"d penalty / d {name}")
    assert any(np.abs(q.grad.numpy()).max() > 1e-3 for q in reference.parameters() if q.grad is not None)


def test_gradient_penalty_gradient_matches_finite_differences():
    """The penalty as a function of the critic's weights (a LeakyReLU MLP written with functional ops): autograd's
    gradient through double backprop against central differences."""
    rng = np.random.default_rng(0)
    real, fake, alpha = g(rng.random((4, 5))), g(rng.random((4, 5))), g(rng.random((4, 1)))

    def penalty(w1, b1, w2):
        return gan.gradient_penalty(lambda x: F.linear(F.leaky_relu(F.linear(x, w1, b1), 0.2), w2), real, fake, alpha)

    weights = (g(rng.normal(size=(6, 5)), True), g(rng.normal(size=6), True), g(rng.normal(size=(1, 6)), True))
    assert gradcheck(penalty, weights)


def test_gradient_penalty_is_zero_for_a_unit_slope_critic():
    """A worked value: critic(x) = x . u with |u| = 1 has gradient norm 1 everywhere, so the penalty is 0; with
    |u| = 3 it is (3 - 1)^2 = 4."""
    u = np.array([0.6, 0.8])
    x = g(np.random.default_rng(0).random((5, 2)))
    for scale, expected in ((1.0, 0.0), (3.0, 4.0)):
        w = g(u[None, :] * scale)
        assert float(gan.gradient_penalty(lambda v: F.linear(v, w), x, x * 0.5)) == pytest.approx(expected, abs=1e-12)


def test_gradient_penalty_draws_alpha_from_the_seeded_generator():
    critic = gan.MLPDiscriminator(4, 3)
    real, fake = gn.rand(6, 4), gn.rand(6, 4)
    gn.manual_seed(7)
    first = float(gan.gradient_penalty(critic, real, fake))
    gn.manual_seed(7)
    assert float(gan.gradient_penalty(critic, real, fake)) == first
    with pytest.raises(ValueError, match=r"gradient_penalty: real \(6, 4\) and fake \(5, 4\)"):
        gan.gradient_penalty(critic, real, fake[:5])


def test_clip_weights_clamps_every_parameter_in_place(device):
    gn.manual_seed(0)
    critic = gan.DCGANDiscriminator(1, 8, 2)
    before = {k: np.asarray(v).copy() for k, v in critic.state_dict().items()}
    params = list(critic.parameters())
    gan.clip_weights(critic, 0.01)
    assert all(p is q for p, q in zip(params, critic.parameters()))
    for name, p in critic.named_parameters():
        assert_close(p, np.clip(before[name], -0.01, 0.01), what=name)
    assert_close(critic.state_dict()["3.running_var"], before["3.running_var"])  # buffers are not clipped
