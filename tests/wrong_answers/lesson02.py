"""Wrong answers for the exercises of lesson 02; see harness.py."""

import numpy as np
from harness import Case, case, solution

from helpers import quant
from helpers.exercises import lesson02


@case("02", "qparams", mistakes=("range_not_widened_to_zero", "symmetric_scale_over_qmax",
                                 "zero_point_truncated"))
def _qparams() -> Case:
    def range_not_widened_to_zero(x_min, x_max, bits=8, symmetric=False):
        lo, hi = np.float32(x_min), np.float32(x_max)
        if symmetric:
            return float(max(max(-lo, hi) / np.float32(2**bits / 2 - 0.5), quant.EPS)), 0
        scale = np.float32(max((hi - lo) / np.float32(2**bits - 1), quant.EPS))
        return float(scale), int(np.clip(-np.round(lo / scale), 0, 2**bits - 1))

    def symmetric_scale_over_qmax(x_min, x_max, bits=8, symmetric=False):
        lo, hi = np.float32(min(x_min, 0.0)), np.float32(max(x_max, 0.0))
        if symmetric:
            return float(max(max(-lo, hi) / np.float32(2 ** (bits - 1) - 1), quant.EPS)), 0
        scale = np.float32(max((hi - lo) / np.float32(2**bits - 1), quant.EPS))
        return float(scale), int(np.clip(-np.round(lo / scale), 0, 2**bits - 1))

    def zero_point_truncated(x_min, x_max, bits=8, symmetric=False):
        lo, hi = np.float32(min(x_min, 0.0)), np.float32(max(x_max, 0.0))
        if symmetric:
            return float(max(max(-lo, hi) / np.float32((2**bits - 1) / 2), quant.EPS)), 0
        scale = np.float32(max((hi - lo) / np.float32(2**bits - 1), quant.EPS))
        return float(scale), int(np.clip(-np.trunc(lo / scale), 0, 2**bits - 1))

    wrong = {f.__name__: f for f in (range_not_widened_to_zero, symmetric_scale_over_qmax,
                                     zero_point_truncated)}
    return Case(check=lesson02.check_qparams, reference=solution("02", "qparams", quant=quant),
                wrong=wrong)


@case("02", "quantize", mistakes=("round_half_up", "zero_point_added_before_rounding", "no_clamp",
                                  "truncation_instead_of_rounding"))
def _quantize() -> Case:
    def round_half_up(x, scale, zero_point, qmin, qmax):
        q = np.floor(np.asarray(x, np.float32) / np.float32(scale) + 0.5) + zero_point
        return np.clip(q, qmin, qmax).astype(np.int64)

    def zero_point_added_before_rounding(x, scale, zero_point, qmin, qmax):
        q = np.round(np.asarray(x, np.float32) / np.float32(scale) + zero_point)
        return np.clip(q, qmin, qmax).astype(np.int64)

    def no_clamp(x, scale, zero_point, qmin, qmax):
        return (np.round(np.asarray(x, np.float32) / np.float32(scale)) + zero_point).astype(np.int64)

    def truncation_instead_of_rounding(x, scale, zero_point, qmin, qmax):
        q = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.int64) + zero_point
        return np.clip(q, qmin, qmax)

    wrong = {f.__name__: f for f in (round_half_up, zero_point_added_before_rounding, no_clamp,
                                     truncation_instead_of_rounding)}
    return Case(check=lesson02.check_quantize, reference=solution("02", "quantize"), wrong=wrong)


@case("02", "dequantize", mistakes=("subtraction_wraps_in_uint8", "multiply_then_subtract",
                                    "zero_point_added"))
def _dequantize() -> Case:
    def subtraction_wraps_in_uint8(q, scale, zero_point):
        return ((q - zero_point) * np.float32(scale)).astype(np.float32)

    def multiply_then_subtract(q, scale, zero_point):
        return (np.asarray(q, np.float32) * np.float32(scale) - np.float32(zero_point)).astype(np.float32)

    def zero_point_added(q, scale, zero_point):
        return ((np.asarray(q, np.float32) + np.float32(zero_point)) * np.float32(scale)).astype(np.float32)

    wrong = {f.__name__: f for f in (subtraction_wraps_in_uint8, multiply_then_subtract,
                                     zero_point_added)}
    return Case(check=lesson02.check_dequantize, reference=solution("02", "dequantize"), wrong=wrong)
