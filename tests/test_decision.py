"""helpers.decision: the integer-only detector, the guide's rules and lines on fixed tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import decision, tflite

pytestmark = pytest.mark.filterwarnings("ignore:Statistics for quantized inputs")
X86 = {"avx2": True, "arm_neon": False}


def row(name, framework, needs, quantized, integer_only, size, ms, ms64, val_delta=0.0,
        ci=0.2, baseline=None):
    return {"name": name, "framework": framework, "needs": needs, "quantized": quantized,
            "integer_only": integer_only, "size_bytes": size, "latency_ms": ms,
            "latency_ms_batch64": ms64, "val_delta_points": val_delta,
            "val_delta_ci95": [val_delta - ci, val_delta + ci], "accuracy": 0.99,
            "baseline": baseline or ("tflite-fp32" if framework == "tflite" else "pytorch-fp32-fused")}


ROWS = [
    row("pytorch-fp32", "pytorch", "nothing", False, False, 1_300_000, 4.0, 140),
    row("pytorch-fp32-fused", "pytorch", "nothing", False, False, 1_290_000, 3.0, 110),
    row("pytorch-dynamic", "pytorch", "nothing", True, False, 1_295_000, 3.1, 112),
    row("pytorch-static-eager", "pytorch", "calibration", True, False, 380_000, 2.0, 60),
    row("pytorch-qat", "pytorch", "training", True, False, 381_000, 1.95, 59),
    row("tflite-fp32", "tflite", "nothing", False, False, 1_280_000, 1.0, 50),
    row("tflite-dynamic", "tflite", "nothing", True, False, 350_000, 1.6, 90, -0.1),
    row("tflite-int8", "tflite", "calibration", True, True, 370_000, 0.8, 35, -0.2),
    row("tflite-float16", "tflite", "nothing", True, False, 650_000, 1.0, 50),
    row("keras-qat-int8", "tflite", "training", True, True, 360_000, 0.8, 35, -0.45),
]
BY_NAME = {r["name"]: r for r in ROWS}


def guide(rows, budget=0.5):
    return {line.situation.split(":")[0].split(",")[0]: line for line in
            decision.decision_guide(rows, budget, X86)}


def test_the_budget_is_judged_on_the_val_interval():
    assert decision.fits_budget(BY_NAME["tflite-int8"], 0.5)  # interval reaches -0.4
    assert not decision.fits_budget(BY_NAME["keras-qat-int8"], 0.5)  # -0.45, but reaches -0.65
    with pytest.raises(KeyError, match="val"):
        decision.fits_budget({"name": "x", "delta_ci95": [0, 0]}, 0.5)


def test_one_tolerance_for_ties_and_rule_3_breaks_them():
    tied = decision.ties(ROWS, "size_bytes")
    assert {r["name"] for r in tied} == {"tflite-dynamic", "keras-qat-int8", "tflite-int8",
                                         "pytorch-static-eager", "pytorch-qat"}
    assert decision.preferred(tied)["name"] == "tflite-dynamic"  # needs nothing
    assert decision.ties(ROWS, "size_bytes", tolerance=0.0)[0]["name"] == "tflite-dynamic"
    assert decision.choose([], "size_bytes") == (None, [])


def test_every_line_is_computed_from_the_table():
    lines = guide(ROWS)
    assert lines["integer-only hardware (microcontroller"].method == "tflite-int8"  # QAT fails the budget
    assert lines["no data at all"].method == "tflite-dynamic"
    assert lines["PyTorch on this CPU"].method == "pytorch-static-eager"  # tie with QAT: needs less
    assert lines["PyTorch server batching 64 requests per call"].method == "pytorch-static-eager"
    assert lines["LiteRT on this CPU"].method == "tflite-int8"
    assert "tflite-int8: val Δ -0.20 pts [-0.40, +0.00]" in lines["LiteRT on this CPU"].evidence
    # A what-if change moves the line: nothing is hard-coded.
    changed = decision.what_if(ROWS, "keras-qat-int8", val_delta_ci95=[-0.2, 0.1], size_bytes=200_000)
    assert guide(changed)["integer-only hardware (microcontroller"].method == "keras-qat-int8"


def test_the_phone_line_never_picks_a_method_measured_slower_than_float():
    slow_int8 = decision.what_if(ROWS, "tflite-int8", latency_ms=1.3)
    slow_int8 = decision.what_if(slow_int8, "keras-qat-int8", latency_ms=1.3)
    phone = guide(slow_int8)["Arm phone CPU"]
    assert phone.method == "tflite-float16"
    assert "excluded: tflite-dynamic, tflite-int8" in phone.evidence
    assert "cannot measure" in phone.evidence and "ARMv8.2" in phone.evidence
    fast = guide(ROWS)["Arm phone CPU"]
    assert fast.method == "tflite-int8"


def test_a_line_with_no_candidate_says_so():
    broke = [{**r, "val_delta_ci95": [-3.0, -1.0]} for r in ROWS]
    lines = decision.decision_guide(broke, 0.5, X86)
    assert all(line.method is None for line in lines)
    assert "no method" in lines[0].evidence


def test_what_if_refuses_an_unknown_method():
    with pytest.raises(KeyError, match="no method 'nope'"):
        decision.what_if(ROWS, "nope", size_bytes=1)


@pytest.fixture(scope="module")
def keras_files():
    """A small conv model converted four ways, one of them with a float op in the middle."""
    tflite.import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(x)))
    y = keras.layers.Lambda(lambda t: keras.ops.sin(t))(keras.layers.Conv2D(4, 3)(inputs))
    with_sin = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(y)))
    calib = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    return {mode: tflite.convert_keras(model, mode, calib, samples=16)
            for mode in ("int8", "int8-int8io", "dynamic", "float16")} | {
        "float_fallback": _fallback(with_sin, calib)}


def _fallback(model, calib):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = tflite.representative_dataset(calib, 16)
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    with tflite.quiet():
        return converter.convert()


def test_integer_only_is_read_from_the_file(keras_files):
    assert decision.tflite_integer_only(keras_files["int8"])
    assert decision.tflite_integer_only(keras_files["int8-int8io"])
    dynamic = decision.tflite_integer_only(keras_files["dynamic"])
    assert not dynamic and "input is float32" in dynamic.reasons
    float16 = decision.tflite_integer_only(keras_files["float16"])
    assert not float16 and "DEQUANTIZE" in str(float16)


def test_a_float_fallback_model_with_integer_io_is_not_integer_only(keras_files):
    found = decision.tflite_integer_only(keras_files["float_fallback"])
    lite = tflite.LiteModel(keras_files["float_fallback"])
    assert (lite.input_dtype.name, lite.output_dtype.name) == ("uint8", "uint8")
    assert not found
    assert "SIN" in str(found) and "float tensors computed at run time" in str(found)


def test_a_pytorch_model_with_float_io_is_not_integer_only():
    model = torch.nn.Linear(4, 2).eval()
    found = decision.torch_integer_only(model, torch.zeros(1, 4))
    assert not found and found.reasons == ("input is float32", "output is float32")
