"""Time series: sliding windows, splits in time order, sunspots (on a tiny file of statsmodels' format) and the
plane waves of seed 000's eq. 22."""
import math

import numpy as np
import pytest

from gpunet.data import DatasetError, load_dataset, plane_waves, sliding_windows
from gpunet.data.timeseries import PLANEWAVE_DT


def test_sliding_windows_worked_example():
    x, y = sliding_windows(np.arange(7.0), window=3)
    np.testing.assert_array_equal(x[..., 0], [[0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 5]])
    np.testing.assert_array_equal(y[:, 0], [3, 4, 5, 6])
    x, y = sliding_windows(np.arange(14.0).reshape(7, 2), window=2, horizon=2, step=2)
    assert x.shape == (2, 2, 2) and y.shape == (2, 2)
    np.testing.assert_array_equal(y, [[6, 7], [10, 11]])  # two steps after windows [0, 1] and [2, 3]
    with pytest.raises(ValueError, match="no window of 7"):
        sliding_windows(np.arange(7.0), window=7)


def write_sunspots(path, years):
    path.write_text('"YEAR","SUNACTIVITY"\n' + "".join(f"{y},{(y - 1700) * 2}\n" for y in years))
    return path


def test_sunspots_split_in_time_order(tmp_path):
    path = write_sunspots(tmp_path / "sunspots.csv", range(1700, 1730))
    ds = load_dataset("sunspots", path=str(path), window=4, scale=2.0, validation_split=0.25, test_split=0.2)
    # 26 windows; test the last ceil(0.2 * 26) = 6, validation the last ceil(0.25 * 20) = 5 before them
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (15, 5, 6)
    assert ds.train.x.dtype == ds.train.y.dtype == np.float32 and ds.info.input_shape == (4, 1)
    np.testing.assert_array_equal(ds.train.x[0, :, 0], [0, 1, 2, 3])  # (year - 1700) * 2 / scale
    np.testing.assert_array_equal(ds.train.y[:, 0], np.arange(4, 19))
    np.testing.assert_array_equal(ds.validation.y[:, 0], np.arange(19, 24))
    np.testing.assert_array_equal(ds.test.y[:, 0], np.arange(24, 30))
    assert ds.info.num_classes == 0
    bad = tmp_path / "bad.csv"
    bad.write_text("year,spots\n1700,5\n")
    with pytest.raises(DatasetError, match="columns YEAR and SUNACTIVITY"):
        load_dataset("sunspots", path=str(bad))
    with pytest.raises(DatasetError, match="no window of 40"):
        load_dataset("sunspots", path=str(path), window=40)


def test_plane_waves_follow_eq_22():
    waves = plane_waves(8, 20, 32, np.random.default_rng(1))
    assert waves.shape == (8, 20, 32) and waves.dtype == np.float32
    assert waves.min() >= 0 and waves.max() <= 1
    # At every grid point a damped travelling wave is a damped oscillation in time, so frame t+1 is a fixed linear
    # combination of frames t and t-1: u(t+1) = 2 r cos(omega dt) u(t) - r^2 u(t-1), u = c - 1/2, r = exp(-beta dt).
    u = waves.astype(np.float64) - 0.5
    for seq in u:
        a, *_ = np.linalg.lstsq(np.stack([seq[1:-1].ravel(), seq[:-2].ravel()], axis=1), seq[2:].ravel(), rcond=None)
        r = math.sqrt(-a[1])
        period = 2 * math.pi * PLANEWAVE_DT / math.acos(a[0] / (2 * r))
        decay_time = 2 * math.pi * PLANEWAVE_DT / -math.log(r)  # 2 pi / beta
        assert 0.03 - 1e-4 <= period <= 0.06 + 1e-4 and 1.5 - 0.01 <= decay_time <= 6 + 0.01


def test_planewave_dataset_pairs_each_frame_with_the_next():
    ds = load_dataset("planewave", sequences=20, frames=6, points=8, seed=3, validation_split=0, test_split=0)
    waves = plane_waves(20, 6, 8, np.random.default_rng(3))
    np.testing.assert_array_equal(ds.train.x, waves[:, :-1])
    np.testing.assert_array_equal(ds.train.y, waves[:, 1:])
    assert ds.info.input_shape == (5, 8) and ds.train.y.dtype == np.float32
    with pytest.raises(DatasetError, match="frames must be an integer >= 2"):
        load_dataset("planewave", frames=1)


def test_plane_wave_images_follow_eq_22_in_two_dimensions():
    """Along the wave vector the 2-D wave is the 1-D one: each frame is constant on lines k . r = const, so the
    spatial pattern has one direction; its wavelength is in [0.3, 0.6] and the time behaviour is the seed's."""
    waves = plane_waves(4, 12, 16, np.random.default_rng(2), dims=2)
    assert waves.shape == (4, 12, 16, 16) and waves.dtype == np.float32
    assert waves.min() >= 0 and waves.max() <= 1
    grid = np.arange(16) / 16
    for seq in waves.astype(np.float64) - 0.5:
        # frame 0 is 1/2 sin(kx x + ky y + theta0) = a sin(k . r) + b cos(k . r): search k on a grid, fitting a, b
        # by least squares (2x2 normal equations) for every candidate at once
        frame = seq[0].ravel()
        kx, ky = (k.ravel() for k in np.meshgrid(np.linspace(-24, 24, 97), np.linspace(-24, 24, 97)))
        keep = np.hypot(kx, ky) > 6
        kx, ky = kx[keep], ky[keep]
        phase = kx[:, None] * np.tile(grid, 16) + ky[:, None] * np.repeat(grid, 16)  # rows y, columns x
        sin, cos = np.sin(phase), np.cos(phase)
        gram = np.stack([np.stack([(sin * sin).sum(1), (sin * cos).sum(1)], -1),
                         np.stack([(sin * cos).sum(1), (cos * cos).sum(1)], -1)], -2)
        moments = np.stack([sin @ frame, cos @ frame], -1)
        explained = np.einsum("ki,ki->k", moments, np.linalg.solve(gram, moments[..., None])[..., 0])
        best = int(np.argmax(explained))
        assert explained[best] > 0.95 * np.sum(frame ** 2)  # one wave vector explains the frame
        kx, ky = kx[best], ky[best]
        wavelength = 2 * math.pi / math.hypot(kx, ky)
        assert 0.3 - 0.02 <= wavelength <= 0.6 + 0.03
    assert not np.allclose(waves[:, 0, 0, :], waves[:, 0, 1, :])  # the waves vary along y too


def test_planewave_context_pairs_the_frames_before_the_last_with_it():
    ds = load_dataset("planewave", sequences=10, frames=8, points=4, dims=2, context=5, seed=1, validation_split=0,
                      test_split=0)
    waves = plane_waves(10, 8, 4, np.random.default_rng(1), dims=2)
    np.testing.assert_array_equal(ds.train.x, waves[:, 2:7, None])
    np.testing.assert_array_equal(ds.train.y, waves[:, 7, None])
    assert ds.info.input_shape == (5, 1, 4, 4)
    with pytest.raises(DatasetError, match="context .8. must be below frames .8."):
        load_dataset("planewave", frames=8, context=8)
    with pytest.raises(DatasetError, match="dims must be 1"):
        load_dataset("planewave", dims=3)


def test_forecasting_datasets_report_the_persistence_baseline(tmp_path):
    """Worked values: sunspot numbers 2 (year - 1700) forecast by the last year of each window are off by 2 per
    year ahead; the plane waves' persistence is the last context frame."""
    path = write_sunspots(tmp_path / "sunspots.csv", range(1700, 1730))
    ds = load_dataset("sunspots", path=str(path), window=4, horizon=3, scale=2.0, normalize="standard",
                      validation_split=0.25, test_split=0.2)
    # scale 2: values year - 1700, so the number 3 years on differs by 3 (normalising x changes nothing here)
    assert ds.baselines == {"val_persistence_mse": 9.0, "val_persistence_rmse": 3.0, "test_persistence_mse": 9.0,
                            "test_persistence_rmse": 3.0}
    ds = load_dataset("planewave", sequences=40, frames=12, points=6, dims=2, context=4, seed=0, test_split=0.25)
    want = np.mean((ds.test.x[:, -1].astype(np.float64) - ds.test.y) ** 2)
    assert ds.baselines["test_persistence_mse"] == pytest.approx(want) and want > 1e-3
    ds = load_dataset("planewave", sequences=40, frames=6, points=5, seed=0)
    want = np.mean((ds.test.x.astype(np.float64) - ds.test.y) ** 2)  # each frame predicts the next
    assert ds.baselines["test_persistence_rmse"] == pytest.approx(np.sqrt(want))
    assert load_dataset("digits").baselines == {}
