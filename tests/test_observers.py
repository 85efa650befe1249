"""Tests for helpers.observers: calibration observers on NumPy arrays (lesson 03)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import observers


def batches(seed: int = 0, n: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = [np.maximum(rng.standard_normal(1000), 0).astype(np.float32) for _ in range(n)]
    out[3][0] = 25.0  # one outlier in one batch
    return out


def test_min_max_matches_pytorch():
    ours, theirs = observers.MinMaxObserver(), torch.ao.quantization.MinMaxObserver()
    for b in batches():
        ours.update(b)
        theirs(torch.from_numpy(b))
    assert ours.range() == (float(theirs.min_val), float(theirs.max_val))
    scale, zp = theirs.calculate_qparams()
    assert ours.qparams(8) == (float(scale), int(zp))


def test_moving_average_matches_pytorch():
    ours = observers.MovingAverageMinMaxObserver(0.01)
    theirs = torch.ao.quantization.MovingAverageMinMaxObserver(averaging_constant=0.01)
    for b in batches():
        ours.update(b)
        theirs(torch.from_numpy(b))
    np.testing.assert_allclose(ours.range(), (float(theirs.min_val), float(theirs.max_val)), rtol=1e-6)


def test_percentile_and_mse_clip_the_outlier():
    data = batches(n=30)  # one outlier in 30,000 values: beyond the 99.99th percentile
    ranges = {}
    for name, cls in observers.OBSERVERS.items():
        obs = cls()
        for b in data:
            obs.update(b)
        ranges[name] = obs.range()
    assert ranges["min-max"][1] == 25.0
    assert ranges["percentile"][1] < 6 and ranges["mse"][1] < 25.0
    assert ranges["moving-average"][1] <= ranges["min-max"][1]


def test_histogram_rebins_without_losing_counts():
    obs = observers.HistogramObserver(bins=64)
    for b in batches():
        obs.update(b)
    assert obs.counts.sum() == 8000
    assert obs.range() == (0.0, 25.0)


def test_percentile_range_and_mse_optimal_range():
    x = np.concatenate([np.linspace(0, 1, 9999), [100.0]]).astype(np.float32)
    lo, hi = observers.percentile_range(x, 99.9)
    assert lo == pytest.approx(np.percentile(x, 0.1)) and hi < 1.0
    _, best = observers.mse_optimal_range(x, bits=8, grid=100)
    assert best < 100.0
    assert observers.quantization_mse(x, 0, best, 8) < observers.quantization_mse(x, 0, 100.0, 8)


def test_bad_input():
    with pytest.raises(RuntimeError, match="seen no data"):
        observers.MinMaxObserver().range()
    with pytest.raises(ValueError, match="empty batch"):
        observers.MinMaxObserver().update(np.array([]))
    with pytest.raises(ValueError, match="NaN or inf"):
        observers.PercentileObserver().update(np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="percentile must be"):
        observers.percentile_range(np.ones(3), 40)
    with pytest.raises(ValueError, match="averaging_constant"):
        observers.MovingAverageMinMaxObserver(0)
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 16"):
        observers.MSEObserver(bits=1)
    with pytest.raises(ValueError, match="greater than x_max"):
        observers.quantization_mse(np.ones(3), 2.0, 1.0)
    with pytest.raises(ValueError, match="grid"):
        observers.mse_optimal_range(np.ones(3), grid=0)
