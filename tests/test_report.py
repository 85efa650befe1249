"""helpers.course.report: tables from results, every lesson listed, capstone figures embedded."""

from __future__ import annotations

from helpers import results
from helpers.course import notebooks, report


def test_format_value_units():
    assert report.format_value("accuracy", 0.9734) == "97.34%"
    assert report.format_value("size_bytes", 46_800_000) == "46.80 MB"
    assert report.format_value("size_bytes", 2_500) == "2.50 kB"
    assert report.format_value("latency_ms", 1.5, {"latency_spread_ms": 0.25}) == "1.500 ms ± 0.250"


def test_report_lists_unrun_lessons(tmp_path):
    results.Recorder("00_start_here", quick=True, folder=tmp_path / "r").record(
        "m", accuracy=0.5, size_bytes=10)
    out = report.write_report(tmp_path / "r", tmp_path / "out")
    text = out["markdown"].read_text()
    assert "| m |" in text and "50.00%" in text
    for name in notebooks.notebook_names()[1:]:
        assert f"## {name[:-6]}" in text and "Not run yet" in text
    assert "<table>" in out["html"].read_text()


def test_capstone_plots_are_written(tmp_path):
    recorder = results.Recorder("13_capstone_comparison", quick=True, folder=tmp_path / "r")
    recorder.record("fp32", framework="pytorch", accuracy=0.98, size_bytes=4e5, latency_ms=1.0)
    recorder.record("int8", framework="tflite", accuracy=0.97, size_bytes=1e5, latency_ms=0.3)
    out = report.write_report(tmp_path / "r", tmp_path / "out")
    assert (tmp_path / "out" / "capstone_accuracy_vs_latency.png").exists()
    assert "data:image/png;base64" in out["html"].read_text()
