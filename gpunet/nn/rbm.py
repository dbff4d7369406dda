"""BernoulliRBM: a restricted Boltzmann machine with binary visible and hidden units (seeds 001 and 002).

Energy E(v, h) = -v.b_v - h.b_h - h W v, with ``weight`` W of shape (n_hidden, n_visible) (scikit-learn's
``components_``, PyTorch's Linear layout), so P(h=1|v) = sigmoid(v W^T + b_h) and P(v=1|h) = sigmoid(h W + b_v).
Training is contrastive divergence: ``contrastive_divergence`` writes the CD-k (or persistent CD) estimate of the
negative log-likelihood gradient into the parameters' ``.grad``, and any optimizer applies it (plain SGD with
learning rate lr gives scikit-learn's update W += lr/n (v_pos^T h_pos - v_neg^T h_neg)^T).

Every random draw is a uniform number from ``generator.random(shape)`` (gpunet's seeded generator unless another
is given), compared with the unit's probability, so a run is reproducible and a test can inject the draws.
"""
from __future__ import annotations

import numpy

from .. import random as _random
from ..autograd.grad_mode import no_grad
from ..autograd.tensor import Tensor
from ..ops import cast, linear, matmul, mean, sigmoid, sum, tensor
from ..ops.activation import softplus
from . import init
from .linear import _empty_parameter
from .module import Module


class BernoulliRBM(Module):
    """An RBM with ``n_visible`` binary visible units and ``n_hidden`` binary hidden units.

    Parameters: ``weight`` (n_hidden, n_visible), initialised from N(0, 0.01^2) as in scikit-learn and Hinton's
    guide; ``h_bias`` (n_hidden,) and ``v_bias`` (n_visible,), zero. ``forward(v)`` gives P(h=1|v), the features
    (scikit-learn's ``transform``). Inputs are values in [0, 1] (binary, or probabilities such as scaled pixels).
    """

    def __init__(self, n_visible: int, n_hidden: int, device=None, dtype=None):
        super().__init__()
        for name, value in (("n_visible", n_visible), ("n_hidden", n_hidden)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BernoulliRBM: {name} must be a positive integer, got {value!r}")
        self.n_visible, self.n_hidden = n_visible, n_hidden
        self.weight = _empty_parameter((n_hidden, n_visible), device, dtype)
        self.h_bias = _empty_parameter((n_hidden,), device, dtype)
        self.v_bias = _empty_parameter((n_visible,), device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight, 0.0, 0.01)
        init.zeros_(self.h_bias)
        init.zeros_(self.v_bias)

    def extra_repr(self) -> str:
        return f"n_visible={self.n_visible}, n_hidden={self.n_hidden}"

    def _check_visible(self, v, where):
        if not isinstance(v, Tensor) or v.ndim != 2 or v.shape[1] != self.n_visible:
            shape = tuple(v.shape) if hasattr(v, "shape") else type(v).__name__
            raise ValueError(f"BernoulliRBM.{where}: expected visible units of shape (batch, {self.n_visible}) "
                             f"as a Tensor, got {shape}; flatten images first (data.flatten: true)")

    def hidden_probs(self, v):
        """P(h=1|v) = sigmoid(v W^T + b_h), shape (batch, n_hidden)."""
        return sigmoid(linear(v, self.weight, self.h_bias))

    def visible_probs(self, h):
        """P(v=1|h) = sigmoid(h W + b_v), shape (batch, n_visible)."""
        return sigmoid(matmul(h, self.weight) + self.v_bias)

    def forward(self, v):
        return self.hidden_probs(v)

    def _bernoulli(self, probs, generator):
        """1 where a uniform draw is below the probability, else 0 (in ``probs``' dtype)."""
        draws = tensor(generator.random(tuple(probs.shape)), dtype=probs.dtype, device=probs.device)
        return cast(draws < probs, probs.dtype)

    def sample_hidden(self, v, generator=None):
        """A sample of h given v (0/1 values)."""
        with no_grad():
            return self._bernoulli(self.hidden_probs(v), generator or _random.generator())

    def sample_visible(self, h, generator=None):
        """A sample of v given h (0/1 values)."""
        with no_grad():
            return self._bernoulli(self.visible_probs(h), generator or _random.generator())

    def gibbs(self, v, generator=None):
        """One Gibbs step v -> h -> v', returning the sampled v'."""
        generator = generator or _random.generator()
        return self.sample_visible(self.sample_hidden(v, generator), generator)

    def free_energy(self, v):
        """F(v) = -v.b_v - sum_j softplus((v W^T + b_h)_j), per sample; P(v) is proportional to exp(-F(v))."""
        return -(matmul(v, self.v_bias)) - sum(softplus(linear(v, self.weight, self.h_bias)), dim=1)

    def contrastive_divergence(self, v, k: int = 1, chain=None, generator=None):
        """Set each parameter's ``.grad`` to the CD-k estimate of the negative log-likelihood gradient on batch ``v``.

        Positive phase: P(h|v) of the data. Negative phase: ``k`` Gibbs steps starting from a sample of h given
        the data (CD-k), or from the hidden states ``chain`` of a persistent chain (persistent CD, Tieleman 2008;
        scikit-learn's BernoulliRBM is PCD with k=1). As in scikit-learn, the negative statistics use the sampled
        visible units and the hidden probabilities. Returns the chain's new hidden states (a sample of h given
        the last visible sample) when ``chain`` is given, else None.
        """
        self._check_visible(v, "contrastive_divergence")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"BernoulliRBM.contrastive_divergence: k (Gibbs steps) must be an integer >= 1, got {k!r}")
        if chain is not None and (chain.ndim != 2 or chain.shape[1] != self.n_hidden):
            raise ValueError(f"BernoulliRBM.contrastive_divergence: the persistent chain must have shape "
                             f"(chains, {self.n_hidden}), got {tuple(chain.shape)}")
        generator = generator or _random.generator()
        with no_grad():
            v = cast(v, self.weight.dtype)
            h_pos = self.hidden_probs(v)
            h = self._bernoulli(h_pos, generator) if chain is None else chain
            for step in range(k):
                v_neg = self._bernoulli(self.visible_probs(h), generator)
                h_neg = self.hidden_probs(v_neg)
                if step < k - 1 or chain is not None:
                    h = self._bernoulli(h_neg, generator)
            n_pos, n_neg = v.shape[0], v_neg.shape[0]
            self.weight.grad = (matmul(h_neg.T, v_neg) / n_neg - matmul(h_pos.T, v) / n_pos)
            self.h_bias.grad = sum(h_neg, dim=0) / n_neg - sum(h_pos, dim=0) / n_pos
            self.v_bias.grad = sum(v_neg, dim=0) / n_neg - sum(v, dim=0) / n_pos
        return h if chain is not None else None

    def reconstruction_error(self, v):
        """Mean squared error per unit between v and its mean-field reconstruction P(v=1 | h = P(h=1|v))."""
        self._check_visible(v, "reconstruction_error")
        with no_grad():
            v = cast(v, self.weight.dtype)
            error = v - self.visible_probs(self.hidden_probs(v))
            return mean(error * error)

    def pseudo_likelihood(self, v, index=None, generator=None):
        """Per-sample pseudo-likelihood as scikit-learn's ``score_samples`` defines it:
        n_visible * log sigmoid(F(v~) - F(v)), v~ being v with unit ``index[i]`` of sample i flipped (1 - v).

        ``index`` (one visible unit per sample) is drawn from the generator unless given. Meaningful for binary v.
        """
        self._check_visible(v, "pseudo_likelihood")
        n = v.shape[0]
        if index is None:
            index = (generator or _random.generator()).integers(0, self.n_visible, n)
        index = numpy.asarray(index)
        if index.shape != (n,) or index.dtype.kind not in "iu" or index.min(initial=0) < 0 \
                or index.max(initial=0) >= self.n_visible:
            raise ValueError(f"BernoulliRBM.pseudo_likelihood: index must hold one visible unit in "
                             f"[0, {self.n_visible}) per sample ({n}), got {index!r}")
        with no_grad():
            v = cast(v, self.weight.dtype)
            flip = numpy.zeros((n, self.n_visible))
            flip[numpy.arange(n), index] = 1.0
            flip = tensor(flip, dtype=v.dtype, device=v.device)
            v_flipped = v + flip * (1.0 - 2.0 * v)
            gap = self.free_energy(v_flipped) - self.free_energy(v)
            return softplus(-gap) * (-float(self.n_visible))


__all__ = ["BernoulliRBM"]
