"""helpers.plot.advanced_ptq (lesson 14): every figure renders with labelled axes."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from helpers import adaround, mixed_precision  # noqa: E402
from helpers.plot import advanced_ptq as plot14  # noqa: E402


def test_channel_ranges_and_sqnr() -> None:
    fig = plot14.channel_ranges({"stem.0": torch.tensor([0.1, 2.0, 0.5])},
                                {"stem.0": torch.tensor([0.4, 0.9, 0.5])})
    assert "20.0x" in fig.axes[0].get_legend().get_texts()[0].get_text()
    assert fig.axes[0].get_ylabel().startswith("max |weight|")
    fig = plot14.layer_sqnr({"W4": {"stem.0": 20.0, "features.3.0": 8.0, "fc": 5.0}})
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["stem", "f3", "fc"]
    assert "dB" in fig.axes[0].get_ylabel()


def _result(flipped: float) -> adaround.AdaRoundResult:
    return adaround.AdaRoundResult(torch.zeros(4), torch.ones(1), flipped, torch.zeros(4), 0.5, 1.0)


def test_adaround_and_sensitivity() -> None:
    run = adaround.ModelAdaRound({}, {"stem.0": _result(0.1), "fc": _result(0.2)}, 1.0)
    fig = plot14.adaround_layers({"W3A8": run})
    assert "%" in fig.axes[0].get_ylabel() and fig.axes[1].get_yscale() == "log"
    fig = plot14.sensitivity({"stem.0": {4: 0.01, 2: 0.5}, "fc": {4: 1e-4, 2: 0.1}})
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["4-bit", "2-bit"]


def test_mixed_precision_and_summary() -> None:
    result = mixed_precision.SearchResult([{"a": 8}, {"a": 4}, {"a": 2}], [1000, 600, 400],
                                          [0.99, 0.985, 0.9], 0.99, 0.5, chosen=1, path_length=2,
                                          val_delta_low=[-0.1, -0.45, -9.5])
    assert result.uniform() == {2: (400, 0.9)}
    fig = plot14.mixed_precision_search(result)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "uniform 2-bit" in legend and any("interval" in text for text in legend)
    assert fig.axes[0].get_xlabel().endswith("(kB)")
    rows = [{"label": "min-max", "group": "W4A8", "delta_points": -2.5, "delta_ci95": (-2.9, -2.1),
             "seconds": 0.2},
            {"label": "CLE", "group": "W4A8", "delta_points": -0.3, "delta_ci95": (-0.5, -0.1),
             "seconds": 3.0}]
    fig = plot14.technique_summary(rows)
    assert "points" in fig.axes[0].get_xlabel()
    assert "CLE  (3.0 s)" in [t.get_text() for t in fig.axes[0].get_yticklabels()]
    with pytest.raises(ValueError, match="at least one row"):
        plot14.technique_summary([])
