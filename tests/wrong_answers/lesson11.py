"""Wrong answers for the exercises of lesson 11; see harness.py."""

import math

from harness import Case, case, solution
from litert_context import tf, wide_files

from helpers.exercises import lesson11

# Exercises whose checks still live inline in the notebook. May only shrink.
PENDING = set()


@case("11", "configure", mistakes=("uint8_io_for_int8", "dataset_for_every_mode",
                                   "int8_ops_for_16x8"))
def _configure() -> Case:
    reference = solution("11", "configure", tf=tf())

    def uint8_io_for_int8(converter, mode, representative_dataset):
        reference(converter, mode, representative_dataset)
        if mode == "int8":
            converter.inference_input_type = tf().uint8
            converter.inference_output_type = tf().uint8

    def dataset_for_every_mode(converter, mode, representative_dataset):
        reference(converter, mode, representative_dataset)
        if mode != "fp32":
            converter.representative_dataset = representative_dataset

    def int8_ops_for_16x8(converter, mode, representative_dataset):
        reference(converter, mode, representative_dataset)
        if mode == "16x8":
            converter.target_spec.supported_ops = [tf().lite.OpsSet.TFLITE_BUILTINS_INT8]

    return Case(check=lesson11.check_configure, reference=reference,
                wrong={"uint8_io_for_int8": uint8_io_for_int8,
                       "dataset_for_every_mode": dataset_for_every_mode,
                       "int8_ops_for_16x8": int8_ops_for_16x8})


@case("11", "predict_size", mistakes=("quantization_parameters_left_out",
                                      "activations_counted", "int4_counted_as_a_byte"))
def _predict_size() -> Case:
    width = {"float32": 4, "float16": 2, "int64": 8, "int32": 4, "int16": 2, "int8": 1,
             "uint8": 1, "bool": 1}

    def data_bytes(rows, keep, int4_width):
        return sum(math.ceil(math.prod(r["shape"]) * width.get(r["dtype"], int4_width))
                   for r in rows if keep(r))

    def params(rows):
        return sum(4 * (len(r["scales"]) + len(r["min"]) + len(r["max"]))
                   + 8 * len(r["zero_points"]) for r in rows)

    def quantization_parameters_left_out(rows):
        return data_bytes(rows, lambda r: r["stored"], 0.5)

    def activations_counted(rows):
        return data_bytes(rows, lambda r: True, 0.5) + params(rows)

    def int4_counted_as_a_byte(rows):
        return data_bytes(rows, lambda r: r["stored"], 1) + params(rows)

    return Case(check=lesson11.check_predict_size, reference=solution("11", "predict_size"),
                wrong={"quantization_parameters_left_out": quantization_parameters_left_out,
                       "activations_counted": activations_counted,
                       "int4_counted_as_a_byte": int4_counted_as_a_byte},
                context={"files": wide_files()})


@case("11", "choose_variant", mistakes=("smallest_instead_of_fastest", "limits_exclusive",
                                        "latency_limit_ignored"))
def _choose_variant() -> Case:
    def smallest_instead_of_fastest(rows, max_size_bytes, min_accuracy, max_latency_ms):
        fits = [r for r in rows if r["size_bytes"] <= max_size_bytes
                and r["accuracy"] >= min_accuracy and r["latency_ms"] <= max_latency_ms]
        return min(fits, key=lambda r: r["size_bytes"])["name"] if fits else None

    def limits_exclusive(rows, max_size_bytes, min_accuracy, max_latency_ms):
        fits = [r for r in rows if r["size_bytes"] < max_size_bytes
                and r["accuracy"] > min_accuracy and r["latency_ms"] < max_latency_ms]
        return min(fits, key=lambda r: r["latency_ms"])["name"] if fits else None

    def latency_limit_ignored(rows, max_size_bytes, min_accuracy, max_latency_ms):
        fits = [r for r in rows if r["size_bytes"] <= max_size_bytes
                and r["accuracy"] >= min_accuracy]
        return min(fits, key=lambda r: r["latency_ms"])["name"] if fits else None

    return Case(check=lesson11.check_choose_variant, reference=solution("11", "choose_variant"),
                wrong={"smallest_instead_of_fastest": smallest_instead_of_fastest,
                       "limits_exclusive": limits_exclusive,
                       "latency_limit_ignored": latency_limit_ignored})
