"""helpers.plot: the shared figures render, label their axes, and find the Pareto front."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import plot  # noqa: E402


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 0.90), (2.0, 0.95), (3.0, 0.94), (0.5, 0.80)]
    assert plot.pareto_front(points) == [3, 0, 1]


def test_weight_histograms_accept_quantized_tensors():
    w = torch.randn(100)
    q = torch.quantize_per_tensor(w, 0.05, 0, torch.qint8)
    fig = plot.weight_histograms(w, q, title="fc")
    assert fig.axes[0].get_xlabel() == "weight value"
    assert "distinct values" in fig.axes[1].get_title()


def test_grouped_bars_and_pareto_label_units():
    records = [{"name": "fp32", "framework": "pytorch", "size_bytes": 4e6, "latency_ms": 2.0,
                "accuracy": 0.98},
               {"name": "int8", "framework": "pytorch", "size_bytes": 1e6, "latency_ms": 0.5,
                "accuracy": 0.97}]
    bars = plot.grouped_bars(records)
    assert [ax.get_ylabel() for ax in bars.axes] == ["size (MB)", "latency (ms, median)",
                                                    "test accuracy (%)"]
    scatter = plot.pareto(records)
    assert scatter.axes[0].get_xlabel() == "latency (ms, median)"


def test_plots_refuse_empty_input():
    with pytest.raises(ValueError, match="at least one record"):
        plot.grouped_bars([])
    with pytest.raises(ValueError, match="no record has both"):
        plot.pareto([{"name": "a"}])


def test_digit_grid_has_a_row_per_digit():
    images = np.zeros((20, 28, 28), np.float32)
    fig = plot.digit_grid(images, np.arange(20) % 10, per_class=2)
    assert len(fig.axes) == 20
