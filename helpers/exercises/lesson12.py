"""Checks of lesson 12 (Keras QAT with tfmot), light enough to run without TensorFlow.

* :func:`check_fake_quant` compares with :func:`fake_quant_reference`, a NumPy transcription of
  TensorFlow's ``FakeQuantWithMinMaxArgs`` kernel (nudged range, clamp, round half up; its
  agreement with TensorFlow is tested), and with TensorFlow itself when the notebook has loaded
  it. The inputs include exact rounding ties, values that clamp, a range that excludes zero
  and a 4-bit grid.
* :func:`check_convert_integer_io` reads the student's flatbuffer with the LiteRT interpreter.
* :func:`check_annotate_feature_extractor` calls the student's function on each layer and
  looks at what comes back, so it needs no tfmot (the notebook also runs ``quantize_apply``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from helpers import checks, decision

# (x_min, x_max, bits): a range with zero on the grid, one that is nudged at 4 bits, ReLU6's,
# one whose scale is a power of two (so exact ties exist in float32) and one excluding zero.
FAKE_QUANT_RANGES = ((-1.0, 0.7, 8), (-0.8, 1.0, 4), (0.0, 6.0, 8), (-2.0, 127 / 64, 8),
                     (0.5, 2.0, 8))


def fake_quant_reference(x: np.ndarray, x_min: float, x_max: float, bits: int = 8) -> np.ndarray:
    """TensorFlow's fake quantization in NumPy float32 (``quant_min`` 0, no narrow range)."""
    f32 = np.float32
    x = np.asarray(x, dtype=f32)
    quant_min, quant_max = f32(0), f32(2**bits - 1)
    scale = (f32(x_max) - f32(x_min)) / (quant_max - quant_min)
    zero_point_from_min = quant_min - f32(x_min) / scale
    nudged_zero_point = np.clip(np.floor(zero_point_from_min + f32(0.5)), quant_min, quant_max)
    nudged_min = (quant_min - nudged_zero_point) * scale
    nudged_max = (quant_max - nudged_zero_point) * scale
    shifted = np.clip(x, nudged_min, nudged_max) - nudged_min
    # TensorFlow multiplies by the inverse scale rather than dividing.
    return (np.floor(shifted * (f32(1) / scale) + f32(0.5)) * scale + nudged_min).astype(f32)


def fake_quant_inputs() -> np.ndarray:
    """Values that clamp and values that do not, zeros, range edges and exact ties at scale 1/64."""
    rng = np.random.default_rng(0)
    ties = -2.0 + (np.arange(0, 255, 7) + 0.5) / 64
    edges = [0.0, -1.0, 0.7, 1.0, 6.0, 0.5, 2.0, -2.0, 127 / 64, -3.0, 7.0]
    return np.concatenate([rng.uniform(-3, 7, 80), ties, edges]).astype(np.float32)


def check_fake_quant(student: Callable) -> None:
    """fake_quant(x, x_min, x_max, bits) must match TensorFlow's fake quantization exactly."""
    x = fake_quant_inputs()
    tf = sys.modules.get("tensorflow")
    for x_min, x_max, bits in FAKE_QUANT_RANGES:
        name = f"fake_quant(x, {x_min:g}, {x_max:g}, bits={bits})"
        got = np.asarray(checks.attempt(student, x.copy(), x_min, x_max, bits))
        expected = fake_quant_reference(x, x_min, x_max, bits)
        if tf is not None:  # in the notebook: TensorFlow's own kernel is the reference
            expected = tf.quantization.fake_quant_with_min_max_args(
                x, min=x_min, max=x_max, num_bits=bits).numpy()
        if got.shape != expected.shape:
            checks.fail(f"{name}: the shape is wrong", expected.shape, got.shape,
                        "return one value per input, the same shape as x")
        wrong = np.abs(got.astype(np.float64) - expected) > 1e-5
        if wrong.any():
            i = int(np.flatnonzero(wrong)[0])
            checks.fail(f"{name}: {int(wrong.sum())} of {x.size} values differ, e.g. at x = {x[i]!r}",
                        float(expected[i]), float(got[i]), _fake_quant_hint(x[i], x_min, x_max, bits))
        checks.passed(f"{name} matches TensorFlow on all {x.size} values (ties and clamped values included).")


def _fake_quant_hint(value: float, x_min: float, x_max: float, bits: int) -> str:
    scale = (x_max - x_min) / (2**bits - 1)
    on_tie = abs((value - x_min) / scale % 1 - 0.5) < 1e-6
    if on_tie:
        return "this value lies exactly halfway between two grid points: TensorFlow rounds halves up"
    if not x_min <= value <= x_max or x_min > 0:
        return ("values outside the range must clamp to the *nudged* range, and the zero point "
                "itself must stay within [qmin, qmax]")
    return "nudge the range so that zero is a grid point (round the zero point), then quantize with that grid"


def check_convert_integer_io(student: Callable, qat_model, reference: bytes,
                             images: np.ndarray) -> None:
    """The student's file: uint8 in and out, integer-only, and the same outputs as the reference."""
    from helpers import tflite

    content = checks.attempt(student, qat_model)
    if not isinstance(content, (bytes, bytearray)):
        checks.fail("convert_integer_io must return the flatbuffer", "bytes", type(content).__name__,
                    "return what the converter's convert() gives")
    got = tflite.LiteModel(bytes(content))
    io = (got.input_dtype.name, got.output_dtype.name)
    if io != ("uint8", "uint8"):
        checks.fail("input and output dtypes", ("uint8", "uint8"), io,
                    "an integer-only device reads and writes integers: the converter has a setting "
                    "for the type of the model's input and one for its output (lesson 10)")
    found = decision.tflite_integer_only(bytes(content))
    if not found:
        checks.fail("every tensor computed at run time is an integer", "integer-only", str(found),
                    "keep the optimization that quantizes the model; the fake-quant ranges do the rest")
    want = tflite.LiteModel(reference)
    q = got.quantize_input(images)
    checks.check_equal(f"raw uint8 outputs on {len(images)} test images", got.invoke(q),
                       want.invoke(want.quantize_input(images)),
                       hint="convert the QAT model itself, with only the default optimization: its "
                            "ranges come from training, so no representative dataset is needed")


def check_annotate_feature_extractor(student: Callable, model) -> None:
    """Reshape and Conv2D come back wrapped for quantization, every other layer unchanged."""
    annotated, unchanged = [], []
    for layer in model.layers:
        fresh = layer.__class__.from_config(layer.get_config())
        out = checks.attempt(student, fresh)
        kind = type(layer).__name__
        if type(out).__name__ == "QuantizeAnnotate" and getattr(out, "layer", None) is fresh:
            annotated.append(kind)
        elif out is fresh:
            unchanged.append(kind)
        else:
            checks.fail(f"annotate_feature_extractor({kind} layer)", "the layer, annotated or as it is",
                        type(out).__name__, "return the layer you were given (wrapped by "
                        "quantize_annotate_layer, or untouched); do not build a new one")
    checks.check_equal("layers annotated for quantization", sorted(annotated), ["Conv2D", "Reshape"],
                       hint="annotate the feature extractor only (the Reshape that feeds it and the "
                            "convolution) and return the classifier and the rest untouched")
    if "tensorflow_model_optimization" in sys.modules:  # in the notebook: the real quantize_apply
        from helpers import keras_qat

        partial = keras_qat.quantize_with(model, student)
        checks.check_equal("layers quantize_apply wrapped", keras_qat.quantized_layer_types(partial),
                           ["Conv2D", "Reshape"], hint="annotate Reshape and Conv2D only")
