"""scripts/plane_waves_rnn.py: after short training the LSTM predicts the next wave frame far better than persistence.

Measured on the CPU, 512 sequences of 20 frames on 32 points, hidden 64, 20 epochs: for seeds 0..3 the test MSE is
0.0056..0.0059 against the persistence baseline's 0.053..0.056, 9.1 to 9.4 times lower; the test asks for 4 times.
"""
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import plane_waves_rnn  # noqa: E402


def test_waves_follow_eq_22():
    waves = plane_waves_rnn.plane_waves(8, 20, 32, np.random.default_rng(1))
    assert waves.shape == (8, 20, 32) and waves.dtype == np.float32
    assert waves.min() >= 0 and waves.max() <= 1
    # At every grid point a damped travelling wave is a damped oscillation in time, so frame t+1 is a fixed linear
    # combination of frames t and t-1: u(t+1) = 2 r cos(omega dt) u(t) - r^2 u(t-1), u = c - 1/2, r = exp(-beta dt).
    u = waves.astype(np.float64) - 0.5
    for seq in u:
        a, *_ = np.linalg.lstsq(np.stack([seq[1:-1].ravel(), seq[:-2].ravel()], axis=1), seq[2:].ravel(), rcond=None)
        r = math.sqrt(-a[1])
        period = 2 * math.pi * plane_waves_rnn.DT / math.acos(a[0] / (2 * r))
        decay_time = 2 * math.pi * plane_waves_rnn.DT / -math.log(r)  # 2 pi / beta
        assert 0.03 - 1e-4 <= period <= 0.06 + 1e-4 and 1.5 - 0.01 <= decay_time <= 6 + 0.01


def test_lstm_beats_persistence():
    results = plane_waves_rnn.main(["--sequences", "512", "--frames", "20", "--hidden", "64", "--epochs", "20",
                                    "--seed", "0"])
    test_half = plane_waves_rnn.plane_waves(512, 20, 32, np.random.default_rng(0))[256:]
    assert math.isclose(results["persistence_mse"], np.mean((test_half[:, 1:] - test_half[:, :-1]) ** 2),
                        rel_tol=1e-5)
    assert results["train_loss"][-1] < results["train_loss"][0] / 3
    assert results["test_mse"] < results["persistence_mse"] / 4
