"""TensorFlow Lite's quantization debugger and selective quantization; lesson 10.

``tf.lite.experimental.QuantizationDebugger`` converts a model in a debug mode in which every
quantized operator is followed by a NumericVerify op: the quantized operator's output is
compared with the float operator's output *on the same (dequantized) input*, so each layer's
statistics measure the error that layer adds, not what it inherited. The usual reading is the
root-mean-square error divided by the layer's quantization step (``rmse/scale``): rounding
alone gives 1/sqrt(12) ~ 0.29 steps, so a layer well above that loses more than rounding.

The same debugger re-quantizes the calibrated model with a *denylist* of layers kept in float
(selective quantization). Both read data, so both refuse the test split: debug on ``val``.
"""

from __future__ import annotations

import csv
import io
import math
import warnings

import numpy as np

from helpers import data, stats, tflite

ROUNDING_ONLY = 1 / math.sqrt(12)  # rmse/scale of pure rounding error, in quantization steps


def run_debugger(keras_model, calib: data.Split, debug: data.Split, samples: int = 100,
                 debug_samples: int = 100):
    """Calibrate int8 on ``calib``, run the debug model on ``debug`` (val); lesson 10.

    Returns the ``QuantizationDebugger`` after ``run()``; its ``layer_statistics`` hold the
    per-layer error statistics.
    """
    import tensorflow as tf

    data.require_selection_split(debug, "the quantization debugger (it guides which layers "
                                        "to keep in float)")
    if calib.role == "test":
        raise data.SelectionOnTestError("calibrate on mnist.calib, never on the test split")
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = tflite.representative_dataset(
        data.keras_arrays(calib)[0], samples)
    debug_images = data.keras_arrays(debug)[0]
    with tflite.quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it builds tf.lite.Interpreter objects (deprecated)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=tflite.representative_dataset(debug_images, debug_samples))
        debugger.run()
    return debugger


def layer_statistics(debugger) -> list[dict]:
    """The debugger's per-layer table with ``rmse/scale`` and ``range`` added; lesson 10.

    One row per quantized layer, in graph order: ``op``, ``tensor`` (its output tensor, the
    name the denylist takes), ``scale``, ``range`` (scale x 255: the span int8 covers),
    ``rmse/scale`` and the raw error statistics.
    """
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for raw in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(raw["scale"])
        mse = float(raw["mean_squared_error"])
        rows.append({
            "op": raw["op_name"],
            "tensor": raw["tensor_name"],
            "elements": int(float(raw["num_elements"])),
            "scale": scale,
            "range": 255 * scale,
            "rmse/scale": math.sqrt(mse) / scale if scale > 0 else math.inf,
            "mean_error": float(raw["mean_error"]),
            "max_abs_error": float(raw["max_abs_error"]),
        })
    return rows


def worst_layers(rows: list[dict], k: int) -> list[str]:
    """Output-tensor names of the ``k`` layers with the largest ``rmse/scale``; lesson 10."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    ranked = sorted(rows, key=lambda r: r["rmse/scale"], reverse=True)
    return [r["tensor"] for r in ranked[:k]]


def selective_int8(debugger, keep_float: list[str]) -> bytes:
    """The debugger's calibrated model quantized with ``keep_float`` layers in float; lesson 10.

    Float input and output (like the converter's int8 with float fallback); no recalibration:
    the debugger re-quantizes the model it calibrated once.
    """
    import tensorflow as tf

    with tflite.quiet(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        debugger.options = tf.lite.experimental.QuantizationDebugOptions(
            denylisted_nodes=list(keep_float))
        return debugger.get_nondebug_quantized_model()


def selective_sweep(debugger, rows: list[dict], ks: tuple[int, ...], float_logits: np.ndarray,
                    split: data.Split) -> list[dict]:
    """Keep the ``k`` worst layers in float for each ``k``; measured on ``split`` (val).

    ``float_logits`` are the float model's logits on ``split``. Each result holds ``k``, the
    layers, the file, the answers changed against float and the logit SQNR (dB).
    """
    data.require_selection_split(split, "the selective-quantization sweep")
    x, _ = data.keras_arrays(split)
    float_pred = np.argmax(float_logits, axis=1)
    results = []
    for k in ks:
        layers = worst_layers(rows, k)
        content = selective_int8(debugger, layers)
        logits = tflite.LiteModel(content).predict(x)
        results.append({
            "k": k, "layers": layers, "content": content,
            "changed": int(np.sum(np.argmax(logits, axis=1) != float_pred)),
            "sqnr_db": stats.logit_sqnr_db(float_logits, logits),
        })
    return results


def choose_k(results: list[dict]) -> dict:
    """The fewest float layers among those with the fewest changed val answers; lesson 10.

    Every layer kept in float costs a QUANTIZE/DEQUANTIZE pair and integer-only deployment,
    so the choice takes the smallest ``k`` that changes as few answers as any ``k`` tried.
    """
    if not results:
        raise ValueError("choose_k() needs the results of selective_sweep()")
    fewest = min(r["changed"] for r in results)
    return min((r for r in results if r["changed"] == fewest), key=lambda r: r["k"])


def calibration_sweep(keras_model, calib: data.Split, split: data.Split, sizes: tuple[int, ...],
                      float_logits: np.ndarray) -> list[dict]:
    """Full-integer int8 with each representative-dataset size, measured on ``split`` (val).

    Each result holds ``samples``, the file, the answers changed against the float model's
    ``float_logits`` on ``split`` and the logit SQNR (dB).
    """
    data.require_selection_split(split, "the calibration-size sweep")
    if calib.role == "test":
        raise data.SelectionOnTestError("calibrate on mnist.calib, never on the test split")
    calib_images = data.keras_arrays(calib)[0]
    x, _ = data.keras_arrays(split)
    float_pred = np.argmax(float_logits, axis=1)
    results = []
    for samples in sizes:
        content = tflite.convert_keras(keras_model, "int8-fallback", calib_images, samples)
        logits = tflite.LiteModel(content).predict(x)
        results.append({
            "samples": samples, "content": content,
            "changed": int(np.sum(np.argmax(logits, axis=1) != float_pred)),
            "sqnr_db": stats.logit_sqnr_db(float_logits, logits),
        })
    return results


def choose_calibration_size(results: list[dict]) -> dict:
    """The size whose int8 logits are closest to float on val (highest SQNR); lesson 10.

    SQNR is continuous, so unlike the count of changed answers it rarely ties; a tie goes to
    the larger dataset, the safer side for inputs the calibration has not seen.
    """
    if not results:
        raise ValueError("choose_calibration_size() needs the results of calibration_sweep()")
    return max(results, key=lambda r: (round(r["sqnr_db"], 6), r["samples"]))
