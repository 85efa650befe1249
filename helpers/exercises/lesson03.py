"""Checks for the exercises of lesson 03 (granularity and calibration).

Exercise 1 compares per-channel scales with PyTorch's ``PerChannelMinMaxObserver`` on weights
laid out as each framework stores them (output channel first, last, or in the middle), with
an all-zero channel, a channel whose largest magnitude is negative, and restricted ranges.
Exercises 2 and 3 use activations with skewed tails, so a clip that ignores one side, or a
search that does not clamp, picks a visibly different range.
"""

from __future__ import annotations

import numpy as np

from helpers import checks, observers

_call = checks.attempt_reported


# ---------------------------------------------------------------- Exercise 1: per_channel_qparams

def per_channel_cases() -> list[tuple[str, np.ndarray, int, int, int]]:
    """(what, w, axis, qmin, qmax): layouts of three frameworks, a dead channel, a negative peak."""
    rng = np.random.default_rng(3)
    conv = (rng.standard_normal((8, 3, 3, 3)) * rng.uniform(0.05, 2.0, (8, 1, 1, 1)))
    conv[5] = 0.0                      # a pruned (dead) output channel
    conv[2, 0, 0, 0] = -3.0 * np.abs(conv[2]).max()   # its largest magnitude is negative
    dense = rng.standard_normal((20, 6)) * rng.uniform(0.1, 1.0, 6)  # Keras kernel: (in, out)
    depthwise = rng.standard_normal((1, 3, 3, 10)) * rng.uniform(0.1, 3.0, 10)  # TFLite (1, kh, kw, C)
    depthwise[..., 7] = 0.0
    mixed = rng.standard_normal((4, 5, 6))  # channels in the middle
    return [
        ("a PyTorch conv weight (C_out, C_in, kh, kw), int8 restricted to [-127, 127]",
         conv.astype(np.float32), 0, -127, 127),
        ("a Keras Dense kernel (in, out), axis=1, full int8 [-128, 127]",
         dense.astype(np.float32), 1, -128, 127),
        ("a TFLite depthwise kernel (1, kh, kw, C), axis=3, 4-bit [-7, 7]",
         depthwise.astype(np.float32), 3, -7, 7),
        ("channels on the middle axis, axis=1, [-127, 127]", mixed.astype(np.float32), 1, -127, 127),
    ]


def _torch_reference(w: np.ndarray, axis: int, qmin: int, qmax: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    observer = torch.ao.quantization.PerChannelMinMaxObserver(
        ch_axis=axis, dtype=torch.qint8, qscheme=torch.per_channel_symmetric,
        quant_min=qmin, quant_max=qmax)
    observer(torch.from_numpy(w))
    scales, zero_points = observer.calculate_qparams()
    return scales.numpy(), zero_points.numpy()


def check_per_channel_qparams(student) -> None:
    """Exercise 1: symmetric per-channel (scale, zero_point) on any axis, any signed range."""
    for what, w, axis, qmin, qmax in per_channel_cases():
        got = _call(student, w, axis, qmin, qmax)
        if not (isinstance(got, tuple) and len(got) == 2):
            checks.fail(f"per_channel_qparams on {what} must return (scales, zero_points)",
                        "a pair of arrays", got, "return a tuple of two arrays, one value per channel")
        scales, zero_points = (np.asarray(v) for v in got)
        ref_scales, _ = _torch_reference(w, axis, qmin, qmax)
        channels = w.shape[axis]
        if scales.shape != (channels,) or zero_points.shape != (channels,):
            checks.fail(f"{what}: one scale and one zero point per channel", f"shape ({channels},)",
                        f"scales {scales.shape}, zero points {zero_points.shape}",
                        f"axis {axis} holds the {channels} output channels: reduce over every "
                        "other axis, whatever the number of dimensions")
        dead = np.all(np.moveaxis(w, axis, 0).reshape(channels, -1) == 0, axis=1)
        if not np.all(np.isfinite(scales)) or np.any(scales[dead] <= 0):
            checks.fail(f"{what}: an all-zero channel needs a usable scale",
                        "a positive, finite scale for every channel", scales,
                        "a channel of zeros has range 0, and a scale of 0 makes quantize divide "
                        "by zero; any positive scale represents its zeros exactly (PyTorch "
                        "clamps the scale to float32 eps)")
        live = ~dead
        result = checks.compare(scales[live].astype(np.float32), ref_scales[live], rtol=1e-6)
        if not result["approx"]:
            checks.check_close(f"{what}: scales vs PyTorch's PerChannelMinMaxObserver",
                               scales[live].astype(np.float32), ref_scales[live], atol=0, rtol=1e-6,
                               hint="symmetric: a channel's scale comes from its largest "
                               "magnitude, whichever its sign, spread over half of the integer "
                               "grid's width, (qmax - qmin) / 2: that half is 127 for [-127, 127] "
                               "but 127.5 for [-128, 127]")
        if np.any(zero_points != 0):
            checks.fail(f"{what}: symmetric signed zero points", "all 0", zero_points,
                        "symmetric quantization to signed integers puts 0.0 on the integer 0")
        checks.passed(f"per_channel_qparams on {what}: matches PyTorch.")


# ---------------------------------------------------------------- Exercise 2: percentile_clip

def skewed_activation(seed: int = 3) -> np.ndarray:
    """Mostly small values, a long right tail and a short left one, as after a residual add."""
    rng = np.random.default_rng(seed)
    body = rng.standard_normal(20_000) * 0.8 + 0.5
    right_tail = rng.exponential(3.0, 300) + 3.0
    left_tail = -rng.exponential(0.5, 60) - 2.0
    return np.concatenate([body, right_tail, left_tail, [40.0] * 5]).astype(np.float32)


def check_percentile_clip(student) -> None:
    """Exercise 2: both ends of the range at the percentiles, on a skewed activation."""
    x = skewed_activation()
    for p in (99.0, 99.9, 99.99):
        got = _call(student, x, p)
        expected = np.asarray(observers.percentile_range(x, p))
        result = checks.compare(np.asarray(got, dtype=np.float64), expected, atol=1e-5)
        if not result["approx"]:
            checks.check_close(f"percentile_clip(x, {p})", np.asarray(got, dtype=np.float64),
                               expected, atol=1e-5, hint=(
                                   "each end is a percentile of all values of x: hi is the value "
                                   f"below which {p} % of them lie, lo the value below which "
                                   f"{100 - p:.2g} % lie. This x is skewed (a long right tail, a "
                                   "short left one), so the two ends are not mirror images, and "
                                   "the maximum itself is never the answer"))
    checks.passed("percentile_clip matches the percentiles at 99, 99.9 and 99.99, on both tails.")


# ---------------------------------------------------------------- Exercise 3: mse_optimal_clip

def check_mse_optimal_clip(student) -> None:
    """Exercise 3: the grid search over hi, on a tailed and on a uniform activation."""
    rng = np.random.default_rng(7)
    tailed = np.maximum(rng.standard_normal(20_000), 0).astype(np.float32)
    tailed[:5] = 12.0  # a few outliers, like the tail of a real activation
    uniform = rng.uniform(0, 1, 20_000).astype(np.float32)  # no tail: clipping cannot pay
    cases = [("a post-ReLU activation with outliers", tailed, 8),
             ("the same activation", tailed, 4),
             ("a uniform activation (no tail)", uniform, 8)]
    for what, x, bits in cases:
        got = _call(student, x, bits, 50)
        expected = observers.mse_optimal_range(x, bits, grid=50)[1]
        result = checks.compare(np.float64(got), expected, rtol=1e-6)
        if not result["approx"]:
            checks.check_close(
                f"mse_optimal_clip on {what}, {bits} bits", np.float64(got), expected, rtol=1e-6,
                hint="try every candidate max(x) · i / grid for i = 1 … grid, the maximum itself "
                     "included, and keep the one whose quantization error is lowest. Measure that "
                     "error with the values beyond hi clamped to hi, as quantize does: without "
                     "the clamp, clipping looks free and the smallest range always wins")
    checks.check_true(_call(student, tailed, 4, 50) < _call(student, tailed, 8, 50),
                      "mse_optimal_clip matches the search on all three activations, and fewer "
                      "bits clip harder",
                      hint="with fewer levels, rounding error dominates, so a smaller range wins")
