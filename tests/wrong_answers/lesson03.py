"""Wrong answers for the exercises of lesson 03; see harness.py."""

from __future__ import annotations

import numpy as np
from harness import Case, case, solution

from helpers import observers, quant
from helpers.exercises import lesson03

# Exercises whose checks still live inline in the notebook. May only shrink.
PENDING: set[str] = set()

EPS = np.finfo(np.float32).eps


def _channels(w, axis):
    moved = np.moveaxis(np.asarray(w, dtype=np.float32), axis, 0)
    return moved.reshape(moved.shape[0], -1)


@case("03", "per_channel_qparams", mistakes=("zero_scale_for_an_all_zero_channel",
                                             "channels_always_on_axis_0",
                                             "full_range_divisor_127_5_always",
                                             "largest_value_instead_of_largest_magnitude",
                                             "one_scale_for_the_whole_tensor"))
def _per_channel_qparams() -> Case:
    def zero_scale_for_an_all_zero_channel(w, axis=0, qmin=-127, qmax=127):
        scales = np.abs(_channels(w, axis)).max(1) / np.float32((qmax - qmin) / 2)
        return scales.astype(np.float32), np.zeros(len(scales), dtype=np.int64)

    def channels_always_on_axis_0(w, axis=0, qmin=-127, qmax=127):
        scales = np.abs(_channels(w, 0)).max(1) / np.float32((qmax - qmin) / 2)
        return np.maximum(scales, EPS).astype(np.float32), np.zeros(len(scales), dtype=np.int64)

    def full_range_divisor_127_5_always(w, axis=0, qmin=-127, qmax=127):
        scales = np.abs(_channels(w, axis)).max(1) / np.float32(127.5)
        return np.maximum(scales, EPS).astype(np.float32), np.zeros(len(scales), dtype=np.int64)

    def largest_value_instead_of_largest_magnitude(w, axis=0, qmin=-127, qmax=127):
        scales = _channels(w, axis).max(1) / np.float32((qmax - qmin) / 2)
        return np.maximum(scales, EPS).astype(np.float32), np.zeros(len(scales), dtype=np.int64)

    def one_scale_for_the_whole_tensor(w, axis=0, qmin=-127, qmax=127):
        scale = max(np.abs(w).max() / ((qmax - qmin) / 2), EPS)
        return np.full(w.shape[axis], scale, dtype=np.float32), np.zeros(w.shape[axis], np.int64)

    return Case(check=lesson03.check_per_channel_qparams,
                reference=solution("03", "per_channel_qparams"),
                wrong={f.__name__: f for f in (zero_scale_for_an_all_zero_channel,
                                               channels_always_on_axis_0,
                                               full_range_divisor_127_5_always,
                                               largest_value_instead_of_largest_magnitude,
                                               one_scale_for_the_whole_tensor)})


@case("03", "percentile_clip", mistakes=("min_and_max_no_clipping", "symmetric_clip_of_abs_values",
                                         "upper_tail_only", "percentile_given_as_a_fraction"))
def _percentile_clip() -> Case:
    def min_and_max_no_clipping(x, percentile=99.99):
        return float(x.min()), float(x.max())

    def symmetric_clip_of_abs_values(x, percentile=99.99):
        hi = float(np.percentile(np.abs(x), percentile))
        return -hi, hi

    def upper_tail_only(x, percentile=99.99):
        return float(x.min()), float(np.percentile(x, percentile))

    def percentile_given_as_a_fraction(x, percentile=99.99):
        lo, hi = np.percentile(x, [(100 - percentile) / 100, percentile / 100])
        return float(lo), float(hi)

    return Case(check=lesson03.check_percentile_clip, reference=solution("03", "percentile_clip"),
                wrong={f.__name__: f for f in (min_and_max_no_clipping, symmetric_clip_of_abs_values,
                                               upper_tail_only, percentile_given_as_a_fraction)})


@case("03", "mse_optimal_clip", mistakes=("maximum_without_search", "error_measured_without_clamping",
                                          "grid_stops_before_the_maximum",
                                          "largest_error_instead_of_smallest"))
def _mse_optimal_clip() -> Case:
    def candidates(x, grid, stop=None):
        return float(x.max()) * np.arange(1, (stop or grid) + 1) / grid

    def maximum_without_search(x, bits=8, grid=100):
        return float(x.max())

    def error_measured_without_clamping(x, bits=8, grid=100):
        errors = []
        for hi in candidates(x, grid):
            scale, zp = quant.qparams(0.0, hi, bits)
            x_hat = (np.round(x / scale) + zp - zp) * scale  # values beyond hi keep their level
            errors.append(float(np.mean((x - x_hat) ** 2)))
        return float(candidates(x, grid)[int(np.argmin(errors))])

    def grid_stops_before_the_maximum(x, bits=8, grid=100):
        his = candidates(x, grid, stop=grid - 1)
        errors = [observers.quantization_mse(x, 0.0, hi, bits) for hi in his]
        return float(his[int(np.argmin(errors))])

    def largest_error_instead_of_smallest(x, bits=8, grid=100):
        his = candidates(x, grid)
        errors = [observers.quantization_mse(x, 0.0, hi, bits) for hi in his]
        return float(his[int(np.argmax(errors))])

    return Case(check=lesson03.check_mse_optimal_clip,
                reference=solution("03", "mse_optimal_clip", observers=observers),
                wrong={f.__name__: f for f in (maximum_without_search,
                                               error_measured_without_clamping,
                                               grid_stops_before_the_maximum,
                                               largest_error_instead_of_smallest)})
