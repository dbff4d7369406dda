"""Random data augmentation of whole training batches, with torchvision's names and arguments.

A transform takes a batch of images ``x`` (N, C, H, W), its labels ``y`` and a ``numpy.random.Generator``, and returns
the new ``(x, y)``; every image gets its own random draw, computed for the whole batch at once (no loop over images).
All randomness comes from the generator it is given: ``DataLoader(..., transform=...)`` passes one derived from
(seed, epoch, batch index) only, so a batch is augmented the same way in a resumed run as in an uninterrupted one.

    from gpunet.data import transforms as T
    augment = T.Compose([T.RandomCrop(28, padding=2), T.RandomAffine(degrees=10), T.MixUp(alpha=0.2, num_classes=10)])
    loader = DataLoader(dataset.train, 64, shuffle=True, transform=augment)
    x, y = augment(x, y, np.random.default_rng(0))   # or directly, with a generator of your own

``MixUp`` and ``CutMix`` mix pairs of images and turn integer labels into class probabilities (N, num_classes), which
``gpunet.nn.CrossEntropyLoss`` accepts as PyTorch's does; they declare ``changes_targets = True``.
"""
from __future__ import annotations

import math

import numpy as np

from ..kinds import AnyOf, ArgumentError, Arguments, Bool, Choice, Float, Int, ListOf, Optional, checked, sizes

__all__ = ["CutMix", "Compose", "GaussianNoise", "MixUp", "RandomAffine", "RandomCrop", "RandomErasing",
           "RandomHorizontalFlip", "Transform"]


def _pair(value) -> tuple:
    """A value given once for both (height, width) axes, or a pair."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _ordered(*names):
    """The rule that each of ``names`` given as a pair is (low, high) with low <= high."""
    def rule(args):
        for name in names:
            value = args[name]
            if isinstance(value, (tuple, list)) and value[0] > value[1]:
                raise ArgumentError(name, "must be (low, high) with low <= high", value,
                                    f"[{value[1]:g}, {value[0]:g}]")
    return rule


_PROBABILITY = Float(ge=0, le=1)


class Transform:
    """A random transform of a batch: ``transform(x, y, generator) -> (x, y)``. ``x``: float images (N, C, H, W)."""

    changes_targets = False  # True: the labels come back as class probabilities (MixUp, CutMix)

    def check_sample_shape(self, shape: tuple) -> None:
        """Raise ValueError if samples of ``shape`` (no batch axis) cannot be transformed: images must be (C, H, W)."""
        if len(shape) != 3:
            raise ValueError(f"{type(self).__name__} needs image samples of shape (channels, height, width), got "
                             f"samples of shape {tuple(shape)}")

    def __call__(self, x, y, generator: np.random.Generator):
        x = np.asarray(x)
        self.check_sample_shape(x.shape[1:])
        if x.dtype.kind != "f":
            raise ValueError(f"{type(self).__name__} needs floating-point images, got dtype {x.dtype}")
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"{type(self).__name__}: generator must be a numpy.random.Generator (e.g. "
                            f"numpy.random.default_rng(seed)), got {type(generator).__name__}")
        return self.forward(x, y, generator)

    def sample_shape(self, shape: tuple) -> tuple:
        """The shape of a transformed sample (no batch axis)."""
        return tuple(shape)

    def forward(self, x: np.ndarray, y, generator: np.random.Generator):
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """The ``transforms`` applied in order, all drawing from the same generator."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not isinstance(t, Transform):
                raise TypeError(f"Compose: every transform must be a gpunet.data.transforms.Transform, got "
                                f"{type(t).__name__}")

    @property
    def changes_targets(self) -> bool:
        return any(t.changes_targets for t in self.transforms)

    def check_sample_shape(self, shape: tuple) -> None:
        for t in self.transforms:
            t.check_sample_shape(shape)
            shape = t.sample_shape(shape)

    def sample_shape(self, shape):
        for t in self.transforms:
            shape = t.sample_shape(shape)
        return tuple(shape)

    def forward(self, x, y, generator):
        for t in self.transforms:
            x, y = t(x, y, generator)
        return x, y


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability ``p``."""

    arguments = Arguments(p=_PROBABILITY)

    @checked
    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def forward(self, x, y, generator):
        flip = generator.random(len(x)) < self.p
        return np.where(flip[:, None, None, None], x[..., ::-1], x), y


class RandomCrop(Transform):
    """Pad each image by ``padding`` (an int, or (top/bottom, left/right)) with ``fill`` (``padding_mode``
    "constant") or by repeating the edge ("edge") or mirroring ("reflect"), then cut a ``size`` (an int or (height,
    width)) window at a random place."""

    arguments = Arguments(size=sizes(2, 1), padding=Optional(sizes(2, 0)), fill=Float(),
                          padding_mode=Choice(("constant", "edge", "reflect"), "padding mode"))

    @checked
    def __init__(self, size, padding=None, fill: float = 0, padding_mode: str = "constant"):
        self.size = tuple(int(s) for s in _pair(size))
        self.padding = tuple(int(p) for p in _pair(0 if padding is None else padding))
        self.fill = float(fill)
        self.padding_mode = padding_mode

    def check_sample_shape(self, shape):
        super().check_sample_shape(shape)
        padded = tuple(s + 2 * p for s, p in zip(shape[1:], self.padding))
        if any(c > s for c, s in zip(self.size, padded)):
            raise ValueError(f"RandomCrop: size {self.size} is larger than the padded image {padded} (image "
                             f"{tuple(shape[1:])}, padding {self.padding}); use a smaller size or more padding")
        if self.padding_mode == "reflect" and any(p >= s for p, s in zip(self.padding, shape[1:])):
            raise ValueError(f"RandomCrop: reflect padding {self.padding} must be smaller than the image "
                             f"{tuple(shape[1:])}")

    def sample_shape(self, shape):
        return (shape[0], *self.size)

    def forward(self, x, y, generator):
        (ph, pw), (h, w) = self.padding, self.size
        widths = ((0, 0), (0, 0), (ph, ph), (pw, pw))
        padded = np.pad(x, widths, mode=self.padding_mode, **(
            {"constant_values": self.fill} if self.padding_mode == "constant" else {}))
        top = generator.integers(0, padded.shape[2] - h + 1, len(x))
        left = generator.integers(0, padded.shape[3] - w + 1, len(x))
        windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
        return np.ascontiguousarray(windows[np.arange(len(x)), :, top, left]), y


def _sampler(x, fill):
    """``read(rows, cols)``: ``x[n, :, rows[n], cols[n]]`` for integer maps (N, H, W), ``fill`` outside the image
    (``x`` is padded by one pixel of ``fill``, which every outside position is clipped onto)."""
    n, c, height, width = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=fill).reshape(n, c, -1)

    def read(rows, cols):
        flat = np.clip(rows + 1, 0, height + 1) * (width + 2) + np.clip(cols + 1, 0, width + 1)
        return np.take_along_axis(padded, flat.reshape(n, 1, -1), axis=2).reshape(n, c, *rows.shape[1:])
    return read


class RandomAffine(Transform):
    """Rotate each image by an angle drawn from ``degrees`` (a number d: [-d, d]; or (low, high)), counter-clockwise
    about its centre, then shift it by up to ``translate`` = (a, b) times its width and height (whole pixels) and
    scale it by a factor drawn from ``scale`` = (low, high). ``interpolation``: "nearest" or "bilinear"; places that
    come from outside the image get ``fill``. A rotation by 90 degrees of a square image is ``np.rot90``."""

    arguments = Arguments(degrees=AnyOf((Float(ge=0), ListOf(Float(), length=2))),
                          translate=Optional(AnyOf((_PROBABILITY, ListOf(_PROBABILITY, length=2)))),
                          scale=Optional(ListOf(Float(gt=0), length=2)),
                          interpolation=Choice(("nearest", "bilinear"), "interpolation"), fill=Float(),
                          rules=(_ordered("degrees", "scale"),))

    @checked
    def __init__(self, degrees, translate=None, scale=None, interpolation: str = "nearest", fill: float = 0):
        low_high = degrees if isinstance(degrees, (tuple, list)) else (-degrees, degrees)
        self.degrees = tuple(float(d) for d in low_high)
        self.translate = None if translate is None else tuple(float(t) for t in _pair(translate))
        self.scale = None if scale is None else tuple(float(s) for s in scale)
        self.interpolation = interpolation
        self.fill = float(fill)

    def forward(self, x, y, generator):
        n, _, height, width = x.shape
        angle = np.deg2rad(generator.uniform(*self.degrees, n))
        shift = np.zeros((2, n))
        if self.translate is not None:
            limits = (self.translate[1] * height, self.translate[0] * width)  # (rows, columns)
            shift = np.round(np.stack([generator.uniform(-m, m, n) for m in limits]))
        factor = generator.uniform(*self.scale, n) if self.scale is not None else np.ones(n)
        # Output pixel (r, c) reads the input at the inverse map: undo the shift, the scale and the rotation.
        # With u = c - cx - shift_c, v = r - cy - shift_r: column cos*u - sin*v, row sin*u + cos*v (over the scale),
        # each an affine function of r and c, evaluated on the grid in float32.
        cy, cx = (height - 1) / 2, (width - 1) / 2
        cos, sin = np.cos(angle) / factor, np.sin(angle) / factor
        u0, v0 = -cx - shift[1], -cy - shift[0]  # u and v at r = c = 0
        r = np.arange(height, dtype=np.float32)[None, :, None]
        c = np.arange(width, dtype=np.float32)[None, None, :]

        def grid(at_origin, per_column, per_row):
            return (at_origin.astype(np.float32)[:, None, None] + per_column.astype(np.float32)[:, None, None] * c
                    + per_row.astype(np.float32)[:, None, None] * r)
        cols = grid(cos * u0 - sin * v0 + cx, cos, -sin)
        rows = grid(sin * u0 + cos * v0 + cy, sin, cos)
        read = _sampler(x, self.fill)
        if self.interpolation == "nearest":
            return read(np.rint(rows).astype(np.int64), np.rint(cols).astype(np.int64)), y
        r0, c0 = np.floor(rows), np.floor(cols)
        fr, fc = (rows - r0)[:, None].astype(x.dtype), (cols - c0)[:, None].astype(x.dtype)
        r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
        top = read(r0, c0) * (1 - fc) + read(r0, c0 + 1) * fc
        bottom = read(r0 + 1, c0) * (1 - fc) + read(r0 + 1, c0 + 1) * fc
        return top * (1 - fr) + bottom * fr, y


class GaussianNoise(Transform):
    """Add independent normal noise of mean ``mean`` and standard deviation ``sigma`` to every pixel; ``clip`` keeps
    the result in [0, 1] (torchvision's default is True, for images in [0, 1]; here False, as the data may be
    standardised)."""

    arguments = Arguments(mean=Float(), sigma=Float(ge=0), clip=Bool())

    @checked
    def __init__(self, mean: float = 0.0, sigma: float = 0.1, clip: bool = False):
        self.mean, self.sigma, self.clip = float(mean), float(sigma), clip

    def forward(self, x, y, generator):
        noise = generator.standard_normal(x.shape, dtype=np.float64 if x.dtype == np.float64 else np.float32)
        noisy = x + (noise * self.sigma + self.mean).astype(x.dtype, copy=False)
        return (np.clip(noisy, 0, 1) if self.clip else noisy), y


class RandomErasing(Transform):
    """With probability ``p``, set a rectangle of each image to ``value``: its area is a fraction drawn from ``scale``
    of the image's, its aspect ratio (height / width) log-uniform in ``ratio``; as torchvision, up to 10 draws are
    tried for a rectangle that fits, and the image is left as it is if none does."""

    attempts = 10

    arguments = Arguments(p=_PROBABILITY, scale=ListOf(_PROBABILITY, length=2), ratio=ListOf(Float(gt=0), length=2),
                          value=Float(), rules=(_ordered("scale", "ratio"),))

    @checked
    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value: float = 0):
        self.p, self.value = float(p), float(value)
        self.scale, self.ratio = tuple(float(s) for s in scale), tuple(float(r) for r in ratio)

    def boxes(self, n: int, height: int, width: int, generator):
        """(top, left, box height, box width, erase?) per image: the first of the attempts that fits."""
        erase = generator.random(n) < self.p
        area = height * width * generator.uniform(*self.scale, (n, self.attempts))
        aspect = np.exp(generator.uniform(*np.log(self.ratio), (n, self.attempts)))
        h = np.rint(np.sqrt(area * aspect)).astype(np.int64)
        w = np.rint(np.sqrt(area / aspect)).astype(np.int64)
        fits = (h >= 1) & (h < height) & (w >= 1) & (w < width)  # torchvision's rule: strictly smaller
        first = np.argmax(fits, axis=1)
        h, w = h[np.arange(n), first], w[np.arange(n), first]
        erase &= fits.any(axis=1)
        top = np.floor(generator.random(n) * (height - h + 1)).astype(np.int64)
        left = np.floor(generator.random(n) * (width - w + 1)).astype(np.int64)
        return top, left, h, w, erase

    def forward(self, x, y, generator):
        n, _, height, width = x.shape
        top, left, h, w, erase = self.boxes(n, height, width, generator)
        rows, cols = np.arange(height)[None, :], np.arange(width)[None, :]
        in_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None]) & erase[:, None]
        in_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])
        box = in_rows[:, None, :, None] & in_cols[:, None, None, :]
        return np.where(box, x.dtype.type(self.value), x), y


def _probabilities(owner: str, y, num_classes: int | None, dtype) -> np.ndarray:
    """Labels as class probabilities (N, K): integer labels one-hot with ``num_classes``; probabilities as they are."""
    if y is None:
        raise ValueError(f"{owner} mixes labels too: the batches need labels (x, y)")
    y = np.asarray(y)
    if y.ndim == 2 and y.dtype.kind == "f":
        return y.astype(dtype, copy=False)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{owner}: labels must be integer classes (N,) or class probabilities (N, K), got "
                         f"{y.dtype} of shape {y.shape}")
    if num_classes is None:
        raise ValueError(f"{owner}: give num_classes to mix integer labels")
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{owner}: label {int(y.max() if y.max() >= num_classes else y.min())} is outside "
                         f"[0, {num_classes}) (num_classes={num_classes})")
    return np.eye(num_classes, dtype=dtype)[y]


class _Mix(Transform):
    changes_targets = True

    arguments = Arguments(alpha=Float(gt=0), num_classes=Optional(Int(ge=1)))

    @checked
    def __init__(self, alpha: float = 1.0, num_classes: int | None = None):
        self.alpha = float(alpha)
        self.num_classes = None if num_classes is None else int(num_classes)

    def forward(self, x, y, generator):
        y = _probabilities(type(self).__name__, y, self.num_classes, x.dtype)
        lam = float(generator.beta(self.alpha, self.alpha))
        x, lam = self.mix(x, np.roll(x, 1, axis=0), lam, generator)
        return x, (lam * y + (1 - lam) * np.roll(y, 1, axis=0)).astype(x.dtype)


class MixUp(_Mix):
    """Replace each image and its label by ``lam`` times itself plus ``1 - lam`` times the batch's previous one
    (torchvision's pairing), ``lam`` drawn from Beta(alpha, alpha) once per batch. Integer labels need
    ``num_classes`` (a config fills it in from the data)."""

    def mix(self, x, other, lam, generator):
        return (lam * x + (1 - lam) * other).astype(x.dtype), lam


class CutMix(_Mix):
    """Paste a rectangle of the batch's previous image into each image; ``lam`` from Beta(alpha, alpha) sets the
    rectangle's area to (1 - lam) of the image (clipped at the border) and the labels mix by the pasted area. One
    rectangle per batch, as torchvision's."""

    def box(self, height: int, width: int, lam: float, generator):
        """(top, bottom, left, right) of the rectangle, clipped to the image."""
        cy, cx = generator.integers(0, height), generator.integers(0, width)
        half_h, half_w = int(height * math.sqrt(1 - lam) / 2), int(width * math.sqrt(1 - lam) / 2)
        return max(cy - half_h, 0), min(cy + half_h, height), max(cx - half_w, 0), min(cx + half_w, width)

    def mix(self, x, other, lam, generator):
        top, bottom, left, right = self.box(x.shape[2], x.shape[3], lam, generator)
        x = x.copy()
        x[..., top:bottom, left:right] = other[..., top:bottom, left:right]
        return x, 1.0 - (bottom - top) * (right - left) / (x.shape[2] * x.shape[3])
