"""helpers.litert_debug: the quantization debugger, selective quantization, choices on val."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers import data, litert_debug, tflite


@pytest.fixture(scope="module")
def splits():
    mnist = data.load_mnist()
    return {"calib": mnist.calib.take(16), "val": mnist.val.take(16), "test": mnist.test.take(16)}


@pytest.fixture(scope="module")
def tiny():
    tflite.import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((28, 28)), keras.layers.Reshape((28, 28, 1)),
                             keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
                             keras.layers.Flatten(), keras.layers.Dense(10)])


def test_every_selection_refuses_the_test_split(tiny, splits) -> None:
    with pytest.raises(data.SelectionOnTestError, match="validation"):
        litert_debug.run_debugger(tiny, splits["calib"], splits["test"])
    with pytest.raises(data.SelectionOnTestError, match="never on the test split"):
        litert_debug.run_debugger(tiny, splits["test"], splits["val"])
    with pytest.raises(data.SelectionOnTestError):
        litert_debug.selective_sweep(None, [], (0,), np.zeros((16, 10)), splits["test"])
    with pytest.raises(data.SelectionOnTestError):
        litert_debug.calibration_sweep(tiny, splits["calib"], splits["test"], (1,),
                                       np.zeros((16, 10)))


def test_worst_layers_and_the_choices() -> None:
    rows = [{"tensor": "a", "rmse/scale": 0.3}, {"tensor": "b", "rmse/scale": 0.9},
            {"tensor": "c", "rmse/scale": 0.5}]
    assert litert_debug.worst_layers(rows, 2) == ["b", "c"]
    assert litert_debug.worst_layers(rows, 0) == []
    with pytest.raises(ValueError, match="k must be"):
        litert_debug.worst_layers(rows, -1)
    results = [{"k": 0, "changed": 7}, {"k": 1, "changed": 5}, {"k": 2, "changed": 5}]
    assert litert_debug.choose_k(results)["k"] == 1
    sizes = [{"samples": 1, "sqnr_db": 9.0}, {"samples": 100, "sqnr_db": 35.0},
             {"samples": 500, "sqnr_db": 35.0}]
    assert litert_debug.choose_calibration_size(sizes)["samples"] == 500
    with pytest.raises(ValueError):
        litert_debug.choose_k([])
    assert math.isclose(litert_debug.ROUNDING_ONLY, 0.2887, abs_tol=1e-4)


def test_debugger_statistics_and_a_denylisted_layer(tiny, splits) -> None:
    debugger = litert_debug.run_debugger(tiny, splits["calib"], splits["val"], samples=16,
                                         debug_samples=8)
    rows = litert_debug.layer_statistics(debugger)
    assert {"CONV_2D", "FULLY_CONNECTED"} <= {r["op"] for r in rows}
    assert all(r["range"] == pytest.approx(255 * r["scale"]) for r in rows)
    conv = next(r for r in rows if r["op"] == "CONV_2D")
    assert 0 < conv["rmse/scale"] < 1
    from helpers import litert_tools

    kept = litert_debug.selective_int8(debugger, [conv["tensor"]])
    assert "CONV_2D" in {r["op"] for r in litert_tools.stayed_float(kept)}
