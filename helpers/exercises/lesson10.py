"""Checks for the exercises of lesson 10 (TFLite full-integer quantization).

Exercise 1 inspects every sample the generator yields. Exercise 2 quantizes values that round
up, values that truncation would round down, and values above the range that a cast without
clipping wraps around, for int8 and uint8. Exercise 3 runs the student's loop on a uint8 model
(zero point 0) *and* an int8 model (zero point -128), on a count of images that leaves a partial
last batch, against labels whose accuracy is known in advance.
"""

from __future__ import annotations

import numpy as np

from helpers import checks, tflite
from helpers.exercises._litert import probe_labels, run


def check_make_representative_dataset(student) -> None:
    """Exercise 1: a function yielding [float32 image with a batch axis], ``samples`` times."""
    images = np.arange(5 * 2 * 3, dtype=np.float64).reshape(5, 2, 3) / 30
    make = run(student, images, 3, what="make_representative_dataset(images, 3)",
               hint="return a generator function that loops over the first `samples` images")
    if not callable(make):
        checks.fail("make_representative_dataset(images, 3)", "a function (the generator)",
                    type(make).__name__, "return the inner generator function, do not call it")
    items = list(make())
    checks.check_equal("number of samples yielded", len(items), 3,
                       hint="yield exactly `samples` items, one per image")
    for item in items:
        if not (isinstance(item, list) and len(item) == 1):
            checks.fail("each item is a list with one array per model input", "[array]",
                        type(item).__name__, "the converter unpacks a list: one entry per "
                                             "model input, and this model has one")
    checks.check_equal("shape of one sample", items[0][0].shape, (1, 2, 3),
                       hint="the model runs on batches: give each image a batch axis of 1")
    checks.check_equal("dtype of every sample", sorted({str(i[0].dtype) for i in items}),
                       ["float32"], hint="the converter wants float32 inputs, like the model")
    checks.check_close("the samples", np.concatenate([i[0] for i in items]), images[:3],
                       hint="yield the first `samples` images, in order, unchanged")


def check_quantize_input(quantize, dequantize) -> None:
    """Exercise 2: round, add the zero point, clip, cast; and the way back in float."""
    scale = 1 / 255
    # Steps of x / scale: 0, 0.77 (rounds up; truncation gives 0), 51.3, 153.7 (rounds up),
    # 255, 306 (above the range: must clip, not wrap), -25.5 -> clipped at the bottom.
    x = np.array([0.0, 0.003, 0.2012, 0.6028, 1.0, 1.2, -0.1], dtype=np.float32)
    hint = ("q = the rounded x / scale plus the zero point, clipped to the dtype's range "
            "(np.iinfo) before the cast: a cast alone truncates and wraps around")
    got = run(quantize, x, scale, -128, np.int8, what="quantize_input(x, 1/255, -128, int8)",
              hint=hint)
    checks.check_equal("quantize_input for int8 (scale 1/255, zero point -128)", got,
                       np.array([-128, -127, -77, 26, 127, 127, -128], dtype=np.int8), hint=hint)
    got = run(quantize, x, scale, 0, np.uint8, what="quantize_input(x, 1/255, 0, uint8)",
              hint=hint)
    checks.check_equal("quantize_input for uint8 (zero point 0)", got,
                       np.array([0, 1, 51, 154, 255, 255, 0], dtype=np.uint8),
                       hint="the same formula with the uint8 range [0, 255]: take the limits "
                            "from the dtype you are given, not from int8")
    q = np.array([-128, -28, 0, 127], dtype=np.int8)
    got = run(dequantize, q, 0.25, -28, what="dequantize_output(q, 0.25, -28)",
              hint="subtract the zero point, then multiply by the scale")
    checks.check_close("dequantize_output", got, np.array([-25.0, 0.0, 7.0, 38.75]),
                       hint="cast q to float before subtracting the zero point (int8 arithmetic "
                            "overflows), and subtract before you multiply")
    checks.check_equal("dequantize_output's dtype", str(np.asarray(got).dtype), "float32",
                       hint="return float32, the dtype the float model produced")


def check_integer_model_accuracy(student, uint8_model: bytes, int8_model: bytes,
                                 images: np.ndarray, labels: np.ndarray) -> None:
    """Exercise 3: exact accuracy of a uint8-I/O and an int8-I/O model, partial batch included."""
    images = np.asarray(images, dtype=np.float32)
    hint = ("quantize the images with the input tensor's own (scale, zero point) and dtype "
            "limits, run every batch including the last, partial one, and return the fraction "
            "of arg-maxes that equal the labels")
    for name, content in (("uint8", uint8_model), ("int8", int8_model)):
        reference = tflite.LiteModel(content).predict(images).argmax(axis=1)
        for which, target in (("the labels", labels), ("probe labels", probe_labels(reference)[0])):
            expected = float(np.mean(reference == target))
            got = run(student, tflite.LiteModel(content), images, target,
                      what=f"integer_model_accuracy on the {name} model", hint=hint)
            checks.check_close(f"{name}-I/O model: accuracy on {len(images)} images against "
                               f"{which}", got, expected, atol=1e-9, hint=hint)
