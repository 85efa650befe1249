"""helpers.capstone (+ capstone_torch, call_overhead, plot.capstone): rows, speed-ups, files, figures."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
import torch
import torch._dynamo  # noqa: F401  (loads Triton now: after TensorFlow, torch.export would crash)
from matplotlib.text import Text

from helpers import capstone, capstone_torch, data, models, tflite

matplotlib.use("Agg")


def tiny_splits(seed: int = 0):
    rng = np.random.default_rng(seed)
    make = lambda n, role: data.Split(rng.random((n, 28, 28), dtype=np.float32),  # noqa: E731
                                      rng.integers(0, 10, n), role)
    return make(70, "val"), make(100, "test"), make(64, "calib")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return models.DepthwiseSeparableNet(width=8, blocks=2).eval()


def test_candidates_know_their_method_and_refuse_unknown_names(net):
    assert capstone.Candidate("pytorch-fp32", net).method.framework == "pytorch"
    lite = capstone.Candidate("tflite-int8", b"\x00" * 8)
    assert lite.artifact == b"\x00" * 8 and lite.method.needs == "calibration"
    with pytest.raises(KeyError, match="unknown method"):
        capstone.Candidate("onnx-int8", net)


def test_measure_one_gives_paired_val_and_test_numbers_and_refuses_test_as_val(net):
    val, test, calib = tiny_splits()
    x = data.torch_tensors(calib)[0]
    reference = {s.role: capstone.logits(capstone.Candidate("pytorch-fp32", net), s).argmax(1)
                 for s in (val, test)}
    candidate = capstone.Candidate("pytorch-static-eager", capstone_torch.static_eager(net, x, "x86"),
                                   *capstone_torch.artifact(capstone_torch.static_eager(net, x, "x86"), x))
    row = capstone.measure_one(candidate, val, test, reference, repeats=3, big_repeats=2,
                               max_seconds=1)
    assert row["test_images"] == 100 and len(row["val_predictions"]) == 70
    assert row["size_kind"] == "TorchScript" and row["size_bytes"] == len(candidate.artifact)
    assert row["integer_only"] is False and "input is float32" in row["integer_only_reasons"]
    low, high = row["delta_ci95"]
    assert low <= row["delta_points"] <= high
    assert row["latency_ms"] > 0 and row["latency_ms_batch64"] > row["latency_ms"]
    json.dumps(capstone.as_record(row))
    with pytest.raises(data.SelectionOnTestError):
        capstone.measure_one(candidate, test, test, reference)


def test_float_control_is_the_qat_fine_tuning_without_fake_quant(net):
    train = tiny_splits()[0]
    control = capstone_torch.float_control(net, train, lr=1e-2)
    qat = capstone_torch.qat_int8(net, train, "x86", lr=1e-2)
    x = torch.from_numpy(train.x[:8, None])
    assert not any("FakeQuantize" in type(m).__name__ for m in control.modules())
    assert any(p.dtype == torch.qint8 for p in qat.state_dict().values() if torch.is_tensor(p))
    with torch.no_grad():
        assert not torch.allclose(control(x), capstone_torch.fused_fp32(net)(x), atol=1e-4)  # it trained
    assert not control.training and net.training is False


def test_float_models_export_and_int8_modules_ship_as_torchscript(net):
    x = data.torch_tensors(tiny_splits()[2])[0]
    assert capstone_torch.artifact(capstone_torch.fused_fp32(net), x)[1] == "torch.export"
    assert capstone_torch.artifact(capstone_torch.dynamic_int8(net), x)[1] == "TorchScript"
    fused = capstone_torch.fused_fp32(net)
    with torch.inference_mode():
        torch.testing.assert_close(fused(x), net(x), atol=1e-5, rtol=1e-4)


def row(name, framework, ms, ms64, quantized=True):
    return {"name": name, "framework": framework, "latency_ms": ms, "latency_ms_batch64": ms64,
            "quantized": quantized}


def test_speed_ups_against_the_plain_and_the_best_float():
    rows = capstone.with_speedups([
        row("pytorch-fp32", "pytorch", 4.0, 200, False),
        row("pytorch-fp32-fused", "pytorch", 3.0, 100, False),
        row("pytorch-static-fx", "pytorch", 2.0, 50),
        row("tflite-fp32", "tflite", 1.0, 40, False),
        row("tflite-int8", "tflite", 0.5, 10),
    ])
    fx = rows[2]
    assert fx["baseline"] == "pytorch-fp32-fused"
    assert fx["speedup_vs_plain"] == pytest.approx(2.0)
    assert fx["speedup_vs_best"] == pytest.approx(1.5)
    assert fx["speedup64_vs_best"] == pytest.approx(2.0)
    assert rows[4]["speedup_vs_best"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="float rows"):
        capstone.with_speedups(rows[2:])


def test_lite_predict_pads_the_last_batch_and_splits_the_work():
    tflite.import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10)])
    content = tflite.convert_keras(model, "fp32")
    images = np.random.default_rng(0).random((150, 28, 28), dtype=np.float32)
    expected = tflite.LiteModel(content).predict(images)
    got = capstone.lite_predict(content, images, workers=2, batch=64)
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_cached_file_reuses_or_rebuilds(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return b"file"

    assert capstone.cached_file("k", build) == b"file"
    assert capstone.cached_file("k", build) == b"file" and len(calls) == 1
    assert capstone.cached_file("k", build, reuse=False) == b"file" and len(calls) == 2


def test_fixed_costs_time_every_path():
    from helpers import call_overhead

    _, test, calib = tiny_splits()
    costs = call_overhead.fixed_costs(test, calib, "x86", repeats=5)
    assert set(costs) == {"pytorch fp32", "pytorch int8", "LiteRT fp32", "LiteRT int8"}
    assert all(t.median_ms > 0 and t.threads == 1 for t in costs.values())
    assert set(call_overhead.trivial_lite(modes=("fp32",))) == {"LiteRT fp32"}  # lesson 09: no calibration
    with pytest.raises(ValueError, match="calib_images"):
        call_overhead.trivial_lite()


def test_figures_have_labelled_log_axes_and_labels_that_do_not_collide():
    from helpers.plot import capstone as capstone_plot

    rng = np.random.default_rng(0)
    names = list(capstone.METHODS)
    rows = [{"name": n, "framework": m.framework, "needs": m.needs, "delta_points": d,
             "delta_ci95": [d - 0.1, d + 0.1], "latency_ms": ms, "latency_p10_ms": ms * 0.9,
             "latency_p90_ms": ms * 1.2, "size_bytes": 30_000 + 1000 * i,
             "speedup_vs_best": 1.0, "speedup64_vs_best": 1.5}
            for i, (n, m, d, ms) in enumerate(zip(names, capstone.METHODS.values(),
                                                  rng.normal(0, 0.05, len(names)),
                                                  np.exp(rng.uniform(np.log(0.05), np.log(20), len(names))),
                                                  strict=True))]
    for x in ("latency_ms", "size_bytes"):
        fig = capstone_plot.pareto(rows, x)
        ax = fig.axes[0]
        assert ax.get_xscale() == "log" and ax.get_xlabel() and "points" in ax.get_ylabel()
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        boxes = []
        for label in ax.texts:
            label.update_positions(renderer)
            boxes.append(Text.get_window_extent(label, renderer))  # the text, not its leader line
        assert len(boxes) == len(rows)
        overlaps = sum(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        assert overlaps == 0
    bars = capstone_plot.speedups(rows)
    assert "speed-up" in bars.axes[0].get_xlabel()
