"""helpers.course.report: readable tables with intervals and verdicts, the reference run beside
this machine's, every lesson listed, key and capstone figures embedded."""

from __future__ import annotations

from helpers import results
from helpers.course import notebooks, report


def test_format_value_units():
    assert report.format_value("accuracy", 0.9734) == "97.34%"
    assert report.format_value("size_bytes", 46_800_000) == "46.80 MB"
    assert report.format_value("size_bytes", 2_500) == "2.50 kB"
    assert report.format_value("latency_ms", 1.5, {"latency_spread_ms": 0.25}) == "1.500 ms ± 0.250"
    assert report.format_value("speedup_vs_compiled", 2.612) == "2.61×"
    assert report.format_value("bits", list(range(20))) == "20 values"


def test_a_change_is_shown_with_its_interval_and_the_verdict_the_interval_gives():
    worse = {"delta_points": -0.37, "delta_ci95": [-0.53, -0.21]}
    same = {"delta_points": -0.06, "delta_ci95": [-0.18, 0.06]}
    better = {"delta_points": 0.2, "delta_ci95": [0.05, 0.4]}
    assert report.format_value("delta_points", -0.37, worse) == "−0.37 [−0.53, −0.21] worse"
    assert report.format_value("delta_points", -0.06, same).endswith("not distinguishable")
    assert report.format_value("delta_points", 0.2, better).endswith("better")


def test_table_shows_headline_columns_reference_and_details():
    records = [{"name": "ds_cnn-int8", "framework": "pytorch", "model": "ds_cnn", "accuracy": 0.979,
                "delta_points": -0.06, "delta_ci95": [-0.18, 0.06], "agreement": 0.9922,
                "size_bytes": 120_000, "latency_ms": 1.2, "latency_spread_ms": 0.1, "threads": 1,
                "batch": 1, "speedup_vs_compiled": 2.6, "selected_on": "val"}]
    reference = [{"name": "ds_cnn-int8", "accuracy": 0.98, "delta_points": -0.05, "latency_ms": 1.1}]
    header, (row,) = report.record_table(records, reference)
    cells = dict(zip(header, row, strict=True))
    assert cells["what"] == "pytorch · ds_cnn"
    assert cells["agreement"] == "99.22%"
    assert cells["threads, batch"] == "1 thread, batch 1"
    assert cells["speed-up"] == "2.60× vs compiled"
    assert cells["reference run"] == "98.00%, −0.05, 1.100 ms"
    assert cells["details"] == "selected on = val"
    assert "perplexity [95 % CI]" not in header


def test_report_lists_unrun_lessons_and_the_machine(tmp_path):
    results.Recorder("00_start_here", quick=True, folder=tmp_path / "r").record(
        "m", accuracy=0.5, size_bytes=10)
    out = report.write_report(tmp_path / "r", tmp_path / "out", reference_folder=tmp_path / "none")
    text = out["markdown"].read_text()
    assert "| m |" in text and "50.00%" in text and "## This machine" in text
    assert "Run in quick mode" in text
    for name in notebooks.notebook_names()[1:]:
        assert f"## {name[:-6]}" in text and "Not run yet" in text
    assert "<table>" in out["html"].read_text()


def test_reference_run_and_key_figures_are_in_the_report(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    here = results.Recorder("03_granularity_and_calibration", quick=True, folder=tmp_path / "r")
    here.record("w8-per-channel", accuracy=0.97)
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    here.figure("ranges", fig)
    plt.close(fig)
    results.Recorder("03_granularity_and_calibration", quick=False, folder=tmp_path / "ref").record(
        "w8-per-channel", accuracy=0.98)
    out = report.write_report(tmp_path / "r", tmp_path / "out", reference_folder=tmp_path / "ref")
    text = out["markdown"].read_text()
    assert "Reference run: full mode" in text and "98.00%" in text
    assert "![ranges.png](03_granularity_and_calibration-ranges.png)" in text
    assert (tmp_path / "out" / "03_granularity_and_calibration-ranges.png").exists()
    assert text.count("data:image") == 0 and "data:image/png;base64" in out["html"].read_text()


def test_capstone_plots_are_written(tmp_path):
    recorder = results.Recorder("13_capstone_comparison", quick=True, folder=tmp_path / "r")
    recorder.record("fp32", framework="pytorch", accuracy=0.98, size_bytes=4e5, latency_ms=1.0)
    recorder.record("int8", framework="tflite", accuracy=0.97, size_bytes=1e5, latency_ms=0.3)
    out = report.write_report(tmp_path / "r", tmp_path / "out", reference_folder=tmp_path / "none")
    assert (tmp_path / "out" / "13_capstone_comparison-capstone_accuracy_vs_latency.png").exists()
    assert "data:image/png;base64" in out["html"].read_text()
