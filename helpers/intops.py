"""Integer-only inference in NumPy: how an int8 layer really computes; lesson 04.

After the parameters are set, everything here uses integers only:

    acc   = sum_k (q_x[k] - zp_x) * (q_w[k] - zp_w)         int8 x int8 products, int32 sum
    acc  += q_bias                                           bias in int32 at scale s_x * s_w
    q_out = clamp(zp_out + M0 * acc * 2^-n, qmin, qmax)      fixed-point requantization

with ``M = s_x * s_w / s_out`` written as an int32 ``M0`` in [2^30, 2^31) and a shift, as in
TensorFlow Lite's reference kernels (gemmlowp's ``SaturatingRoundingDoublingHighMul`` and
``RoundingDivideByPOT``). :func:`requantize_float` is the other rounding rule in use: FBGEMM
(PyTorch's x86 engine) keeps the bias in float and multiplies by a float32 multiplier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def _ints(q, name: str) -> np.ndarray:
    q = np.asarray(q)
    if q.size == 0:
        raise ValueError(f"{name} is empty: pass at least one value")
    if q.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integers (the quantized values), got {q.dtype}; "
                        "quantize it first (helpers.quant.quantize)")
    return q.astype(np.int64)


def integer_matmul(q_x, zp_x, q_w, zp_w=0) -> np.ndarray:
    """int32 accumulators of (q_x - zp_x) @ (q_w - zp_w).T via the zero-point cross terms; lesson 04.

    ``q_x`` is (N, K), ``q_w`` is (C, K); ``zp_w`` may be one number or one per row of ``q_w``.
    """
    q_x, q_w = _ints(q_x, "q_x"), _ints(q_w, "q_w")
    if q_x.ndim != 2 or q_w.ndim != 2 or q_x.shape[1] != q_w.shape[1]:
        raise ValueError(f"expected q_x (N, K) and q_w (C, K) with the same K, got "
                         f"{q_x.shape} and {q_w.shape}")
    zp_w = np.broadcast_to(np.asarray(zp_w, dtype=np.int64), (q_w.shape[0],))
    k = q_x.shape[1]
    # The expansion a kernel uses: one int8 GEMM plus row / column sums it can precompute.
    acc = (q_x @ q_w.T - q_x.sum(1, keepdims=True) * zp_w[None, :]
           - zp_x * q_w.sum(1)[None, :] + k * zp_x * zp_w[None, :])
    if acc.min() < INT32_MIN or acc.max() > INT32_MAX:
        raise OverflowError("the accumulator does not fit in int32; K is too large")
    return acc.astype(np.int32)


def quantize_bias(bias, scale_x: float, scale_w) -> np.ndarray:
    """The bias as int32 at scale s_x * s_w (per channel if s_w is), zero point 0; lesson 04."""
    bias = np.asarray(bias, dtype=np.float64)
    if bias.size and not np.all(np.isfinite(bias)):
        raise ValueError("the bias holds NaN or inf")
    # TFLite computes the bias scale in double from the float32 scales, then rounds half away.
    scale = np.float64(np.float32(scale_x)) * np.asarray(scale_w, dtype=np.float32).astype(np.float64)
    q = np.sign(bias) * np.floor(np.abs(bias) / scale + 0.5)
    return np.clip(q, INT32_MIN, INT32_MAX).astype(np.int32)


def quantize_multiplier(multiplier: float) -> tuple[int, int]:
    """Write M > 0 as M0 * 2^(shift - 31) with M0 an int32 in [2^30, 2^31); lesson 04.

    The same as TensorFlow Lite's ``QuantizeMultiplier`` (returns ``(M0, shift)``).
    """
    multiplier = float(multiplier)
    if not math.isfinite(multiplier) or multiplier < 0:
        raise ValueError(f"the multiplier must be finite and >= 0, got {multiplier}")
    if multiplier == 0:
        return 0, 0
    mantissa, shift = math.frexp(multiplier)  # multiplier = mantissa * 2^shift, mantissa in [0.5, 1)
    m0 = int(math.floor(mantissa * 2**31 + 0.5))  # std::round: half away from zero
    if m0 == 2**31:  # the mantissa rounded up to 1.0
        m0 //= 2
        shift += 1
    if shift < -31:  # too small to represent: TFLite flushes it to zero
        return 0, 0
    return m0, shift


def quantize_multipliers(scale_x: float, scale_w, scale_out: float) -> tuple[np.ndarray, np.ndarray]:
    """(M0, shift) arrays for M = s_x · s_w / s_out per output channel, in double as TFLite; lesson 04."""
    scale_w = np.atleast_1d(np.asarray(scale_w, dtype=np.float32)).astype(np.float64)
    if np.any(scale_w <= 0) or scale_x <= 0 or scale_out <= 0:
        raise ValueError("scales must be positive")
    m = np.float64(np.float32(scale_x)) * scale_w / np.float64(np.float32(scale_out))
    pairs = [quantize_multiplier(v) for v in m]
    return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp's SRDHM: round(a * b / 2^31), ties rounded up (-1.5 -> -1), saturating; lesson 04."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    # C++ integer division truncates toward zero; NumPy's >> floors, so handle signs apart.
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))
    return np.where(overflow, INT32_MAX, high).astype(np.int64)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """x / 2^exponent rounded to nearest, ties away from zero (gemmlowp); lesson 04."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    if np.any(exponent < 0) or np.any(exponent > 31):
        raise ValueError("the exponent must be in 0..31")
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(acc, m0, shift) -> np.ndarray:
    """acc * M0 * 2^(shift - 31) with TFLite's two roundings (SRDHM, then RDBPOT); lesson 04."""
    acc = np.asarray(acc, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    return rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(acc << left, m0), right)


def requantize(acc, m0, shift, zp_out: int, qmin: int, qmax: int) -> np.ndarray:
    """int32 accumulators to output integers: fixed-point multiply, add zp_out, clamp; lesson 04.

    Put ReLU in the clamp by passing ``qmin = zp_out`` (the integer that means 0.0).
    """
    if qmin > qmax:
        raise ValueError(f"qmin ({qmin}) is greater than qmax ({qmax})")
    scaled = multiply_by_quantized_multiplier(acc, m0, shift)
    return np.clip(scaled + zp_out, qmin, qmax).astype(np.int64)


def requantize_single_rounding(acc, m0, shift, zp_out: int, qmin: int, qmax: int) -> np.ndarray:
    """acc · M0 · 2^(shift − 31) rounded once (halves up), as TFLITE_SINGLE_ROUNDING builds; lesson 04."""
    if qmin > qmax:
        raise ValueError(f"qmin ({qmin}) is greater than qmax ({qmax})")
    acc = np.asarray(acc, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    if np.any(total < 1) or np.any(total > 62):
        raise ValueError("31 - shift must be in 1..62")
    # Python integers would not overflow, but int64 does beyond |acc · M0| >= 2^63: guard it.
    if np.max(np.abs(acc)) >= 2**31:
        raise OverflowError("accumulators must fit in int32")
    scaled = (acc * np.asarray(m0, dtype=np.int64) + (np.int64(1) << (total - 1))) >> total
    return np.clip(scaled + zp_out, qmin, qmax)


def requantize_float(acc, bias, scale_x: float, scale_w, scale_out: float, zp_out: int,
                     qmin: int, qmax: int) -> np.ndarray:
    """FBGEMM's rule (PyTorch x86): float bias, float32 multiplier, round half to even; lesson 04."""
    acc = np.asarray(acc, dtype=np.int64).astype(np.float32)
    act_times_w = np.float32(scale_x) * np.asarray(scale_w, dtype=np.float32)
    multiplier = (act_times_w / np.float32(scale_out)).astype(np.float32)
    raw = acc
    if bias is not None:
        raw = (acc + np.asarray(bias, dtype=np.float32) / act_times_w).astype(np.float32)
    rounded = np.rint((raw * multiplier).astype(np.float32)).astype(np.int64)
    return np.clip(rounded + zp_out, qmin, qmax)


def output_range(zp_out: int, qmin: int, qmax: int, relu: bool = False) -> tuple[int, int]:
    """The clamp bounds of a layer's output; ReLU only raises the lower bound to zp_out; lesson 04."""
    return (max(qmin, zp_out), qmax) if relu else (qmin, qmax)


def quantized_linear(q_x, zp_x: int, q_w, q_bias, m0, shift, zp_out: int, qmin: int = -128,
                     qmax: int = 127, zp_w=0) -> np.ndarray:
    """An integer-only Linear layer: GEMM in int32, int32 bias, fixed-point requantize; lesson 04."""
    acc = integer_matmul(q_x, zp_x, q_w, zp_w).astype(np.int64)
    if q_bias is not None:
        acc = acc + _ints(q_bias, "q_bias")[None, :]
    return requantize(acc, m0, shift, zp_out, qmin, qmax)


@dataclass(frozen=True)
class LinearParams:
    """The integers an int8 Linear (+ fused ReLU) layer runs on, read from a model; lesson 04.

    ``q_w`` is (C, K) int8, ``q_bias`` (C,) int32 at scale s_x · s_w, ``m0`` and ``shift`` one
    per output channel (:func:`quantize_multipliers`); ``qmin``/``qmax`` bound the output type.
    """

    q_w: np.ndarray
    q_bias: np.ndarray
    m0: np.ndarray
    shift: np.ndarray
    zp_x: int
    zp_out: int
    zp_w: int = 0
    qmin: int = -128
    qmax: int = 127
    relu: bool = False

    def clamp(self) -> tuple[int, int]:
        """The output clamp, with the ReLU folded in when the layer has one."""
        return output_range(self.zp_out, self.qmin, self.qmax, relu=self.relu)

    def __call__(self, q_x) -> np.ndarray:
        """The reference forward pass: :func:`quantized_linear` with these parameters."""
        return quantized_linear(q_x, self.zp_x, self.q_w, self.q_bias, self.m0, self.shift,
                                self.zp_out, *self.clamp(), zp_w=self.zp_w)


def int16_pair_matmul(q_x, q_w, chunk: int = 64) -> np.ndarray:
    """u8 x s8 products summed in pairs into *saturating* int16, then in int32; lesson 04.

    What x86 AVX2 without VNNI computes (``vpmaddubsw``): FBGEMM's path for PyTorch's int8
    GEMM there. Two large products overflow int16 and stick at ±32767, so full 8-bit
    activations can differ from the exact sum; 7-bit ones (``reduce_range``) never do.
    ``q_x`` (N, K) holds uint8 values (zero point already folded in), ``q_w`` (C, K) int8.
    """
    q_x, q_w = _ints(q_x, "q_x"), _ints(q_w, "q_w")
    if q_x.ndim != 2 or q_w.ndim != 2 or q_x.shape[1] != q_w.shape[1]:
        raise ValueError(f"expected q_x (N, K) and q_w (C, K) with the same K, got "
                         f"{q_x.shape} and {q_w.shape}")
    if q_x.min() < 0 or q_x.max() > 255 or q_w.min() < -128 or q_w.max() > 127:
        raise ValueError("expected uint8 values in q_x and int8 values in q_w")
    if q_x.shape[1] % 2:  # an odd K gets one zero product to pair the last one with
        q_x = np.pad(q_x, ((0, 0), (0, 1)))
        q_w = np.pad(q_w, ((0, 0), (0, 1)))
    x_even, x_odd = q_x[:, 0::2].astype(np.int32), q_x[:, 1::2].astype(np.int32)
    w_even, w_odd = q_w[:, 0::2].astype(np.int32), q_w[:, 1::2].astype(np.int32)
    out = np.empty((q_x.shape[0], q_w.shape[0]), dtype=np.int64)
    for start in range(0, len(q_x), chunk):  # (chunk, C, K/2) at a time keeps memory small
        rows = slice(start, start + chunk)
        pairs = x_even[rows, None, :] * w_even[None] + x_odd[rows, None, :] * w_odd[None]
        out[rows] = np.clip(pairs, -(2**15), 2**15 - 1).sum(-1, dtype=np.int64)
    return out


def im2col(x, kernel: int, stride: int = 1, padding: int = 0, pad_value: int = 0) -> np.ndarray:
    """Patches of an (N, C, H, W) tensor as rows (N*OH*OW, C*k*k), padded with pad_value; lesson 04.

    For a quantized input pad with its zero point: the integer that means 0.0.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"expected an (N, C, H, W) tensor, got shape {x.shape}")
    if kernel < 1 or stride < 1 or padding < 0:
        raise ValueError("need kernel >= 1, stride >= 1 and padding >= 0")
    n, c, h, w = x.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)),
               constant_values=pad_value)
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {kernel} is larger than the padded input {h}x{w}")
    cols = np.empty((n, oh, ow, c, kernel, kernel), dtype=x.dtype)
    for i in range(kernel):
        for j in range(kernel):
            cols[:, :, :, :, i, j] = x[:, :, i:i + stride * oh:stride,
                                       j:j + stride * ow:stride].transpose(0, 2, 3, 1)
    return cols.reshape(n * oh * ow, c * kernel * kernel)


def quantized_conv2d(q_x, zp_x: int, q_w, q_bias, m0, shift, zp_out: int, stride: int = 1,
                     padding: int = 0, qmin: int = -128, qmax: int = 127) -> np.ndarray:
    """An integer-only Conv2d as im2col + :func:`quantized_linear`; returns (N, C_out, OH, OW)."""
    q_x, q_w = _ints(q_x, "q_x"), _ints(q_w, "q_w")
    if q_w.ndim != 4 or q_w.shape[2] != q_w.shape[3] or q_w.shape[1] != q_x.shape[1]:
        raise ValueError(f"expected weights (C_out, C_in, k, k) matching the input's channels, "
                         f"got {q_w.shape} for input {q_x.shape}")
    n, _, h, w = q_x.shape
    k = q_w.shape[2]
    cols = im2col(q_x, k, stride, padding, pad_value=zp_x)
    out = quantized_linear(cols, zp_x, q_w.reshape(q_w.shape[0], -1), q_bias, m0, shift, zp_out,
                           qmin, qmax)
    oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)


def fold_batch_norm(weight, bias, gamma, beta, mean, var, eps: float = 1e-5):
    """Fold BN into the conv before it: w' = w·γ/σ, b' = (b − μ)·γ/σ + β; lesson 04."""
    weight = np.asarray(weight, dtype=np.float64)
    c = weight.shape[0]
    stats = [np.asarray(v, dtype=np.float64) for v in (gamma, beta, mean, var)]
    if any(v.shape != (c,) for v in stats):
        raise ValueError(f"gamma, beta, mean and var must each have shape ({c},), one per output "
                         f"channel, got {[v.shape for v in stats]}")
    gamma, beta, mean, var = stats
    if np.any(var + eps <= 0):
        raise ValueError("running variance + eps must be positive")
    bias = np.zeros(c) if bias is None else np.asarray(bias, dtype=np.float64)
    factor = gamma / np.sqrt(var + eps)
    folded_w = weight * factor.reshape((c,) + (1,) * (weight.ndim - 1))
    folded_b = (bias - mean) * factor + beta
    return folded_w.astype(np.float32), folded_b.astype(np.float32)


def lsb_difference(a, b) -> dict:
    """Compare two integer outputs: fraction that differ and the largest difference in LSBs."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    diff = np.abs(a - b)
    return {"mismatch_fraction": float(np.mean(diff > 0)), "max_lsb": int(diff.max()),
            "n_outputs": int(diff.size)}
