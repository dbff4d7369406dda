"""``language_model``: next-token prediction with truncated backpropagation through time, and text sampling.

The data are consecutive windows of token ids (x) and the same windows one token later (y), e.g. ``shakespeare``.
Training batches are parallel streams (``gpunet.data.StreamLoader``: row b of a batch continues row b of the
previous batch); each batch's windows are cut into chunks of ``bptt`` steps, and every chunk is one update whose
recurrent layers start from the state the previous chunk ended with, detached (so gradients flow back ``bptt`` steps
at most). The state is zero at each epoch's start and is saved in checkpoints, so resume is exact mid-epoch. In a
data-parallel run each rank carries the rows of its share of the batch; every rank's are saved, and a resume with
another number of ranks re-splits them by rows (``resplit_rows``), so every stream keeps its state.
Validation and test windows are scored from a zero state each (their batches are not streams).

The model is a ``Sequential`` (a config's ``layers:``) mapping (N, L) ids to (N, L, vocabulary) logits: an
``Embedding``, recurrent layers with ``return_mode: sequence`` and a ``Linear`` readout. The loss is the
cross-entropy of every step, averaged over steps and rows (``time_reduction: mean``) or summed over each window's
steps and averaged over rows (``sum``). Logged: ``loss``, ``nll`` (mean per token, nats) and, derived from it,
``bpc`` (bits per character, nll / ln 2) and ``perplexity`` (exp nll).
"""
from __future__ import annotations

import os

import numpy as np

from ...autograd import no_grad
from ...nn.containers import Sequential
from ...ops import tensor
from ...nn.functional import cross_entropy
from ...nn.rnn import RNNBase
from ..atomic import atomic_write_text
from ..metrics import bits_per_character, perplexity
from .base import Key, ModelShapeError, Task, check_keys, register_task

SAMPLES_FILE = "samples.txt"


def _recurrent_layers(model) -> list:
    return [layer for layer in model._modules.values() if isinstance(layer, RNNBase)]


def run_stateful(model, ids, states: dict):
    """``model``'s logits for the Tensor of ids ``ids`` (N, L), its recurrent layers starting from ``states``
    (layer index -> state, missing: zero); returns (logits, the layers' final states by index)."""
    x, finals = ids, {}
    for index, layer in enumerate(model._modules.values()):
        if isinstance(layer, RNNBase):
            mode, layer.return_mode = layer.return_mode, None  # PyTorch's (output, state) for this call
            try:
                x, finals[index] = layer(x, states.get(index))
            finally:
                layer.return_mode = mode
        else:
            x = layer(x)
    return x, finals


def _detached(states: dict) -> dict:
    return {i: tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach() for i, s in states.items()}


def sample_text(model, vocabulary, prompt: str, length: int, temperature: float = 1.0, seed: int = 0) -> str:
    """``prompt`` followed by ``length`` tokens drawn one at a time from ``softmax(logits / temperature)`` of the
    language model ``model`` (a ``Sequential`` as the task's), with a ``numpy.random.default_rng(seed)``: the same
    arguments give the same text. A temperature near 0 picks the likeliest token (greedy decoding); padding and
    out-of-vocabulary ids (and outputs past the vocabulary) are never drawn. Runs on the model's device."""
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) or not temperature > 0:
        raise ValueError(f"temperature must be a number > 0 (near 0: greedy decoding), got {temperature!r}")
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ValueError(f"length must be an integer >= 0, got {length!r}")
    ids = vocabulary.encode(prompt)
    if not ids:
        raise ValueError("the prompt must have at least one token to start from")
    device = next(iter(model.parameters())).device
    rng = np.random.default_rng(seed)
    model.eval()
    generated, states, step = [], {}, np.asarray([ids], dtype=np.int64)
    with no_grad():
        for _ in range(length):
            logits, states = run_stateful(model, tensor(step, device=device), states)
            scores = logits.numpy()[0, -1].astype(np.float64) / temperature
            scores[:2] = -np.inf  # padding, out-of-vocabulary
            scores[len(vocabulary):] = -np.inf  # outputs past the vocabulary (a readout larger than it)
            p = np.exp(scores - scores.max())
            p /= p.sum()
            token = int(min(np.searchsorted(np.cumsum(p), rng.random(), side="right"), len(p) - 1))
            generated.append(token)
            step = np.asarray([[token]], dtype=np.int64)
    return prompt + vocabulary.decode(generated)


@register_task("language_model")
class LanguageModel(Task):
    """Next-token prediction (a model from ids (N, L) to logits (N, L, vocabulary)) with truncated backpropagation
    through time: the training windows are batched as parallel streams, each window is trained in chunks of ``bptt``
    steps, and recurrent layers carry their state (detached) from chunk to chunk and batch to batch, reset each
    epoch. Logs ``nll``, ``bpc`` and ``perplexity``; writes ``samples.txt`` at the end of a run (see
    docs/sequences.md)."""

    stateful_batches = True
    vocabulary = None  # the data's Vocabulary, set by the runner (samples need it)
    uses_loss = False
    loss_names = ("loss", "nll")
    keys = {
        "bptt": Key("time steps per truncated-BPTT update: each window is cut into chunks of this many steps, the "
                    "state carried (detached) from chunk to chunk (null: one update per window of data.seq_len)",
                    ge=1),
        "time_reduction": Key("how the loss combines a window's steps: mean (per token) or sum (per window; both "
                              "averaged over the batch)", choices=("mean", "sum")),
        "sample_prompt": Key("text the end-of-run samples start from (samples.txt)"),
        "sample_length": Key("tokens generated per end-of-run sample (0: no samples.txt)", ge=0),
        "sample_temperatures": Key("one sample per temperature (> 0; near 0: greedy)", gt=0),
    }

    def __init__(self, bptt: int | None = None, time_reduction: str = "mean", sample_prompt: str = "\n",
                 sample_length: int = 300, sample_temperatures: list[float] = (0.5, 1.0)):
        check_keys(self, bptt=bptt, time_reduction=time_reduction, sample_prompt=sample_prompt,
                   sample_length=sample_length, sample_temperatures=list(sample_temperatures))
        self.bptt, self.time_reduction = bptt, time_reduction
        self.sample_prompt, self.sample_length = sample_prompt, sample_length
        self.sample_temperatures = list(sample_temperatures)
        self._states, self._epoch = {}, -1

    def bind(self, trainer, models, optimizers, loss_fn) -> None:
        super().bind(trainer, models, optimizers, loss_fn)
        model = models["model"]
        if not isinstance(model, Sequential):
            raise ValueError("task language_model: the model must be a Sequential (a config's model.layers), got "
                             f"{type(model).__name__}")
        for layer in _recurrent_layers(model):
            if layer.return_mode != "sequence" or not layer.batch_first:
                raise ValueError(f"task language_model: {type(layer).__name__} layers need return_mode 'sequence' "
                                 "and batch_first true (a prediction at every step)")

    def dry_run(self, check, info) -> None:
        out = check("model", info.input_shape)
        if tuple(out[:-1]) != tuple(info.input_shape):
            raise ModelShapeError("model", f"a language model maps ids {tuple(info.input_shape)} to logits "
                                  f"{tuple(info.input_shape)} + (vocabulary,) (recurrent layers with return_mode: "
                                  f"sequence); this one gives {tuple(out)}")
        if info.num_classes is not None and out[-1] < info.num_classes:
            raise ModelShapeError("model", f"the model gives {out[-1]} logits per step but the data's vocabulary "
                                  f"has {info.num_classes} ids; make the readout's out_features at least that")

    # ----- steps ---------------------------------------------------------------------------------------------------
    def _losses(self, x, y, states):
        logits, finals = run_stateful(self.model, self.input(x), states)
        vocabulary = logits.shape[-1]
        nll = cross_entropy(logits.reshape(-1, vocabulary), self.input(np.ascontiguousarray(y).reshape(-1)))
        loss = nll * y.shape[1] if self.time_reduction == "sum" else nll
        return {"loss": loss, "nll": nll}, finals

    def train_step(self, x, y):
        if self.trainer.epoch != self._epoch:  # an epoch starts: the streams start over
            self._states, self._epoch = {}, self.trainer.epoch
        chunk = self.bptt or x.shape[1]
        if not len(x):  # an empty share of a data-parallel batch: the same updates (all-reduces) as the others
            for _ in range(0, x.shape[1], chunk):
                self.update("model", None)
            return {}
        nll = 0.0
        for start in range(0, x.shape[1], chunk):
            xs, ys = x[:, start:start + chunk], y[:, start:start + chunk]
            losses, finals = self._losses(xs, ys, self._states)
            self.update("model", losses["loss"])
            self._states = _detached(finals)
            nll = nll + losses["nll"].detach() * (xs.shape[1] / x.shape[1])  # the window's mean over its steps
        return {"loss": nll * x.shape[1] if self.time_reduction == "sum" else nll, "nll": nll}

    def eval_step(self, x, y):
        return self._losses(x, y, {})[0]

    def derived(self, means: dict) -> dict:
        if "nll" not in means:
            return {}
        return {"bpc": bits_per_character(means["nll"]), "perplexity": perplexity(means["nll"])}

    # ----- samples -------------------------------------------------------------------------------------------------
    def final_artifacts(self, directory: str, splits: dict) -> list[str]:
        if not self.sample_length or self.vocabulary is None:
            return []
        texts = [f"--- temperature {t:g} ---\n" + sample_text(self.model, self.vocabulary, self.sample_prompt,
                                                               self.sample_length, t, seed=0) + "\n"
                 for t in self.sample_temperatures]
        path = os.path.join(directory, SAMPLES_FILE)
        atomic_write_text(path, "\n".join(texts))
        return [path]

    # ----- state ---------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"epoch": self._epoch}

    def load_state_dict(self, state: dict) -> None:
        self._epoch = int(state["epoch"])

    def rank_state_dict(self) -> dict:
        state = {"layers": sorted(self._states)}
        for index, value in self._states.items():
            for part, t in enumerate(value if isinstance(value, tuple) else (value,)):
                state[f"state_{index}_{part}"] = t.numpy()
        return state

    def saved_rank_state(self, saved: list, rank: int, world_size: int) -> dict:
        return resplit_rows(saved, rank, world_size)

    def load_rank_state_dict(self, state: dict | None) -> None:
        self._states = {}
        for index in (state or {"layers": []})["layers"]:
            parts = [self.input(state[k]) for k in sorted(k for k in state if k.startswith(f"state_{index}_"))]
            self._states[int(index)] = tuple(parts) if len(parts) > 1 else parts[0]


def resplit_rows(saved: list, rank: int, world_size: int) -> dict:
    """Rank ``rank`` of ``world_size``'s carried states from every saved rank's ``rank_state_dict()`` (``saved``, in
    rank order). Saved rank r of N carried rows ``numpy.array_split(range(batch), N)[r]`` of the global batch's
    streams (its share, see ``gpunet.data.DataLoader``), so the saved rows joined in rank order are every stream's,
    and rank ``rank`` takes its share of them: each stream keeps its state (with the same N, saved rank r's own;
    ranks with an empty share carry none). States are (layers * directions, batch, hidden): rows on axis 1."""
    carrying = [state for state in saved if state and len(state["layers"])]
    if not carrying:
        return {"layers": []}
    names = [name for name in carrying[0] if name != "layers"]
    joined = {name: np.concatenate([np.asarray(state[name]) for state in carrying], axis=1) for name in names}
    rows = np.array_split(np.arange(joined[names[0]].shape[1]), world_size)[rank]
    if not len(rows):
        return {"layers": []}
    return {"layers": carrying[0]["layers"], **{name: a[:, rows[0]:rows[-1] + 1] for name, a in joined.items()}}
