"""Checks for the exercises of lesson 09 (TFLite dynamic-range quantization).

Exercise 1 reads the converted file's graph (:mod:`helpers.litert_tools`): dynamic range means
int8 weights, float activations everywhere and no QUANTIZE op, so full-integer conversion with
float fallback, float16 weights and a plain float file all fail. Exercise 2 runs the student's
interpreter loop against labels whose accuracy is known in advance. Exercise 3 hides the right
tensor behind a bigger activation, a bigger float constant and a longer first dimension.
"""

from __future__ import annotations

import numpy as np

from helpers import checks, litert_tools, tflite
from helpers.exercises._litert import probe_labels, run

_SHAPE_DTYPES = {"int32", "int64", "bool"}


def check_convert_dynamic(student, model) -> None:
    """Exercise 1: int8 weights, float activations, no QUANTIZE op, float input and output."""
    got = run(student, model, what="convert_dynamic(model)",
              hint="build a TFLiteConverter from the Keras model, set its optimizations and "
                   "return what convert() gives")
    if not isinstance(got, (bytes, bytearray)):
        checks.fail("convert_dynamic(model) should return the .tflite bytes",
                    "bytes from converter.convert()", type(got).__name__,
                    "return the result of converter.convert(), not the converter")
    tensors = litert_tools.tensor_table(got)
    ops = litert_tools.op_table(got)
    stored = sorted({t["dtype"] for t in tensors if t["stored"]})
    checks.check_true("int8" in stored, "the large weights are stored as int8", got=stored,
                      expected="int8 among the stored dtypes",
                      hint="dynamic range is switched on by the converter's default "
                           "optimization; float16 is a different mode")
    names = [r["op"] for r in ops]
    checks.check_true("QUANTIZE" not in names, "no QUANTIZE op: nothing quantizes activations "
                      "ahead of time", got=[n for n in names if n in litert_tools.BOUNDARY_OPS],
                      expected="no QUANTIZE",
                      hint="a QUANTIZE op means full-integer conversion with float fallback: "
                           "dynamic range needs no representative dataset")
    activations = sorted({t["dtype"] for t in tensors if not t["stored"]} - _SHAPE_DTYPES)
    checks.check_true(activations == ["float32"], "every activation stays float32",
                      got=activations, expected=["float32"],
                      hint="in dynamic range only the weights are integers; no calibration, "
                           "no integer input or output types, no 16-bit activations")
    hybrid = [r["op"] for r in ops if r["kind"] == "hybrid"]
    checks.check_true(bool(hybrid), f"hybrid operators (int8 weights, float activations): "
                      f"{sorted(set(hybrid))}", got=hybrid, expected="at least one",
                      hint="an operator with stored int8 weights and float activations is "
                           "what dynamic range produces")


def check_interpreter_accuracy(student, model_bytes: bytes, images: np.ndarray,
                               labels: np.ndarray) -> None:
    """Exercise 2: the raw set_tensor / invoke / get_tensor loop gives the exact accuracy."""
    images = np.asarray(images, dtype=np.float32)
    lite = tflite.LiteModel(model_bytes)  # one image per call, as the exercise runs it
    reference = np.array([int(np.argmax(lite.invoke(image[None]))) for image in images])
    hint = ("for each image: set the input tensor (with a batch axis), invoke, read the output "
            "tensor, take its arg-max; return the fraction of images whose arg-max equals the "
            "label")
    expected = float(np.mean(reference == labels))
    got = run(student, tflite.LiteModel(model_bytes).interpreter, images, labels,
              what="interpreter_accuracy(interpreter, images, labels)", hint=hint)
    checks.check_close(f"accuracy on {len(labels)} test images", got, expected, atol=1e-9,
                       hint=hint)
    probe, probe_expected = probe_labels(reference)
    got = run(student, tflite.LiteModel(model_bytes).interpreter, images, probe,
              what="interpreter_accuracy with other labels", hint=hint)
    checks.check_close("accuracy against labels that agree with the model on exactly "
                       f"{probe_expected:.0%} of the images", got, probe_expected, atol=1e-9,
                       hint="each image's own output must be read after its own invoke(); "
                            "return a fraction, not a count")


def check_largest_int8_weight(student) -> None:
    """Exercise 3: the largest *stored int8* tensor by element count, with its own scales."""
    rows = [
        {"name": "bias", "dtype": "float32", "shape": (5000,), "is_constant": True,
         "scales": np.array([])},
        {"name": "activation", "dtype": "int8", "shape": (1, 9000), "is_constant": False,
         "scales": np.array([0.02])},
        {"name": "depthwise", "dtype": "int8", "shape": (1, 3, 3, 64), "is_constant": True,
         "scales": np.linspace(0.01, 0.02, 64)},
        {"name": "conv", "dtype": "int8", "shape": (64, 3, 3, 1), "is_constant": True,
         "scales": np.linspace(0.1, 0.2, 64)},
        {"name": "dense", "dtype": "int8", "shape": (10, 200), "is_constant": True,
         "scales": np.linspace(0.5, 0.9, 10)},
        {"name": "shape", "dtype": "int32", "shape": (2,), "is_constant": True,
         "scales": np.array([])},
    ]
    got = run(student, rows, what="largest_int8_weight(rows)",
              hint="keep the stored int8 rows, then take the one with the most elements")
    if not (isinstance(got, tuple) and len(got) == 3):
        checks.fail("largest_int8_weight should return (name, shape, scales)",
                    "a 3-tuple", got, "return the row's name, shape and scales as a tuple")
    name, shape, scales = got
    checks.check_equal("the largest stored int8 tensor", name, "dense",
                       hint="skip activations (is_constant False) and tensors that are not "
                            "int8, and count elements over the whole shape, not its first "
                            "dimension")
    checks.check_equal("its shape", tuple(shape), (10, 200), hint="return the row's own shape")
    checks.check_close("its scales", scales, np.linspace(0.5, 0.9, 10),
                       hint="return that tensor's own 'scales' entry, one per output channel")
