"""helpers.capstone: the constraint filters and the decision guide on a fixed table."""

from __future__ import annotations

import pytest

from helpers import capstone, data, models


def row(name, accuracy, size_bytes, latency_ms, latency_ms_batch64=None):
    framework, needs, integer_only, effort, _ = capstone.METHODS[name]
    measured = {"name": name, "framework": framework, "accuracy": accuracy,
                "size_bytes": size_bytes, "latency_ms": latency_ms, "needs": needs,
                "integer_only": integer_only, "effort": effort}
    if latency_ms_batch64 is not None:
        measured["latency_ms_batch64"] = latency_ms_batch64
    return measured


ROWS = [
    row("pytorch-fp32", 0.980, 160_000, 0.30),
    row("pytorch-dynamic", 0.979, 120_000, 0.31),
    row("pytorch-static-eager", 0.976, 52_000, 0.20),
    row("pytorch-static-fx", 0.978, 51_000, 0.19),
    row("pytorch-qat", 0.981, 52_000, 0.195),
    row("tflite-fp32", 0.910, 85_000, 0.10),
    row("tflite-dynamic", 0.909, 25_000, 0.12),
    row("tflite-int8", 0.905, 25_500, 0.05),
    row("tflite-float16", 0.910, 43_000, 0.10),
    row("tflite-16x8", 0.910, 26_000, 0.40),
    row("keras-qat-int8", 0.912, 25_600, 0.05),
]


def test_with_baselines_compares_each_method_with_its_own_float():
    by_name = {r["name"]: r for r in capstone.with_baselines(ROWS)}
    assert by_name["tflite-int8"]["size_x"] == pytest.approx(85_000 / 25_500)
    assert by_name["pytorch-static-fx"]["speedup_x"] == pytest.approx(0.30 / 0.19)
    assert by_name["tflite-int8"]["accuracy_change_points"] == pytest.approx(-0.5)


def test_with_baselines_needs_the_float_rows():
    with pytest.raises(ValueError, match="float baselines"):
        capstone.with_baselines(ROWS[1:5])


def test_meets_applies_every_constraint():
    assert capstone.meets(ROWS, max_drop_points=0.3, integer_only=True) == {"keras-qat-int8"}
    assert capstone.meets(ROWS, framework="pytorch", max_size_bytes=52_000) == {
        "pytorch-static-eager", "pytorch-static-fx", "pytorch-qat"}
    assert capstone.meets(ROWS, needs={"nothing"}, max_latency_ms=0.11) == {
        "tflite-fp32", "tflite-float16"}


def test_best_treats_near_ties_as_ties():
    names = {"pytorch-static-fx", "pytorch-qat", "pytorch-static-eager"}
    assert capstone.best(ROWS, names, "latency_ms") == {"pytorch-static-fx"}
    assert capstone.best(ROWS, names, "latency_ms", tolerance=0.06) == names
    assert capstone.best(ROWS, set(), "latency_ms") == set()


def test_decision_guide_is_computed_from_the_table():
    guide = dict((situation, name) for situation, name, _ in capstone.decision_guide(ROWS, 1.0))
    assert guide["no data at all, just the trained model (smallest file)"] == "tflite-dynamic"
    assert guide["microcontroller / Edge TPU / NPU: integer-only, smallest file"] == "tflite-int8"
    # fx, qat and eager are within 10 % of each other: the least effort wins, then size.
    assert guide["PyTorch on an x86/Arm CPU, one request at a time, fastest within the budget"] == (
        "pytorch-static-fx")
    assert not any("batching" in situation for situation in guide)  # no batched timings here
    strict = dict((s, n) for s, n, _ in capstone.decision_guide(ROWS, budget_points=0.0))
    assert strict["microcontroller / Edge TPU / NPU: integer-only, smallest file"] == "keras-qat-int8"


# At batch 1 the float model wins here; at batch 64 the int8 kernels do.
BATCHED = [row("pytorch-fp32", 0.980, 160_000, 0.30, 5.0),
           row("pytorch-dynamic", 0.979, 120_000, 0.31, 4.9),
           row("pytorch-static-eager", 0.976, 52_000, 0.40, 1.6),
           row("pytorch-static-fx", 0.978, 51_000, 0.45, 1.5),
           row("pytorch-qat", 0.981, 52_000, 0.42, 1.55),
           row("tflite-fp32", 0.910, 85_000, 0.10, 3.0)]


def test_decision_guide_uses_the_batched_latency_for_a_batching_server():
    guide = dict((s, n) for s, n, _ in capstone.decision_guide(BATCHED, 1.0))
    assert guide["PyTorch on an x86/Arm CPU, one request at a time, fastest within the budget"] == (
        "pytorch-fp32")
    # eager, fx and qat tie within 10 %: the least effort wins, then the smaller file.
    assert guide["PyTorch server batching 64 requests per call, fastest within the budget"] == (
        "pytorch-static-fx")
    rows = {r["name"]: r for r in capstone.with_baselines(BATCHED)}
    assert rows["pytorch-static-fx"]["speedup_batch64_x"] == pytest.approx(5.0 / 1.5)
    assert "batch-64 ms" in capstone.table(BATCHED)
    assert "batch-64 ms" not in capstone.table(ROWS)


def test_table_and_qat_gain():
    text = capstone.table(ROWS)
    assert text.splitlines()[0].startswith("method")
    assert len(text.splitlines()) == 2 + len(ROWS)
    gain = capstone.qat_gain_points(ROWS)
    assert gain["pytorch"] == pytest.approx(0.3)
    assert gain["tflite"] == pytest.approx(0.7)


def test_measure_one_measures_a_torch_model_and_rejects_unknown_names():
    test = data.load_mnist().test.take(capstone.BIG_BATCH)
    model = models.SmallCNN(width=8).eval()
    result = capstone.measure_one(capstone.Built("pytorch-fp32", model), test, repeats=3,
                                  big_repeats=2)
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["size_bytes"] > 0 and result["latency_ms"] > 0
    assert result["latency_ms_batch64"] > 0 and result["timing_batch64"].repeats == 2
    assert (result["threads"], result["batch"], result["framework"]) == (1, 1, "pytorch")
    with pytest.raises(ValueError, match="BIG_BATCH=64"):
        capstone.measure_one(capstone.Built("pytorch-fp32", model), test.take(20))
    with pytest.raises(KeyError, match="unknown method 'pytorch-int3'"):
        capstone.measure_one(capstone.Built("pytorch-int3", model), test)


def test_what_if_changes_one_row_and_recomputes_the_ratios():
    changed = {r["name"]: r for r in capstone.what_if(ROWS, "tflite-int8", accuracy=0.88)}
    assert changed["tflite-int8"]["accuracy_change_points"] == pytest.approx(-3.0)
    assert changed["keras-qat-int8"]["accuracy"] == 0.912
    with pytest.raises(KeyError, match="no method 'onnx-int8'"):
        capstone.what_if(ROWS, "onnx-int8", accuracy=0.5)


def test_build_pytorch_refuses_to_load_triton_after_tensorflow(monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "tensorflow", types.ModuleType("tensorflow"))
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: object())
    with pytest.raises(RuntimeError, match="before anything imports tensorflow"):
        capstone.build_pytorch(data.load_mnist().calib, data.load_mnist().train)


def test_capstone_figures_have_labelled_axes():
    from helpers.plot import capstone as capstone_plot

    rows = capstone.with_baselines(ROWS)
    fig = capstone_plot.pareto_by_framework(rows, x="size_bytes")
    assert [ax.get_title() for ax in fig.axes] == ["PyTorch (small_cnn)", "TFLite (Keras CNN)"]
    assert all(ax.get_xlabel().startswith("size (MB)") for ax in fig.axes)
    bars = capstone_plot.relative_to_float(rows)
    assert bars.axes[2].get_xlabel() == "accuracy change (points)"
    with pytest.raises(ValueError, match="with_baselines"):
        capstone_plot.relative_to_float(ROWS)
