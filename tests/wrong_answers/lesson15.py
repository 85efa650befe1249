"""Wrong answers for the exercises of lesson 15 (transformers and LLMs); see harness.py."""

import numpy as np
import torch
from harness import Case, case, solution

from helpers.exercises import lesson15

PENDING: set[str] = set()


def _reference(exercise: str):
    return solution("15", exercise, torch=torch, np=np)


# ------------------------------------------------------------------------------ smoothing_scales

@case("15", "smoothing_scales", mistakes=("alpha_on_the_wrong_side", "inverse_ratio", "mean_instead_of_max",
                                          "weight_max_over_output_rows"))
def _smoothing_scales() -> Case:
    def alpha_on_the_wrong_side(x_absmax, w, alpha):
        return x_absmax ** (1 - alpha) / w.abs().amax(dim=0) ** alpha

    def inverse_ratio(x_absmax, w, alpha):
        return w.abs().amax(dim=0) ** (1 - alpha) / x_absmax ** alpha

    def mean_instead_of_max(x_absmax, w, alpha):
        return x_absmax ** alpha / w.abs().mean(dim=0) ** (1 - alpha)

    def weight_max_over_output_rows(x_absmax, w, alpha):
        return x_absmax ** alpha / w.abs().amax(dim=1).mean() ** (1 - alpha)

    return Case(check=lesson15.check_smoothing_scales, reference=_reference("smoothing_scales"),
                wrong={f.__name__: f for f in (alpha_on_the_wrong_side, inverse_ratio, mean_instead_of_max,
                                               weight_max_over_output_rows)})


# ----------------------------------------------------------------------------------- unpack_int4

@case("15", "unpack_int4", mistakes=("high_nibble_first", "sign_not_restored", "offset_binary_sign",
                                     "ignores_count"))
def _unpack_int4() -> Case:
    def nibbles(packed):
        p = packed.to(torch.int16)
        return p & 0xF, (p >> 4) & 0xF

    def high_nibble_first(packed, count):
        lo, hi = nibbles(packed)
        codes = torch.stack([hi, lo], dim=1).flatten()[:count]
        return torch.where(codes >= 8, codes - 16, codes)

    def sign_not_restored(packed, count):
        lo, hi = nibbles(packed)
        return torch.stack([lo, hi], dim=1).flatten()[:count]

    def offset_binary_sign(packed, count):
        lo, hi = nibbles(packed)
        return torch.stack([lo, hi], dim=1).flatten()[:count] - 8

    def ignores_count(packed, count):
        lo, hi = nibbles(packed)
        codes = torch.stack([lo, hi], dim=1).flatten()
        return torch.where(codes >= 8, codes - 16, codes)

    return Case(check=lesson15.check_unpack_int4, reference=_reference("unpack_int4"),
                wrong={f.__name__: f for f in (high_nibble_first, sign_not_restored, offset_binary_sign,
                                               ignores_count)})


# ---------------------------------------------------------------------------- gptq_column_update

@case("15", "gptq_column_update", mistakes=("no_division_by_the_diagonal", "no_error_propagation",
                                            "error_added_instead_of_subtracted", "uses_the_column_of_hinv"))
def _gptq_column_update() -> Case:
    def no_division_by_the_diagonal(W, Hinv, i, q):
        out = W.clone()
        out[:, i:] -= (W[:, i] - q)[:, None] * Hinv[i, i:][None, :]
        return out

    def no_error_propagation(W, Hinv, i, q):
        out = W.clone()
        out[:, i] = q
        return out

    def error_added_instead_of_subtracted(W, Hinv, i, q):
        out = W.clone()
        err = (W[:, i] - q) / Hinv[i, i]
        out[:, i + 1:] += err[:, None] * Hinv[i, i + 1:][None, :]
        out[:, i] = q
        return out

    def uses_the_column_of_hinv(W, Hinv, i, q):
        out = W.clone()
        err = (W[:, i] - q) / Hinv[i, i]
        out[:, i:] -= err[:, None] * Hinv[i:, i][None, :]
        return out

    return Case(check=lesson15.check_gptq_column_update, reference=_reference("gptq_column_update"),
                wrong={f.__name__: f for f in (no_division_by_the_diagonal, no_error_propagation,
                                               error_added_instead_of_subtracted, uses_the_column_of_hinv)})


# ----------------------------------------------------------------------------- awq_search_scales

def _awq_like(x_stat, objective, inverse=True):
    def search(w, x, quantize, grid=20):
        reference = x @ w.T
        best = None
        for k in range(grid + 1):
            s = x_stat(w, x).clamp_min(1e-8) ** (k / grid)
            s = s / torch.sqrt(s.max() * s.min())
            w_hat = quantize(w * s) / s if inverse else quantize(w * s)
            error = objective(w, x, w_hat, reference)
            if best is None or error < best[0]:
                best = (error, s)
        return best[1]
    return search


@case("15", "awq_search_scales", mistakes=("no_inverse_scaling", "weight_error_objective",
                                           "scales_from_weight_magnitudes"))
def _awq_search_scales() -> Case:
    def activation_mean(w, x):
        return x.abs().mean(dim=0)

    def output_error(w, x, w_hat, reference):
        return float(((reference - x @ w_hat.T) ** 2).mean())

    def weight_error(w, x, w_hat, reference):
        return float(((w - w_hat) ** 2).mean())

    wrong = {
        "no_inverse_scaling": _awq_like(activation_mean, output_error, inverse=False),
        "weight_error_objective": _awq_like(activation_mean, weight_error),
        "scales_from_weight_magnitudes": _awq_like(lambda w, x: w.abs().mean(dim=0), output_error),
    }
    return Case(check=lesson15.check_awq_search_scales, reference=_reference("awq_search_scales"),
                wrong=wrong)


# ----------------------------------------------------------------------------------- mxfp4_block

def _fp4_nearest(mag, grid):
    return grid[(mag[:, None] - grid[None, :]).abs().argmin(dim=1)]


E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])


@case("15", "mxfp4_block", mistakes=("scale_not_a_power_of_two", "uniform_grid_instead_of_e2m1",
                                     "exponent_off_by_one", "ceil_instead_of_floor_in_the_exponent"))
def _mxfp4_block() -> Case:
    def scale_not_a_power_of_two(x):
        amax = x.abs().max()
        if amax == 0:
            return torch.zeros_like(x)
        scale = amax / 6
        return torch.sign(x) * _fp4_nearest((x.abs() / scale).clamp(max=6), E2M1) * scale

    def uniform_grid_instead_of_e2m1(x):
        amax = x.abs().max()
        if amax == 0:
            return torch.zeros_like(x)
        scale = 2.0 ** (torch.floor(torch.log2(amax)) - 2)
        grid = torch.arange(0, 6.5, 0.5)  # every multiple of 0.5: not what 3 magnitude bits hold
        return torch.sign(x) * _fp4_nearest((x.abs() / scale).clamp(max=6), grid) * scale

    def exponent_off_by_one(x):
        amax = x.abs().max()
        if amax == 0:
            return torch.zeros_like(x)
        scale = 2.0 ** (torch.floor(torch.log2(amax)) - 1)
        return torch.sign(x) * _fp4_nearest((x.abs() / scale).clamp(max=6), E2M1) * scale

    def ceil_instead_of_floor_in_the_exponent(x):
        amax = x.abs().max()
        if amax == 0:
            return torch.zeros_like(x)
        scale = 2.0 ** (torch.ceil(torch.log2(amax)) - 2)
        return torch.sign(x) * _fp4_nearest((x.abs() / scale).clamp(max=6), E2M1) * scale

    return Case(check=lesson15.check_mxfp4_block, reference=_reference("mxfp4_block"),
                wrong={f.__name__: f for f in (scale_not_a_power_of_two, uniform_grid_instead_of_e2m1,
                                               exponent_off_by_one,
                                               ceil_instead_of_floor_in_the_exponent)})


# ------------------------------------------------------------------------------- dequantize_q4_1

@case("15", "dequantize_q4_1", mistakes=("interleaved_nibbles", "minimum_ignored", "high_nibbles_first",
                                         "scale_and_minimum_swapped"))
def _dequantize_q4_1() -> Case:
    def fields(raw):
        d, m = np.frombuffer(raw[:4], dtype=np.float16).astype(np.float32)
        return d, m, np.frombuffer(raw[4:20], dtype=np.uint8)

    def interleaved_nibbles(raw):
        d, m, packed = fields(raw)
        return d * np.stack([packed & 0x0F, packed >> 4], axis=1).ravel().astype(np.float32) + m

    def minimum_ignored(raw):
        d, m, packed = fields(raw)
        return d * np.concatenate([packed & 0x0F, packed >> 4]).astype(np.float32)

    def high_nibbles_first(raw):
        d, m, packed = fields(raw)
        return d * np.concatenate([packed >> 4, packed & 0x0F]).astype(np.float32) + m

    def scale_and_minimum_swapped(raw):
        d, m, packed = fields(raw)
        return m * np.concatenate([packed & 0x0F, packed >> 4]).astype(np.float32) + d

    return Case(check=lesson15.check_dequantize_q4_1, reference=_reference("dequantize_q4_1"),
                wrong={f.__name__: f for f in (interleaved_nibbles, minimum_ignored, high_nibbles_first,
                                               scale_and_minimum_swapped)})
