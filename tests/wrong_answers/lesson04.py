"""Wrong answers for the exercises of lesson 04; see harness.py."""

from __future__ import annotations

import math
from functools import cache

import numpy as np
from harness import Case, case, solution

from helpers import intops
from helpers.exercises import lesson04

# Exercises whose checks still live inline in the notebook. May only shrink.
PENDING: set[str] = set()


def _widen(*arrays):
    return [a.astype(np.int64) for a in arrays]


@case("04", "integer_matmul", mistakes=("zero_points_subtracted_before_the_product",
                                        "cross_term_sign_flipped", "constant_term_forgotten",
                                        "raw_product_in_the_narrow_input_type"))
def _integer_matmul() -> Case:
    def zero_points_subtracted_before_the_product(q_x, zp_x, q_w, zp_w):
        q_x, q_w = _widen(q_x, q_w)
        return ((q_x - zp_x) @ (q_w - zp_w).T).astype(np.int32)

    def cross_term_sign_flipped(q_x, zp_x, q_w, zp_w):
        q_x, q_w = _widen(q_x, q_w)
        acc = (q_x @ q_w.T + zp_w * q_x.sum(1, keepdims=True) - zp_x * q_w.sum(1)[None, :]
               + q_x.shape[1] * zp_x * zp_w)
        return acc.astype(np.int32)

    def constant_term_forgotten(q_x, zp_x, q_w, zp_w):
        q_x, q_w = _widen(q_x, q_w)
        acc = q_x @ q_w.T - zp_w * q_x.sum(1, keepdims=True) - zp_x * q_w.sum(1)[None, :]
        return acc.astype(np.int32)

    def raw_product_in_the_narrow_input_type(q_x, zp_x, q_w, zp_w):
        raw = q_x @ q_w.T  # uint8 @ int8 -> int16 in NumPy: wraps around
        acc = (raw.astype(np.int64) - zp_w * q_x.astype(np.int64).sum(1, keepdims=True)
               - zp_x * q_w.astype(np.int64).sum(1)[None, :] + q_x.shape[1] * zp_x * zp_w)
        return acc.astype(np.int32)

    return Case(check=lesson04.check_integer_matmul, reference=solution("04", "integer_matmul"),
                wrong={f.__name__: f for f in (zero_points_subtracted_before_the_product,
                                               cross_term_sign_flipped, constant_term_forgotten,
                                               raw_product_in_the_narrow_input_type)})


@case("04", "quantize_multiplier", mistakes=("ties_rounded_to_even", "no_renormalization_at_2_31",
                                             "mantissa_truncated"))
def _quantize_multiplier() -> Case:
    def ties_rounded_to_even(multiplier):
        if multiplier == 0:
            return 0, 0
        mantissa, shift = math.frexp(multiplier)
        m0 = round(mantissa * 2**31)  # Python's round(): half to even
        if m0 == 2**31:
            m0, shift = m0 // 2, shift + 1
        return m0, shift

    def no_renormalization_at_2_31(multiplier):
        if multiplier == 0:
            return 0, 0
        mantissa, shift = math.frexp(multiplier)
        return int(math.floor(mantissa * 2**31 + 0.5)), shift

    def mantissa_truncated(multiplier):
        if multiplier == 0:
            return 0, 0
        mantissa, shift = math.frexp(multiplier)
        return int(mantissa * 2**31), shift

    return Case(check=lesson04.check_quantize_multiplier,
                reference=solution("04", "quantize_multiplier"),
                wrong={f.__name__: f for f in (ties_rounded_to_even, no_renormalization_at_2_31,
                                               mantissa_truncated)})


def _float_requantize(acc, m0, shift, zp_out, qmin, qmax):
    scaled = np.round(np.asarray(acc) * np.asarray(m0) * 2.0 ** (np.asarray(shift) - 31))
    return np.clip(scaled + zp_out, qmin, qmax).astype(np.int64)


@case("04", "requantize", mistakes=("float_multiply_instead_of_fixed_point",
                                    "single_rounding_step", "plain_right_shift_instead_of_rdbpot",
                                    "zero_point_added_after_the_clamp"))
def _requantize() -> Case:
    def single_rounding_step(acc, m0, shift, zp_out, qmin, qmax):
        total = 31 - np.asarray(shift)
        scaled = (np.asarray(acc, dtype=np.int64) * m0 + (np.int64(1) << (total - 1))) >> total
        return np.clip(scaled + zp_out, qmin, qmax)

    def plain_right_shift_instead_of_rdbpot(acc, m0, shift, zp_out, qmin, qmax):
        acc = np.asarray(acc, dtype=np.int64)
        left, right = np.maximum(shift, 0), np.maximum(-np.asarray(shift), 0)
        high = intops.saturating_rounding_doubling_high_mul(acc << left, m0)
        return np.clip((high >> right) + zp_out, qmin, qmax)

    def zero_point_added_after_the_clamp(acc, m0, shift, zp_out, qmin, qmax):
        return np.clip(intops.multiply_by_quantized_multiplier(acc, m0, shift), qmin, qmax) + zp_out

    return Case(check=lesson04.check_requantize,
                reference=solution("04", "requantize", intops=intops),
                wrong={"float_multiply_instead_of_fixed_point": _float_requantize,
                       "single_rounding_step": single_rounding_step,
                       "plain_right_shift_instead_of_rdbpot": plain_right_shift_instead_of_rdbpot,
                       "zero_point_added_after_the_clamp": zero_point_added_after_the_clamp})


@cache
def tiny_litert_layer() -> dict:
    """A Dense(16, ReLU) on 48 inputs converted to full int8 by TFLite, its integers, its outputs."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from helpers import tflite

    tflite.import_tensorflow()
    import keras

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    dense = keras.Sequential([keras.Input((48,)), keras.layers.Dense(16, activation="relu")])
    dense.layers[0].set_weights([rng.normal(0, 0.3, (48, 16)).astype(np.float32) *
                                 rng.uniform(0.2, 1.5, 16).astype(np.float32),
                                 rng.normal(0, 0.5, 16).astype(np.float32)])
    calib = rng.uniform(0, 1, (64, 48)).astype(np.float32)
    content = tflite.convert_keras(dense, "int8-int8io", calib, samples=64)
    lite = tflite.LiteModel(content)
    weights = next(t for t in lite.tensors() if t["shape"] == (16, 48))
    bias = next(t for t in lite.tensors() if t["dtype"] == "int32")
    s_x, zp_x = lite.input_detail["quantization"]
    s_out, zp_out = lite.output_detail["quantization"]
    m0, shift = intops.quantize_multipliers(s_x, weights["scales"], s_out)
    layer = intops.LinearParams(
        q_w=lite.interpreter.get_tensor(weights["index"]).astype(np.int64),
        q_bias=lite.interpreter.get_tensor(bias["index"]).astype(np.int64),
        m0=m0, shift=shift, zp_x=int(zp_x), zp_out=int(zp_out), relu=True)
    q_x = lite.quantize_input(rng.uniform(0, 1, (400, 48)).astype(np.float32)).astype(np.int64)
    interp = Interpreter(model_content=content,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    detail = interp.get_input_details()[0]
    interp.resize_tensor_input(detail["index"], q_x.shape)
    interp.allocate_tensors()
    interp.set_tensor(detail["index"], q_x.astype(np.int8))
    interp.invoke()
    builtin = interp.get_tensor(interp.get_output_details()[0]["index"]).astype(np.int64)
    return {"layer": layer, "q_x": q_x, "litert_builtin": builtin}


@case("04", "int8_linear", mistakes=("float_multiplier_in_the_kernel", "truncation_instead_of_rounding",
                                     "relu_left_out_of_the_clamp", "int32_bias_forgotten",
                                     "float_multiplier_on_plain_copies",
                                     "single_rounding_requantization",
                                     "accumulator_passed_through_float"))
def _int8_linear() -> Case:
    integer_matmul = solution("04", "integer_matmul")
    requantize = solution("04", "requantize", intops=intops)
    reference = solution("04", "int8_linear", intops=intops, integer_matmul=integer_matmul,
                         requantize=requantize)

    def accumulate(q_x, layer):
        return integer_matmul(q_x, layer.zp_x, layer.q_w, layer.zp_w).astype(np.int64) + layer.q_bias

    def float_multiplier_in_the_kernel(q_x, layer):
        return _float_requantize(accumulate(q_x, layer), layer.m0, layer.shift, layer.zp_out,
                                 *layer.clamp())

    def float_multiplier_on_plain_copies(q_x, layer):
        # The same float rule, hidden from the traced arrays behind np.asarray copies.
        acc = np.asarray(accumulate(q_x, layer))
        m0, shift = np.asarray(layer.m0), np.asarray(layer.shift)
        return _float_requantize(acc, m0, shift, layer.zp_out, *layer.clamp())

    def truncation_instead_of_rounding(q_x, layer):
        acc = accumulate(q_x, layer)
        scaled = (acc * layer.m0) >> (31 - layer.shift)  # floor, no rounding at all
        return np.clip(scaled + layer.zp_out, *layer.clamp())

    def relu_left_out_of_the_clamp(q_x, layer):
        return requantize(accumulate(q_x, layer), layer.m0, layer.shift, layer.zp_out,
                          layer.qmin, layer.qmax)

    def int32_bias_forgotten(q_x, layer):
        acc = integer_matmul(q_x, layer.zp_x, layer.q_w, layer.zp_w).astype(np.int64)
        return requantize(acc, layer.m0, layer.shift, layer.zp_out, *layer.clamp())

    def single_rounding_requantization(q_x, layer):
        return intops.requantize_single_rounding(accumulate(q_x, layer), np.asarray(layer.m0),
                                                 np.asarray(layer.shift), layer.zp_out,
                                                 *layer.clamp())

    def accumulator_passed_through_float(q_x, layer):
        # Exact here (the sums fit in a double), but a float inside an integer kernel.
        acc = integer_matmul(q_x, layer.zp_x, layer.q_w, layer.zp_w) + layer.q_bias.astype(np.float64)
        return requantize(acc.astype(np.int64), layer.m0, layer.shift, layer.zp_out,
                          *layer.clamp())

    return Case(check=lesson04.check_int8_linear, reference=reference,
                wrong={f.__name__: f for f in (float_multiplier_in_the_kernel,
                                               truncation_instead_of_rounding,
                                               relu_left_out_of_the_clamp, int32_bias_forgotten,
                                               float_multiplier_on_plain_copies,
                                               single_rounding_requantization,
                                               accumulator_passed_through_float)},
                context=tiny_litert_layer())


@case("04", "fold_bn", mistakes=("eps_forgotten", "bias_folded_without_the_mean",
                                 "divided_by_variance_not_std", "scaled_along_input_channels"))
def _fold_bn() -> Case:
    def eps_forgotten(w, b, gamma, beta, mean, var, eps=1e-5):
        factor = gamma / np.sqrt(var)
        b = np.zeros_like(mean) if b is None else b
        return w * factor[:, None, None, None], (b - mean) * factor + beta

    def bias_folded_without_the_mean(w, b, gamma, beta, mean, var, eps=1e-5):
        factor = gamma / np.sqrt(var + eps)
        b = np.zeros_like(mean) if b is None else b
        return w * factor[:, None, None, None], b * factor + beta

    def divided_by_variance_not_std(w, b, gamma, beta, mean, var, eps=1e-5):
        factor = gamma / (var + eps)
        b = np.zeros_like(mean) if b is None else b
        return w * factor[:, None, None, None], (b - mean) * factor + beta

    def scaled_along_input_channels(w, b, gamma, beta, mean, var, eps=1e-5):
        factor = gamma / np.sqrt(var + eps)
        b = np.zeros_like(mean) if b is None else b
        return w * factor[None, :, None, None], (b - mean) * factor + beta

    return Case(check=lesson04.check_fold_bn, reference=solution("04", "fold_bn"),
                wrong={f.__name__: f for f in (eps_forgotten, bias_folded_without_the_mean,
                                               divided_by_variance_not_std,
                                               scaled_along_input_channels)})
