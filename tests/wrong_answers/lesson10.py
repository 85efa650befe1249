"""Wrong answers for the exercises of lesson 10; see harness.py."""

import numpy as np
from harness import Case, case, solution
from litert_context import dense_file, test_images

from helpers.exercises import lesson10

# Exercises whose checks still live inline in the notebook. May only shrink.
PENDING = set()


@case("10", "make_representative_dataset", mistakes=("no_batch_axis", "float64_samples",
                                                     "bare_array_not_a_list"))
def _make_representative_dataset() -> Case:
    def no_batch_axis(images, samples):
        def generator():
            for image in np.asarray(images[:samples], dtype=np.float32):
                yield [image]
        return generator

    def float64_samples(images, samples):
        def generator():
            for image in images[:samples]:
                yield [image[None, ...]]
        return generator

    def bare_array_not_a_list(images, samples):
        def generator():
            for image in np.asarray(images[:samples], dtype=np.float32):
                yield image[None, ...]
        return generator

    return Case(check=lesson10.check_make_representative_dataset,
                reference=solution("10", "make_representative_dataset"),
                wrong={"no_batch_axis": no_batch_axis, "float64_samples": float64_samples,
                       "bare_array_not_a_list": bare_array_not_a_list})


@case("10", "quantize_input", mistakes=("truncation_instead_of_rounding", "cast_without_clipping",
                                        "int8_limits_for_every_dtype"))
def _quantize_input() -> Case:
    def truncation_instead_of_rounding(x, scale, zero_point, dtype):
        info = np.iinfo(dtype)
        return np.clip((x / scale).astype(np.int64) + zero_point, info.min, info.max).astype(dtype)

    def cast_without_clipping(x, scale, zero_point, dtype):
        return (np.round(x / scale) + zero_point).astype(np.int64).astype(dtype)

    def int8_limits_for_every_dtype(x, scale, zero_point, dtype):
        return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(dtype)

    return Case(check=lesson10.check_quantize_input,
                reference=solution("10", "quantize_input"),
                wrong={"truncation_instead_of_rounding": truncation_instead_of_rounding,
                       "cast_without_clipping": cast_without_clipping,
                       "int8_limits_for_every_dtype": int8_limits_for_every_dtype},
                context={"dequantize": solution("10", "quantize_input",
                                                name="dequantize_output")})


@case("10", "integer_model_accuracy", mistakes=("input_zero_point_left_out",
                                                "floats_cast_without_quantizing",
                                                "last_partial_batch_dropped"))
def _integer_model_accuracy() -> Case:
    def accuracy(lite, images, labels, quantize, batches):
        out_scale, out_zero = lite.output_detail["quantization"]
        correct = 0
        for start in batches(len(images)):
            logits = (lite.invoke(quantize(images[start : start + 128])).astype(np.float32)
                      - out_zero) * out_scale
            correct += int(np.sum(logits.argmax(axis=1) == labels[start : start + 128]))
        return correct / len(labels)

    def every_batch(n):
        return range(0, n, 128)

    def input_zero_point_left_out(lite, images, labels, batch_size=128):
        scale, _ = lite.input_detail["quantization"]
        info = np.iinfo(lite.input_dtype)
        return accuracy(lite, images, labels, lambda x: np.clip(
            np.round(x / scale), info.min, info.max).astype(lite.input_dtype), every_batch)

    def floats_cast_without_quantizing(lite, images, labels, batch_size=128):
        return accuracy(lite, images, labels, lambda x: x.astype(lite.input_dtype), every_batch)

    def last_partial_batch_dropped(lite, images, labels, batch_size=128):
        scale, zero = lite.input_detail["quantization"]
        info = np.iinfo(lite.input_dtype)
        return accuracy(lite, images, labels, lambda x: np.clip(
            np.round(x / scale) + zero, info.min, info.max).astype(lite.input_dtype),
            lambda n: range(0, n - 128 + 1, 128))

    images, labels = test_images()
    return Case(check=lesson10.check_integer_model_accuracy,
                reference=solution("10", "integer_model_accuracy"),
                wrong={"input_zero_point_left_out": input_zero_point_left_out,
                       "floats_cast_without_quantizing": floats_cast_without_quantizing,
                       "last_partial_batch_dropped": last_partial_batch_dropped},
                context={"uint8_model": dense_file("int8"), "int8_model": dense_file("int8-int8io"),
                         "images": images, "labels": labels})
