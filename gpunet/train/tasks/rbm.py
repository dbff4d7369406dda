"""``rbm``: a Bernoulli restricted Boltzmann machine trained by contrastive divergence (CD-k) or persistent CD, with
its reconstruction error and pseudo-likelihood logged and its weights drawn as a grid of filters (seeds 001, 002)."""
from __future__ import annotations

import os

import numpy

from ...nn.rbm import BernoulliRBM
from ...ops import mean
from ..plots import image_shape, plot_image_rows
from .base import Key, Task, check_keys, register_task

FILTERS = "filters.png"


def check_unit_interval(x, task: str) -> None:
    """Refuse inputs a Bernoulli unit cannot take, naming the config key that fixes them."""
    if len(x) and (float(x.min()) < 0 or float(x.max()) > 1):
        raise ValueError(f"{task} task: the inputs must lie in [0, 1] for Bernoulli visible units, but they span "
                         f"[{float(x.min()):g}, {float(x.max()):g}]; set data.normalize to minmax or scale")


def flat(x):
    """Samples as rows of features (images flattened)."""
    return x.reshape(len(x), -1)


def plot_filters(weight: numpy.ndarray, sample_shape, path: str, title: str) -> str | None:
    """The rows of ``weight`` (one per hidden unit, at most 100) as pictures of the inputs, ten to a row, on one grey
    scale symmetric about 0; None when the inputs are not pictures or without matplotlib."""
    shape = image_shape(sample_shape)
    if shape is None:
        return None
    filters = weight[:100]
    bound = float(numpy.abs(filters).max()) or 1.0
    rows = [(f"hidden units {i + 1}-{min(i + 10, len(filters))}", filters[i:i + 10]) for i in range(0, len(filters), 10)]
    return plot_image_rows(rows, shape, path, title, low=-bound, high=bound)


@register_task("rbm")
class RBM(Task):
    """Unsupervised: a ``BernoulliRBM`` (``gpunet.nn.rbm``) of ``n_hidden`` units on the flattened inputs (values in
    [0, 1]). Each batch sets the CD-k gradient and the optimizer steps (plain SGD with lr is the classic rule). Logs
    ``loss`` = ``recon_error`` (mean squared error of the mean-field reconstruction) and ``pseudo_likelihood``
    (scikit-learn's ``score_samples``, per sample; higher is better); draws ``filters.png``. Example:
    configs/rbm_digits.yaml."""

    data = "inputs"
    uses_loss = False
    own_models = ("model",)
    loss_names = ("loss", "recon_error", "pseudo_likelihood")
    keys = {
        "n_hidden": Key("number of binary hidden units", ge=1),
        "k": Key("Gibbs steps of the negative phase per update (CD-k)", ge=1),
        "persistent": Key("persistent CD (Tieleman 2008): the negative phase continues chains kept from batch to "
                          "batch (one per sample of the first batch, each data-parallel rank its own; saved in "
                          "checkpoints) instead of starting at the data"),
    }

    def __init__(self, n_hidden: int = 64, k: int = 1, persistent: bool = False):
        check_keys(self, n_hidden=n_hidden, k=k, persistent=persistent)
        self.n_hidden, self.k, self.persistent = n_hidden, k, persistent
        self.chain = None  # the persistent chains' hidden states (a Tensor on the device)
        self.image_shape = None

    def build_model(self, name, info):
        self.image_shape = tuple(info.input_shape)
        return BernoulliRBM(int(numpy.prod(info.input_shape)), self.n_hidden)

    def _visible(self, x):
        check_unit_interval(x, "rbm")
        return self.input(flat(x))

    def _figures(self, v, index=None):
        """The logged figures of a batch (the pseudo-likelihood's flipped units drawn unless given)."""
        error = self.model.reconstruction_error(v)
        return {"loss": error, "recon_error": error,
                "pseudo_likelihood": mean(self.model.pseudo_likelihood(v, index=index))}

    def train_step(self, x, y):
        if not len(x):  # an empty share of a data-parallel batch: the ranks' gradient average, adding nothing
            self.update("model", None)
            return {}
        v = self._visible(x)
        figures = self._figures(v)
        if self.persistent and self.chain is None:
            self.chain = self.input(numpy.zeros((len(x), self.model.n_hidden), numpy.dtype(v.dtype)))
        chain = self.model.contrastive_divergence(v, k=self.k, chain=self.chain if self.persistent else None)
        if self.persistent:
            self.chain = chain
        self.apply_gradients("model")
        return figures

    def eval_step(self, x, y):
        v = self._visible(x)
        index = numpy.random.default_rng(0).integers(0, self.model.n_visible, len(x))  # not gpunet's generator
        return self._figures(v, index)

    def final_artifacts(self, directory, splits):
        path = plot_filters(self.model.weight.numpy(), self.image_shape or (self.model.n_visible,),
                            os.path.join(directory, FILTERS),
                            f"RBM weights: one filter per hidden unit (first {min(self.model.n_hidden, 100)})")
        return [path] if path else []

    def rank_state_dict(self):
        return {"chain": None if self.chain is None else self.chain.numpy()}

    def load_rank_state_dict(self, state):
        chain = None if state is None else state["chain"]
        self.chain = None if chain is None else self.input(numpy.asarray(chain))
