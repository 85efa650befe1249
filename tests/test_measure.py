"""helpers.measure: sizes, latency statistics with explicit threads, accuracy."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from helpers import data, measure


def test_torch_size_counts_serialized_bytes():
    small, big = nn.Linear(10, 10), nn.Linear(100, 100)
    assert measure.torch_size_bytes(big) > 100 * 100 * 4 > measure.torch_size_bytes(small)


def test_tflite_size_from_bytes_and_path(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"x" * 123)
    assert measure.tflite_size_bytes(b"x" * 123) == 123 == measure.tflite_size_bytes(path)
    with pytest.raises(FileNotFoundError, match="no .tflite file"):
        measure.tflite_size_bytes(tmp_path / "missing.tflite")


def test_latency_reports_median_spread_and_threads():
    timing = measure.latency(lambda: time.sleep(0.002), threads=1, warmup=1, repeats=7)
    assert timing.repeats == 7 and timing.threads == 1
    assert 1.5 < timing.median_ms < 50
    assert timing.spread_ms >= 0 and timing.p10_ms <= timing.median_ms <= timing.p90_ms
    assert "median" in str(timing)


def test_latency_sets_and_restores_torch_threads():
    before = torch.get_num_threads()
    seen = []
    measure.latency(lambda: seen.append(torch.get_num_threads()), threads=1, warmup=0, repeats=3)
    assert set(seen) == {1} and torch.get_num_threads() == before


def test_latency_max_seconds_caps_the_loop():
    timing = measure.latency(lambda: time.sleep(0.01), warmup=0, repeats=1000, max_seconds=0.05)
    assert 5 <= timing.repeats < 1000


def test_latency_rejects_bad_arguments():
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure.latency(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        measure.latency(lambda: None, threads=0)


def test_speedup_is_a_ratio_of_medians():
    assert measure.speedup(10.0, 2.5) == 4.0
    with pytest.raises(ValueError, match="positive"):
        measure.speedup(1.0, 0.0)


def test_torch_accuracy_of_a_perfect_and_a_constant_model():
    split = data.Split(np.zeros((20, 28, 28), np.float32), np.arange(20) % 10)

    class Oracle(nn.Module):
        def forward(self, x):
            return nn.functional.one_hot(torch.arange(len(x)) % 10, 10).float()

    class AlwaysZero(nn.Module):
        def forward(self, x):
            return nn.functional.one_hot(torch.zeros(len(x), dtype=torch.long), 10).float()

    assert measure.torch_accuracy(Oracle(), split, batch_size=20) == 1.0
    assert measure.torch_accuracy(AlwaysZero(), split) == pytest.approx(0.1)


def test_points_below_compares_the_way_it_reads():
    assert (0.977 - 0.967) * 100 > 1  # the floating-point trap
    assert measure.points_below(0.977, 0.967) == 1.0
    assert measure.points_below(0.97, 0.98) == -1.0


def test_torch_predictions_are_one_class_per_image_across_batches():
    split = data.Split(np.zeros((25, 28, 28), np.float32), np.arange(25) % 10)

    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.seen = 0

        def forward(self, x):
            out = nn.functional.one_hot((torch.arange(len(x)) + self.seen) % 10, 10).float()
            self.seen += len(x)
            return out

    predictions = measure.torch_predictions(Counter(), split, batch_size=7)
    assert predictions.shape == (25,) and np.array_equal(predictions, np.arange(25) % 10)


def test_packed_weight_bytes_shrinks_only_weight_tensors_and_rounds_each_up():
    model = nn.Sequential(nn.Linear(3, 1), nn.Linear(1, 3), nn.BatchNorm1d(3))
    # weights 3 + 3 values; biases 1 + 3 and BN weight, bias, mean, var (4 x 3) in fp32; int64 counter
    floats, counter = (1 + 3 + 4 * 3) * 4, 8
    assert measure.packed_weight_bytes(model, 32) == 6 * 4 + floats + counter
    assert measure.packed_weight_bytes(model, 4) == 2 + 2 + floats + counter
    with pytest.raises(ValueError, match="bits must be"):
        measure.packed_weight_bytes(model, 0)


def test_peak_memory_sees_a_large_allocation_even_after_it_is_freed():
    import subprocess
    import sys

    code = ("import numpy as np; from helpers import measure; before = measure.peak_memory_gb(); "
            "block = np.ones(200_000_000, dtype=np.uint8); del block; "
            "print(before, measure.peak_memory_gb())")
    before, after = map(float, subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                              text=True).stdout.split())
    assert after - before >= 0.19  # the 200 MB block, though it is gone
    assert before < 1.0  # a fresh process, not the parent's size


def test_speed_verdict_reads_the_spreads():
    def timing(median, iqr):
        return measure.Timing(median, iqr, median - iqr, median + iqr, 30, 1)

    faster = measure.speed_verdict(timing(2.0, 0.2), timing(1.0, 0.2), "a", "b")
    slower = measure.speed_verdict(timing(1.0, 0.2), timing(2.0, 0.2), "a", "b")
    assert "faster, and the IQRs do not overlap" in faster
    assert "slower, and the IQRs do not overlap" in slower
    noisy = measure.speed_verdict(timing(1.0, 0.5), timing(0.8, 0.5), "plain", "fused")
    assert "not distinguishable" in noisy and noisy.startswith("fused at 1.25x plain's speed")
