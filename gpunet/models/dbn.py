"""DeepBeliefNet: a stack of Bernoulli RBMs pre-trained greedily, layer by layer, then unrolled into a feed-forward
classifier and fine-tuned by backpropagation (Hinton, Osindero and Teh 2006; seed 002's SupervisedDBNClassification).

RBM ``i`` learns the hidden probabilities P(h=1|v) that RBMs ``0..i-1`` give for the data (``rbm_input``). Then
``unroll()`` copies each RBM's ``weight`` (n_hidden, n_visible) and ``h_bias`` into the classifier's Linear layers
(the same layout), and the classifier ``Linear -> activation -> Dropout`` per hidden layer plus a Linear head is
trained supervised. ``forward`` is the classifier's.
"""
from __future__ import annotations

from ..autograd.grad_mode import no_grad
from ..nn import Dropout, Linear, Module, ModuleList, ReLU, Sequential, Sigmoid, Tanh
from ..nn.rbm import BernoulliRBM

ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


class DeepBeliefNet(Module):
    """``n_visible`` inputs, one RBM per entry of ``hidden_sizes``, ``num_classes`` outputs (logits).

    ``activation`` (relu, sigmoid or tanh) and ``dropout`` (a probability; 0 for none) shape the unrolled
    classifier; pre-training always uses the RBMs' sigmoid units.
    """

    def __init__(self, n_visible: int, hidden_sizes, num_classes: int, activation: str = "relu",
                 dropout: float = 0.0, device=None, dtype=None):
        super().__init__()
        hidden_sizes = list(hidden_sizes)
        if not hidden_sizes or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in hidden_sizes):
            raise ValueError(f"DeepBeliefNet: hidden_sizes must be a non-empty list of positive integers, "
                             f"got {hidden_sizes!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"DeepBeliefNet: activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(f"DeepBeliefNet: dropout must be a probability in [0, 1), got {dropout!r}")
        sizes = [n_visible, *hidden_sizes]
        self.rbms = ModuleList([BernoulliRBM(n_in, n_out, device=device, dtype=dtype)
                                for n_in, n_out in zip(sizes, sizes[1:])])
        layers = []
        for n_in, n_out in zip(sizes, sizes[1:]):
            layers += [Linear(n_in, n_out, device=device, dtype=dtype), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(Dropout(dropout))
        layers.append(Linear(sizes[-1], num_classes, device=device, dtype=dtype))
        self.classifier = Sequential(*layers)

    def forward(self, x):
        return self.classifier(x)

    def hidden_layers(self) -> list:
        """The classifier's Linear layers that the RBMs initialise (all but the head), in order."""
        return [m for m in self.classifier if isinstance(m, Linear)][:-1]

    def rbm_input(self, layer: int, x):
        """What RBM ``layer`` is trained on: ``x`` passed through the hidden probabilities of the RBMs below it."""
        with no_grad():
            for rbm in self.rbms[:layer]:
                x = rbm.hidden_probs(x)
        return x

    def pretrain_step(self, layer: int, x, k: int = 1, chain=None, generator=None):
        """Set RBM ``layer``'s ``.grad`` to its CD-k (or persistent CD, with ``chain``) estimate on batch ``x`` of
        the network's inputs; returns the new chain (see ``BernoulliRBM.contrastive_divergence``)."""
        return self.rbms[layer].contrastive_divergence(self.rbm_input(layer, x), k=k, chain=chain, generator=generator)

    def unroll(self) -> None:
        """Copy each RBM's weight and hidden bias into its Linear layer of the classifier."""
        with no_grad():
            for rbm, linear in zip(self.rbms, self.hidden_layers()):
                linear.weight.data[...] = rbm.weight.data
                linear.bias.data[...] = rbm.h_bias.data


__all__ = ["DeepBeliefNet"]
