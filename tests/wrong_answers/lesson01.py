"""Wrong answers for the exercises of lesson 01; see harness.py."""

import numpy as np
from harness import Case, case, solution

from helpers.exercises import lesson01


@case("01", "decode_float", mistakes=("hidden_one_for_subnormals_too", "subnormal_exponent_minus_bias",
                                      "bias_is_a_power_of_two", "sign_ignored"))
def _decode_float() -> Case:
    def hidden_one_for_subnormals_too(sign, exponent, mantissa, exponent_bits, mantissa_bits):
        bias = 2 ** (exponent_bits - 1) - 1
        value = 2.0 ** (max(exponent, 1) - bias) * (1 + mantissa / 2**mantissa_bits)
        return -value if sign else value

    def subnormal_exponent_minus_bias(sign, exponent, mantissa, exponent_bits, mantissa_bits):
        bias = 2 ** (exponent_bits - 1) - 1
        fraction = mantissa / 2**mantissa_bits
        value = 2.0 ** -bias * fraction if exponent == 0 else 2.0 ** (exponent - bias) * (1 + fraction)
        return -value if sign else value

    def bias_is_a_power_of_two(sign, exponent, mantissa, exponent_bits, mantissa_bits):
        bias = 2 ** (exponent_bits - 1)
        fraction = mantissa / 2**mantissa_bits
        value = 2.0 ** (1 - bias) * fraction if exponent == 0 else 2.0 ** (exponent - bias) * (1 + fraction)
        return -value if sign else value

    def sign_ignored(sign, exponent, mantissa, exponent_bits, mantissa_bits):
        bias = 2 ** (exponent_bits - 1) - 1
        fraction = mantissa / 2**mantissa_bits
        return 2.0 ** (1 - bias) * fraction if exponent == 0 else 2.0 ** (exponent - bias) * (1 + fraction)

    wrong = {f.__name__: f for f in (hidden_one_for_subnormals_too, subnormal_exponent_minus_bias,
                                     bias_is_a_power_of_two, sign_ignored)}
    return Case(check=lesson01.check_decode_float, reference=solution("01", "decode_float"),
                wrong=wrong)


@case("01", "ulp", mistakes=("frexp_exponent_not_lowered", "relative_gap_not_a_power_of_two",
                             "one_mantissa_bit_too_many"))
def _ulp() -> Case:
    def frexp_exponent_not_lowered(x, mantissa_bits):
        _, exponent = np.frexp(np.abs(np.asarray(x, dtype=np.float64)))
        return np.ldexp(1.0, exponent - mantissa_bits)

    def relative_gap_not_a_power_of_two(x, mantissa_bits):
        return np.abs(np.asarray(x, dtype=np.float64)) * 2.0**-mantissa_bits

    def one_mantissa_bit_too_many(x, mantissa_bits):
        return 2.0 ** (np.floor(np.log2(np.abs(np.asarray(x, dtype=np.float64)))) - mantissa_bits - 1)

    wrong = {f.__name__: f for f in (frexp_exponent_not_lowered, relative_gap_not_a_power_of_two,
                                     one_mantissa_bit_too_many)}
    return Case(check=lesson01.check_ulp, reference=solution("01", "ulp"), wrong=wrong)


@case("01", "intensity", mistakes=("one_flop_per_multiply_add", "output_not_counted",
                                   "activations_at_weight_bytes"))
def _intensity() -> Case:
    def one_flop_per_multiply_add(batch, k, n, weight_bytes, act_bytes=4.0):
        return batch * k * n / (n * k * weight_bytes + (batch * k + batch * n) * act_bytes)

    def output_not_counted(batch, k, n, weight_bytes, act_bytes=4.0):
        return 2 * batch * k * n / (n * k * weight_bytes + batch * k * act_bytes)

    def activations_at_weight_bytes(batch, k, n, weight_bytes, act_bytes=4.0):
        return 2 * batch * k * n / ((n * k + batch * k + batch * n) * weight_bytes)

    wrong = {f.__name__: f for f in (one_flop_per_multiply_add, output_not_counted,
                                     activations_at_weight_bytes)}
    return Case(check=lesson01.check_intensity, reference=solution("01", "intensity"), wrong=wrong)
