"""helpers.results: records per notebook, replaced on re-run, JSON-safe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import measure, results


def test_record_writes_and_replaces_by_name(tmp_path):
    recorder = results.Recorder("05_pytorch_dynamic", quick=True, folder=tmp_path)
    recorder.record("mlp-fp32", framework="pytorch", size_bytes=np.int64(100), accuracy=np.float32(0.5))
    recorder.record("mlp-fp32", framework="pytorch", size_bytes=90)
    payload = json.loads((tmp_path / "05_pytorch_dynamic.json").read_text())
    assert payload["notebook"] == "05_pytorch_dynamic" and payload["quick"] is True
    assert payload["records"] == [{"name": "mlp-fp32", "framework": "pytorch", "size_bytes": 90}]


def test_rerun_starts_the_file_afresh_and_leaves_others(tmp_path):
    results.Recorder("01_a", quick=False, folder=tmp_path).record("x", value=1)
    results.Recorder("02_b", quick=False, folder=tmp_path).record("y", value=2)
    results.Recorder("01_a", quick=True, folder=tmp_path)
    found = results.load_all(tmp_path)
    assert found["01_a"]["records"] == [] and found["02_b"]["records"][0]["value"] == 2


def test_timing_expands_into_latency_fields(tmp_path):
    recorder = results.Recorder("00_x", quick=True, folder=tmp_path)
    timing = measure.Timing(2.0, 0.1, 1.9, 2.2, 10, 1)
    assert recorder.record("m", timing=timing, batch=1) is None  # a record cell prints nothing
    entry = recorder.records[-1]
    assert entry["latency_ms"] == 2.0 and entry["latency_spread_ms"] == 0.1 and entry["threads"] == 1


def test_bad_records_are_refused(tmp_path):
    recorder = results.Recorder("00_x", quick=True, folder=tmp_path)
    with pytest.raises(ValueError, match="non-finite"):
        recorder.record("m", accuracy=float("nan"))
    with pytest.raises(ValueError, match="needs a name"):
        recorder.record("", accuracy=1.0)
    with pytest.raises(ValueError, match="bare name"):
        results.Recorder("lessons/00_x.ipynb", quick=True, folder=tmp_path)


def test_find_gives_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="run that notebook first"):
        results.find("07_pytorch_static_fx", "resnet18-fp32", folder=tmp_path)
    results.Recorder("07_pytorch_static_fx", quick=True, folder=tmp_path).record("a", value=1)
    assert results.find("07_pytorch_static_fx", "a", folder=tmp_path)["value"] == 1
    with pytest.raises(KeyError, match="recorded no"):
        results.find("07_pytorch_static_fx", "b", folder=tmp_path)


def test_corrupt_results_file_is_reported(tmp_path):
    (tmp_path / "03_x.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        results.load_all(tmp_path)


def test_key_figures_are_kept_per_notebook_and_cleared_on_rerun(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recorder = results.Recorder("03_x", quick=True, folder=tmp_path)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    assert recorder.figure("sqnr-vs-bits", fig) is None
    plt.close(fig)
    (path,) = results.figure_paths("03_x", tmp_path)
    assert path.name == "sqnr-vs-bits.png" and path.read_bytes()[:4] == b"\x89PNG"
    results.Recorder("03_x", quick=True, folder=tmp_path)
    assert results.figure_paths("03_x", tmp_path) == []
    with pytest.raises(ValueError, match="figure name"):
        recorder.figure("Bad name.png", fig)
