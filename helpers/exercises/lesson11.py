"""Checks for the exercises of lesson 11 (float16, 16x8, and choosing a variant).

Exercise 1 runs the student's ``configure`` on a stand-in converter for each of five modes and
compares every option. Exercise 2 predicts whole files from their tensor tables: float32,
dynamic range, int8, float16 and 16x8 files (and an int4 file when the notebook passes one),
each within 2 %, which per-channel scales, zero points and 16x8's stored ranges decide.
Exercise 3 probes limits met exactly, a smaller-but-slower variant and an empty answer.
"""

from __future__ import annotations

import copy
import types

from helpers import checks, litert_tools
from helpers.exercises._litert import run

SIZE_TOLERANCE = 0.02

_CONFIGURE_HINTS = {
    "optimizations": "every mode but fp32 turns on the converter's default optimization",
    "representative_dataset": "only the modes that quantize activations need the dataset",
    "inference_input_type": "only integer-only int8 changes the input type",
    "inference_output_type": "only integer-only int8 changes the output type",
    "supported_types": "only float16 lists a supported type",
    "supported_ops": "int8 restricts the ops to the int8 built-ins, 16x8 to the experimental "
                     "int16-activation set; the others keep the default",
}


def _stand_in_converter(tf):
    return types.SimpleNamespace(
        optimizations=[], representative_dataset=None,
        inference_input_type=tf.float32, inference_output_type=tf.float32,
        target_spec=types.SimpleNamespace(supported_types=[],
                                          supported_ops={tf.lite.OpsSet.TFLITE_BUILTINS}))


def _settings(converter) -> tuple:
    return (tuple(converter.optimizations), converter.representative_dataset,
            converter.inference_input_type, converter.inference_output_type,
            tuple(converter.target_spec.supported_types),
            tuple(sorted(map(str, converter.target_spec.supported_ops))))


def check_configure(student) -> None:
    """Exercise 1: exactly the converter options each of the five modes needs."""
    import tensorflow as tf

    rep = object()
    ops = tf.lite.OpsSet
    default = (tf.lite.Optimize.DEFAULT,)
    builtins = (str(ops.TFLITE_BUILTINS),)
    expected = {
        "fp32": ((), None, tf.float32, tf.float32, (), builtins),
        "dynamic": (default, None, tf.float32, tf.float32, (), builtins),
        "float16": (default, None, tf.float32, tf.float32, (tf.float16,), builtins),
        "int8": (default, rep, tf.int8, tf.int8, (), (str(ops.TFLITE_BUILTINS_INT8),)),
        "16x8": (default, rep, tf.float32, tf.float32, (),
                 (str(ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8),)),
    }
    fields = tuple(_CONFIGURE_HINTS)
    for mode, want in expected.items():
        converter = _stand_in_converter(tf)
        run(student, converter, mode, rep, what=f"configure(converter, {mode!r}, dataset)",
            hint="set attributes on the converter you are given; return nothing")
        for field, got_value, want_value in zip(fields, _settings(converter), want, strict=True):
            if got_value != want_value:
                checks.fail(f"configure(converter, {mode!r}): {field}", want_value, got_value,
                            _CONFIGURE_HINTS[field])
    checks.passed("configure sets exactly the options each of the five modes needs.")


def check_predict_size(student, files: dict[str, bytes]) -> None:
    """Exercise 2: each file's size predicted from its tensor table within 2 %."""
    if not files:
        raise ValueError("check_predict_size needs at least one .tflite file")
    for name, content in files.items():
        rows = litert_tools.tensor_table(content)
        predicted = run(student, copy.deepcopy(rows), what=f"predict_size(rows of {name})",
                        hint="return a number of bytes")
        try:
            error = float(predicted) / len(content) - 1
        except (TypeError, ValueError):
            checks.fail(f"predict_size for {name} should be a number of bytes", "an int",
                        predicted, "return a number of bytes")
        if abs(error) > SIZE_TOLERANCE:
            checks.fail(f"predicted size of the {name} file is {100 * error:+.1f}% off "
                        f"(allowed ±{100 * SIZE_TOLERANCE:.0f}%)", f"{len(content):,} bytes",
                        f"{float(predicted):,.0f} bytes",
                        "count only the tensors the file stores, each element at its dtype's "
                        "width (int4 packs two per byte), plus every quantization parameter "
                        "stored with them: scales and min/max as float32, zero points as int64")
        checks.passed(f"{name}: predicted {float(predicted):,.0f} bytes, file "
                      f"{len(content):,} bytes ({100 * error:+.2f}%).")


def check_choose_variant(student) -> None:
    """Exercise 3: the fastest row meeting all three limits (inclusive), or None."""
    rows = [
        {"name": "fp32", "size_bytes": 14e6, "accuracy": 0.950, "latency_ms": 16.0},
        {"name": "dynamic", "size_bytes": 3.7e6, "accuracy": 0.949, "latency_ms": 20.0},
        {"name": "int8", "size_bytes": 3.9e6, "accuracy": 0.946, "latency_ms": 4.0},
        {"name": "float16", "size_bytes": 7.0e6, "accuracy": 0.950, "latency_ms": 15.0},
        {"name": "16x8", "size_bytes": 3.9e6, "accuracy": 0.950, "latency_ms": 90.0},
    ]
    cases = [((5e6, 0.94, 50), "int8"), ((5e6, 0.95, 100), "16x8"),
             ((8e6, 0.95, 20), "float16"), ((3.8e6, 0.9, 100), "dynamic"),
             ((3.9e6, 0.946, 4.0), "int8"), ((14e6, 0.95, 15.5), "float16"),
             ((5e6, 0.95, 50), None), ((1e6, 0.9, 100), None)]
    for (size, accuracy, latency), expected in cases:
        got = run(student, copy.deepcopy(rows), size, accuracy, latency,
                  what="choose_variant(rows, ...)", hint="return a name or None")
        if got != expected:
            checks.fail(f"choose_variant(size <= {size:,.0f}, accuracy >= {accuracy}, "
                        f"latency <= {latency})", expected, got,
                        "keep the rows that meet all three limits (a value equal to a limit "
                        "meets it), then take the lowest latency; None when nothing fits")
    checks.passed("choose_variant picks the fastest variant that fits, or None.")
