"""Whether generated images look like the data's classes: a small classifier (the *judge*) trained on the real
labelled training data classifies the samples of a generative model (a GAN's, a VAE's).

The figures, for the samples and for the real test images side by side (the reference a reader compares with):
- ``confidence``: the mean probability of the predicted class; ``confident_fraction``: the share of images whose
  predicted class has probability >= 0.9 (a blurred or broken digit gets neither);
- ``class_histogram``: how many images fall in each class, and ``class_entropy``: its entropy over log(classes),
  1 when every class is equally frequent, 0 when one class takes all (mode collapse);
- ``classifier_score``: exp(mean_x KL(p(y|x) || p(y))), the Inception score with the judge as the network: up to
  the number of classes for confident, evenly spread images, 1 for images the judge cannot tell apart.
``judge_test_accuracy`` says how far the judge itself can be trusted; as an MLP can be confident about images
unlike any digit, ``nearest_train_distance`` (the mean Euclidean distance from each image to its nearest training
image, among at most ``DISTANCE_REFERENCE`` of them) says how far the images are from the data: noise lies far off,
copies of training images at 0, real test images in between.

The judge is an MLP (flatten -> 128 ReLU -> classes) trained by Adam on the CPU for a fixed number of steps; it is
built and trained from its own seed, and gpunet's generator is left as it was, so a run's training numbers do not
depend on whether it is judged.
"""
from __future__ import annotations

import contextlib

import numpy as np

from .. import nn, optim, random
from ..autograd import enable_grad, no_grad
from ..nn import functional as F
from ..ops import tensor

CONFIDENT = 0.9
DISTANCE_REFERENCE = 5000  # training images the distances look at (a fixed draw beyond that: MNIST has 60,000)
JUDGE_STEPS = 400  # Adam steps of 128 images: 0.96-0.97 test accuracy on the 8x8 digits


@contextlib.contextmanager
def _own_seed(seed: int):
    """Draw from gpunet's generator seeded with ``seed`` inside, and restore its state afterwards."""
    state = random.get_rng_state()
    random.manual_seed(seed)
    try:
        yield
    finally:
        random.set_rng_state(state)


def train_judge(x, y, num_classes: int, steps: int | None = None, batch_size: int = 128, lr: float = 3e-3,
                seed: int = 0):
    """The judge: an MLP on the flattened images ``x`` (N, ...) with labels ``y`` trained for ``steps`` (default
    ``JUDGE_STEPS``), on the CPU, in eval mode."""
    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.int64)
    if len(x) == 0 or y.shape != (len(x),) or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"train_judge: needs labelled images, one class index in [0, {num_classes}) per image; got "
                         f"{len(x)} images and labels of shape {y.shape}")
    rng = np.random.default_rng(seed)
    with _own_seed(seed):
        judge = nn.Sequential(nn.Flatten(), nn.Linear(x.shape[1], 128, device="cpu"), nn.ReLU(),
                              nn.Linear(128, num_classes, device="cpu"))
    optimizer = optim.Adam(judge.parameters(), lr=lr)
    with enable_grad():  # also when called under no_grad, as Task.summary is
        for _ in range(JUDGE_STEPS if steps is None else steps):
            rows = rng.integers(0, len(x), min(batch_size, len(x)))
            loss = F.cross_entropy(judge(tensor(x[rows], device="cpu")), tensor(y[rows], device="cpu"))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return judge.eval()


def class_probabilities(judge, images) -> np.ndarray:
    """The judge's softmax over the classes for each image (N, ...), as a NumPy array (N, classes)."""
    images = np.asarray(images, dtype=np.float32)
    with no_grad():
        return F.softmax(judge(tensor(images.reshape(len(images), -1), device="cpu")), dim=1).numpy()


def judge_images(probabilities: np.ndarray) -> dict:
    """The figures of the module docstring from the judge's class probabilities (N, classes)."""
    p = np.asarray(probabilities, dtype=np.float64)
    classes = p.shape[1]
    top = p.max(axis=1)
    histogram = np.bincount(p.argmax(axis=1), minlength=classes)
    share = histogram / histogram.sum()
    nonzero = share[share > 0]
    marginal = p.mean(axis=0)
    kl = np.sum(p * (np.log(np.clip(p, 1e-12, None)) - np.log(np.clip(marginal, 1e-12, None))), axis=1)
    return {"confidence": float(top.mean()), "confident_fraction": float(np.mean(top >= CONFIDENT)),
            "class_histogram": [int(c) for c in histogram],
            "class_entropy": float(-np.sum(nonzero * np.log(nonzero)) / np.log(classes)),
            "classifier_score": float(np.exp(kl.mean()))}


def nearest_distance(images, reference, chunk: int = 256) -> float:
    """The mean over ``images`` of the Euclidean distance to the nearest of the ``reference`` images."""
    a = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    b = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    b_norms = np.sum(b * b, axis=1)
    nearest = [np.min(np.sum(part * part, axis=1)[:, None] + b_norms[None, :] - 2 * part @ b.T, axis=1)
               for part in (a[k:k + chunk] for k in range(0, len(a), chunk))]
    return float(np.mean(np.sqrt(np.maximum(np.concatenate(nearest), 0.0))))


def sample_quality(judge, samples, test_x, test_y, train_x) -> dict:
    """``{"judge_test_accuracy", "samples": figures, "real_test": figures}`` for generated ``samples`` against the
    real test images ``test_x`` with labels ``test_y`` (``train_x``: the training images, for the distances)."""
    real = class_probabilities(judge, test_x)
    if len(train_x) > DISTANCE_REFERENCE:
        train_x = np.asarray(train_x)[np.random.default_rng(0).choice(len(train_x), DISTANCE_REFERENCE, replace=False)]
    return {"judge_test_accuracy": float(np.mean(real.argmax(axis=1) == np.asarray(test_y))),
            "samples": {**judge_images(class_probabilities(judge, samples)),
                        "nearest_train_distance": nearest_distance(samples, train_x)},
            "real_test": {**judge_images(real), "nearest_train_distance": nearest_distance(test_x, train_x)}}


def judge_samples(samples, splits: dict, seed: int = 0) -> dict:
    """``{"sample_quality": sample_quality(...)}`` of ``samples`` with a judge trained on the labelled training split
    of ``splits`` (name -> DataLoader) and compared with the test split (else the validation split); ``{}`` when the
    data has no labels to train a judge on."""
    train = splits.get("train")
    reference = splits.get("test") or splits.get("val")
    if train is None or reference is None or len(train.arrays) < 2 or len(reference.arrays) < 2:
        return {}
    (x, y), (test_x, test_y) = train.arrays[:2], reference.arrays[:2]
    if np.asarray(y).ndim != 1 or np.asarray(y).dtype.kind not in "iu":
        return {}
    judge = train_judge(x, y, int(max(np.max(y), np.max(test_y))) + 1, seed=seed)
    return {"sample_quality": {**sample_quality(judge, samples, test_x, test_y, x), "samples_judged": len(samples)}}
