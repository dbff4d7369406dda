"""gpunet.data.transforms against independent references (NumPy slicing, np.rot90, the worked formulas), their
randomness (per image, from the generator only), and DataLoader(transform=...)'s per-batch streams."""
import numpy as np
import pytest

from gpunet.data import DataLoader, transforms as T


def images(n=12, c=2, h=9, w=7, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=(n, c, h, w)).astype(dtype)


def labels(n=12, k=5):
    return np.arange(n) % k


def gen(seed=1):
    return np.random.default_rng(seed)


def test_flip_mirrors_exactly_the_chosen_images_and_keeps_labels():
    x, y = images(), labels()
    out, out_y = T.RandomHorizontalFlip(0.5)(x, y, gen())
    flipped = [bool(np.array_equal(out[i], x[i, :, :, ::-1])) for i in range(len(x))]
    kept = [bool(np.array_equal(out[i], x[i])) for i in range(len(x))]
    assert all(f != k for f, k in zip(flipped, kept))  # every image is one or the other (none is symmetric)
    assert 0 < sum(flipped) < len(x)  # per image, not per batch
    assert flipped == list(gen().random(len(x)) < 0.5)  # the documented draw: one uniform per image
    assert out_y is y
    assert np.array_equal(T.RandomHorizontalFlip(1.0)(x, y, gen())[0], x[..., ::-1])
    assert np.array_equal(T.RandomHorizontalFlip(0.0)(x, y, gen())[0], x)


@pytest.mark.parametrize("size,padding,mode", [(9, 2, "constant"), ((6, 5), (1, 3), "edge"), ((9, 7), 3, "reflect"),
                                               ((4, 4), None, "constant")])
def test_crop_is_a_window_of_the_padded_image(size, padding, mode):
    x = images()
    crop = T.RandomCrop(size, padding=padding, fill=-7.0, padding_mode=mode)
    out, _ = crop(x, None, gen())
    (h, w), (ph, pw) = crop.size, crop.padding
    kwargs = {"constant_values": -7.0} if mode == "constant" else {}
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode=mode, **kwargs)
    offsets = set()
    for i in range(len(x)):  # the reference: find the window by brute force over all offsets
        matches = [(a, b) for a in range(padded.shape[2] - h + 1) for b in range(padded.shape[3] - w + 1)
                   if np.array_equal(out[i], padded[i, :, a:a + h, b:b + w])]
        assert matches, i
        offsets.add(matches[0])
    assert out.shape == (len(x), x.shape[1], h, w) and out.flags.c_contiguous
    if padded.shape[2:] != (h, w):
        assert len(offsets) > 1  # each image its own offset


def test_crop_offsets_cover_every_position_and_the_padding_value():
    x = np.ones((2000, 1, 3, 3), np.float32)
    out, _ = T.RandomCrop(3, padding=1, fill=0)(x, None, gen())
    zeros_top = (out[:, 0, 0, :] == 0).all(axis=1)  # offset 0 in rows: the top row is padding
    assert 0.25 < zeros_top.mean() < 0.42  # 3 offsets equally likely: 1/3


@pytest.mark.parametrize("k", [1, 2, 3, -1])
@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_rotation_by_multiples_of_90_degrees_is_rot90(k, interpolation):
    x = images(h=8, w=8)
    out, _ = T.RandomAffine((90 * k, 90 * k), interpolation=interpolation)(x, None, gen())
    np.testing.assert_allclose(out, np.rot90(x, k, axes=(2, 3)), atol=1e-5)


def test_shift_moves_whole_pixels_and_fills_what_comes_in():
    x = images()
    affine = T.RandomAffine(0, translate=(0.3, 0.4), fill=5.0)
    out, _ = affine(x, None, gen())
    shifts = set()
    for i in range(len(x)):  # the reference: the shift (dr, dc) that reproduces the image with the fill around it
        found = []
        for dr in range(-4, 5):
            for dc in range(-3, 4):
                ref = np.full_like(x[i], 5.0)
                src = x[i, :, max(-dr, 0):x.shape[2] - max(dr, 0), max(-dc, 0):x.shape[3] - max(dc, 0)]
                ref[:, max(dr, 0):max(dr, 0) + src.shape[1], max(dc, 0):max(dc, 0) + src.shape[2]] = src
                if np.array_equal(out[i], ref):
                    found.append((dr, dc))
        assert len(found) == 1, i
        dr, dc = found[0]
        assert abs(dr) <= 0.4 * 9 and abs(dc) <= 0.3 * 7
        shifts.add(found[0])
    assert len(shifts) > 3


def test_small_bilinear_rotation_matches_a_float64_reference():
    x = images(n=4, c=1, h=6, w=6, dtype=np.float64)
    out, _ = T.RandomAffine((20, 20), interpolation="bilinear", fill=0.0)(x, None, gen())
    t = np.deg2rad(20)
    ref = np.zeros_like(x)
    for r in range(6):  # inverse map of a counter-clockwise rotation about the centre (2.5, 2.5), sampled bilinearly
        for c in range(6):
            u, v = c - 2.5, r - 2.5
            sc, sr = np.cos(t) * u - np.sin(t) * v + 2.5, np.sin(t) * u + np.cos(t) * v + 2.5
            r0, c0 = int(np.floor(sr)), int(np.floor(sc))
            for rr, cc, wgt in ((r0, c0, (1 - (sr - r0)) * (1 - (sc - c0))), (r0, c0 + 1, (1 - (sr - r0)) * (sc - c0)),
                                (r0 + 1, c0, (sr - r0) * (1 - (sc - c0))), (r0 + 1, c0 + 1, (sr - r0) * (sc - c0))):
                if 0 <= rr < 6 and 0 <= cc < 6:
                    ref[:, :, r, c] += wgt * x[:, :, rr, cc]
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_scale_zooms_about_the_centre():
    x = np.zeros((1, 1, 9, 9), np.float32)
    x[0, 0, 3:6, 3:6] = 1  # a 3x3 square in the middle
    out, _ = T.RandomAffine(0, scale=(3, 3))(x, None, gen())
    assert np.array_equal(out[0, 0], np.ones((9, 9)))  # scaled 3x it fills the image
    out, _ = T.RandomAffine(0, scale=(1 / 3, 1 / 3))(np.ones((1, 1, 9, 9), np.float32), None, gen())
    assert out.sum() == 9 and out[0, 0, 3:6, 3:6].sum() == 9


def test_gaussian_noise_statistics_and_clip():
    x = np.full((50, 1, 20, 20), 0.5, np.float32)
    out, _ = T.GaussianNoise(mean=0.1, sigma=0.2)(x, None, gen())
    noise = (out - x).astype(np.float64)
    assert out.dtype == np.float32
    assert abs(noise.mean() - 0.1) < 0.005 and abs(noise.std() - 0.2) < 0.005
    assert abs(np.corrcoef(noise[:25].ravel(), noise[25:].ravel())[0, 1]) < 0.02  # independent per image
    clipped, _ = T.GaussianNoise(sigma=1.0, clip=True)(x, None, gen())
    assert clipped.min() == 0 and clipped.max() == 1


def test_erasing_sets_one_rectangle_within_the_area_and_ratio_bounds():
    x = images(n=400, c=3, h=20, w=16) + 100  # no pixel is 0 before erasing
    erasing = T.RandomErasing(p=0.6, scale=(0.05, 0.3), ratio=(0.5, 2.0), value=0)
    out, _ = erasing(x, None, gen())
    erased = out == 0
    assert (erased.all(axis=1) == erased.any(axis=1)).all()  # all channels alike
    hit = erased[:, 0].any(axis=(1, 2))
    assert 0.5 < hit.mean() < 0.7
    for mask in erased[hit, 0]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        h, w = len(rows), len(cols)
        assert mask.sum() == h * w and rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w  # a rectangle
        # rounding h and w to whole pixels moves the area and ratio by at most half a pixel on each side
        area = 20 * 16
        assert (np.sqrt(0.05 * area) - 1) ** 2 <= h * w <= (np.sqrt(0.3 * area) + 1) ** 2
        assert (h - 0.5) / (w + 0.5) <= 2.0 and (h + 0.5) / (w - 0.5) >= 0.5
    assert np.array_equal(out[~erased], x[~erased])


def test_erasing_that_cannot_fit_leaves_the_image():
    x = images(n=5, h=4, w=4)
    out, _ = T.RandomErasing(p=1.0, scale=(0.99, 1.0), ratio=(1, 1))(x, None, gen())  # needs 4x4: not < 4
    assert np.array_equal(out, x)


def test_mixup_is_a_convex_combination_with_the_previous_image():
    x, y = images(), labels()
    out, soft = T.MixUp(alpha=0.4, num_classes=5)(x, y, gen())
    lam = gen().beta(0.4, 0.4)  # the first draw of the stream
    prev = np.roll(np.arange(len(x)), 1)
    np.testing.assert_allclose(out, lam * x + (1 - lam) * x[prev], rtol=1e-5, atol=1e-6)
    onehot = np.eye(5)[y]
    np.testing.assert_allclose(soft, lam * onehot + (1 - lam) * onehot[prev], rtol=1e-6)
    assert soft.dtype == np.float32 and np.allclose(soft.sum(axis=1), 1)


def test_cutmix_pastes_one_rectangle_and_mixes_labels_by_its_area():
    x, y = images(h=16, w=16), labels()
    out, soft = T.CutMix(alpha=1.0, num_classes=5)(x, y, gen(3))
    prev = np.roll(np.arange(len(x)), 1)
    pasted = (out != x).any(axis=(0, 1))  # where any image changed: the rectangle
    rows, cols = np.flatnonzero(pasted.any(axis=1)), np.flatnonzero(pasted.any(axis=0))
    box = np.zeros_like(pasted)
    box[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] = True
    assert np.array_equal(pasted, box) and box.sum() > 0
    assert np.array_equal(out[..., box], x[prev][..., box]) and np.array_equal(out[..., ~box], x[..., ~box])
    lam = 1 - box.sum() / 256
    onehot = np.eye(5)[y]
    np.testing.assert_allclose(soft, lam * onehot + (1 - lam) * onehot[prev], rtol=1e-6)


def test_mixing_takes_probabilities_too_so_cutmix_and_mixup_chain():
    x, y = images(), labels()
    out, soft = T.Compose([T.CutMix(1.0, num_classes=5), T.MixUp(1.0)])(x, y, gen())
    assert soft.shape == (12, 5) and np.allclose(soft.sum(axis=1), 1)


@pytest.mark.parametrize("transform", [
    T.RandomHorizontalFlip(), T.RandomCrop(7, padding=3), T.RandomAffine(15, (0.1, 0.2), (0.8, 1.2), "bilinear"),
    T.GaussianNoise(), T.RandomErasing(), T.MixUp(num_classes=5), T.CutMix(num_classes=5)], ids=repr)
def test_the_generator_alone_decides(transform):
    x, y = images(), labels()
    a = transform(x.copy(), y, gen(7))
    b = transform(x.copy(), y, gen(7))
    c = transform(x.copy(), y, gen(8))
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert np.array_equal(x, images())  # the input batch is not changed in place


def test_errors_name_the_transform_and_what_is_wrong():
    with pytest.raises(ValueError, match=r"RandomHorizontalFlip needs image samples of shape \(channels, height, "
                                         r"width\), got samples of shape \(64,\)"):
        T.RandomHorizontalFlip()(np.zeros((4, 64), np.float32), None, gen())
    with pytest.raises(ValueError, match="RandomCrop: size .* larger than the padded image"):
        T.RandomCrop(12, padding=1)(images(), None, gen())
    with pytest.raises(ValueError, match="RandomAffine: degrees must be .* low <= high"):
        T.RandomAffine((10, -10))
    with pytest.raises(ValueError, match=r"RandomErasing: p must be a number in \[0, 1\], got 1.5"):
        T.RandomErasing(p=1.5)
    with pytest.raises(ValueError, match="MixUp: give num_classes to mix integer labels"):
        T.MixUp()(images(), labels(), gen())
    with pytest.raises(ValueError, match=r"CutMix: label 5 is outside \[0, 5\)"):
        T.CutMix(num_classes=5)(images(), labels(k=6), gen())
    with pytest.raises(ValueError, match="MixUp mixes labels too"):
        T.MixUp(num_classes=5)(images(), None, gen())
    with pytest.raises(TypeError, match="generator must be a numpy.random.Generator"):
        T.GaussianNoise()(images(), None, 0)
    with pytest.raises(TypeError, match="transform must be a callable"):
        DataLoader((images(), labels(), labels()), 4, transform=T.GaussianNoise())


def test_loader_augments_each_batch_from_seed_epoch_and_batch_only():
    x, y = images(n=20), labels(n=20)
    flip = T.RandomHorizontalFlip()
    loader = DataLoader((x, y), 8, shuffle=True, seed=3, transform=flip)
    epoch0, epoch1 = list(loader), list(loader)
    for epoch, batches in ((0, epoch0), (1, epoch1)):
        order = loader.order(epoch)
        for b, (bx, by) in enumerate(batches):
            index = order[b * 8:(b + 1) * 8]
            ref = flip(x[index], y[index], np.random.default_rng([3, epoch, b, 0x7A5F]))[0]
            assert np.array_equal(bx, ref) and np.array_equal(by, y[index])
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(epoch0, epoch1))
    # a loader moved to the middle of epoch 1 (as a resumed run's) yields the same augmented batches
    resumed = DataLoader((x, y), 8, shuffle=True, seed=3, transform=flip)
    resumed.set_epoch(1, 1)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(list(resumed), epoch1[1:]))
    # images alone (no labels) work for transforms that keep the labels
    alone = next(iter(DataLoader(x, 8, transform=T.RandomHorizontalFlip(1.0))))
    assert np.array_equal(alone, x[:8, ..., ::-1])


@pytest.mark.parametrize("angle,scale", [(30.0, 1.0), (-12.5, 1.25), (90.0, 0.8)])
def test_bilinear_rotation_and_scale_match_torch_grid_sample(angle, scale):
    torch = pytest.importorskip("torch")
    x = images(n=3, c=2, h=9, w=7, dtype=np.float64)
    out, _ = T.RandomAffine((angle, angle), scale=(scale, scale), interpolation="bilinear")(x, None, gen())
    # affine_grid with align_corners=True puts -1 and 1 on the corner pixels' centres, so the centre is ((W-1)/2,
    # (H-1)/2) as here; theta maps output to input coordinates in those normalised units.
    t, (h, w) = np.deg2rad(angle), x.shape[2:]
    theta = np.array([[np.cos(t), -np.sin(t) * (h - 1) / (w - 1), 0], [np.sin(t) * (w - 1) / (h - 1), np.cos(t), 0]])
    theta = torch.tensor(np.broadcast_to(theta / scale, (3, 2, 3)).copy())
    grid = torch.nn.functional.affine_grid(theta, (3, 2, h, w), align_corners=True)
    ref = torch.nn.functional.grid_sample(torch.tensor(x), grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=True).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
