"""Wrong answers for the exercises of lesson 09; see harness.py."""

import numpy as np
from harness import Case, case, solution
from litert_context import dense_file, dense_model, test_images, tf

from helpers import tflite
from helpers.exercises import lesson09

# Exercises whose checks still live inline in the notebook. May only shrink.
PENDING = set()


def _convert(keras_model, configure) -> bytes:
    converter = tf().lite.TFLiteConverter.from_keras_model(keras_model)
    configure(converter)
    with tflite.quiet():
        return converter.convert()


@case("09", "convert_dynamic", mistakes=("full_integer_with_float_fallback", "float16_weights",
                                         "no_optimization"))
def _convert_dynamic() -> Case:
    lite = tf().lite
    calib = test_images()[0]  # stands in for calibration images: any images convert

    def full_integer_with_float_fallback(keras_model):
        def configure(c):
            c.optimizations = [lite.Optimize.DEFAULT]
            c.representative_dataset = tflite.representative_dataset(calib, 16)
        return _convert(keras_model, configure)

    def float16_weights(keras_model):
        def configure(c):
            c.optimizations = [lite.Optimize.DEFAULT]
            c.target_spec.supported_types = [tf().float16]
        return _convert(keras_model, configure)

    def no_optimization(keras_model):
        return _convert(keras_model, lambda c: None)

    return Case(check=lesson09.check_convert_dynamic,
                reference=solution("09", "convert_dynamic", tf=tf(), tflite=tflite),
                wrong={"full_integer_with_float_fallback": full_integer_with_float_fallback,
                       "float16_weights": float16_weights, "no_optimization": no_optimization},
                context={"model": dense_model()})


@case("09", "interpreter_accuracy", mistakes=("output_read_before_invoke",
                                              "count_instead_of_fraction",
                                              "input_index_read_as_output"))
def _interpreter_accuracy() -> Case:
    def output_read_before_invoke(interpreter, images, labels):
        inp = interpreter.get_input_details()[0]["index"]
        out = interpreter.get_output_details()[0]["index"]
        correct = 0
        for image, label in zip(images, labels, strict=True):
            interpreter.set_tensor(inp, image[None].astype(np.float32))
            correct += int(np.argmax(interpreter.get_tensor(out)[0]) == label)
            interpreter.invoke()
        return correct / len(labels)

    def count_instead_of_fraction(interpreter, images, labels):
        inp = interpreter.get_input_details()[0]["index"]
        out = interpreter.get_output_details()[0]["index"]
        correct = 0
        for image, label in zip(images, labels, strict=True):
            interpreter.set_tensor(inp, image[None].astype(np.float32))
            interpreter.invoke()
            correct += int(np.argmax(interpreter.get_tensor(out)[0]) == label)
        return correct

    def input_index_read_as_output(interpreter, images, labels):
        inp = interpreter.get_input_details()[0]["index"]
        correct = 0
        for image, label in zip(images, labels, strict=True):
            interpreter.set_tensor(inp, image[None].astype(np.float32))
            interpreter.invoke()
            correct += int(np.argmax(interpreter.get_tensor(inp)[0]) == label)
        return correct / len(labels)

    images, labels = test_images()
    return Case(check=lesson09.check_interpreter_accuracy,
                reference=solution("09", "interpreter_accuracy"),
                wrong={"output_read_before_invoke": output_read_before_invoke,
                       "count_instead_of_fraction": count_instead_of_fraction,
                       "input_index_read_as_output": input_index_read_as_output},
                context={"model_bytes": dense_file("fp32"), "images": images[:64],
                         "labels": labels[:64]})


@case("09", "largest_int8_weight", mistakes=("activations_counted", "any_dtype_counted",
                                             "size_by_first_dimension"))
def _largest_int8_weight() -> Case:
    def pick(rows, keep, size):
        best = max((r for r in rows if keep(r)), key=size)
        return best["name"], best["shape"], best["scales"]

    def activations_counted(rows):
        return pick(rows, lambda r: r["dtype"] == "int8", lambda r: int(np.prod(r["shape"])))

    def any_dtype_counted(rows):
        return pick(rows, lambda r: r["is_constant"], lambda r: int(np.prod(r["shape"])))

    def size_by_first_dimension(rows):
        return pick(rows, lambda r: r["is_constant"] and r["dtype"] == "int8",
                    lambda r: r["shape"][0])

    return Case(check=lesson09.check_largest_int8_weight,
                reference=solution("09", "largest_int8_weight"),
                wrong={"activations_counted": activations_counted,
                       "any_dtype_counted": any_dtype_counted,
                       "size_by_first_dimension": size_by_first_dimension})
