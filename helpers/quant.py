"""Affine quantization from first principles, in NumPy: the reference for lessons 02 to 04.

Introduced in lesson 02. A real value ``x`` maps to an integer ``q`` by

    q = clamp(round(x / scale) + zero_point, qmin, qmax)        (quantize)
    x_hat = (q - zero_point) * scale                              (dequantize)

``round`` is round-half-to-even, as in PyTorch's kernels. :func:`qparams` follows
PyTorch's MinMaxObserver: the range is widened to include 0.0 (so zero is exact), scale is
at least ``EPS``, and symmetric schemes put the zero point in the middle of the range.
"""

from __future__ import annotations

import numpy as np

EPS = float(np.finfo(np.float32).eps)


def integer_range(bits: int, signed: bool = True, restricted: bool = False) -> tuple[int, int]:
    """(qmin, qmax) for a bit width: int8 is (-128, 127), uint8 (0, 255), restricted (-127, 127)."""
    _check_bits(bits)
    if signed:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return (qmin + 1, qmax) if restricted else (qmin, qmax)
    if restricted:
        raise ValueError("the restricted range applies to signed integers only")
    return 0, 2**bits - 1


def qparams(x_min: float, x_max: float, bits: int = 8, symmetric: bool = False,
            signed: bool | None = None, restricted: bool = False) -> tuple[float, int]:
    """Scale and zero point for the range [x_min, x_max], as PyTorch's MinMaxObserver; lesson 02.

    Asymmetric schemes default to unsigned integers (quint8), symmetric ones to signed (qint8).
    """
    x_min, x_max = _check_range(x_min, x_max)
    signed = symmetric if signed is None else signed
    qmin, qmax = integer_range(bits, signed=signed, restricted=restricted)
    # float32 arithmetic throughout, as in PyTorch, so the results agree bit for bit.
    lo, hi = np.float32(min(x_min, 0.0)), np.float32(max(x_max, 0.0))
    if symmetric:
        bound = max(-lo, hi)
        scale = bound / np.float32((qmax - qmin) / 2)
        zero_point = 0 if signed else (qmin + qmax + 1) // 2
    else:
        scale = (hi - lo) / np.float32(qmax - qmin)
    scale = np.float32(max(scale, np.float32(EPS)))
    if not symmetric:
        zero_point = int(np.clip(qmin - np.round(lo / scale), qmin, qmax))
    scale = float(scale)
    return scale, int(zero_point)


def quantize(x: np.ndarray, scale: float | np.ndarray, zero_point: int | np.ndarray,
             qmin: int, qmax: int) -> np.ndarray:
    """q = clamp(round(x / scale) + zero_point, qmin, qmax), as int64; lesson 02."""
    x = _check_values(x)
    scale = np.asarray(scale, dtype=np.float32)
    if np.any(scale <= 0):
        raise ValueError("scale must be positive")
    # PyTorch multiplies by the float32 reciprocal of the scale; doing the same keeps ties
    # (values exactly between two levels) rounding the same way.
    inverse = np.float32(1.0) / scale
    q = np.round(x.astype(np.float32) * inverse) + np.asarray(zero_point)
    return np.clip(q, qmin, qmax).astype(np.int64)


def dequantize(q: np.ndarray, scale: float | np.ndarray, zero_point: int | np.ndarray) -> np.ndarray:
    """x_hat = (q - zero_point) * scale, as float32; lesson 02."""
    q = np.asarray(q)
    return ((q.astype(np.float32) - np.asarray(zero_point, dtype=np.float32))
            * np.asarray(scale, dtype=np.float32)).astype(np.float32)


def fake_quantize(x: np.ndarray, bits: int = 8, symmetric: bool = False,
                  x_min: float | None = None, x_max: float | None = None) -> np.ndarray:
    """Quantize then dequantize with min-max (or given) range: the values a model would see."""
    x = _check_values(x)
    lo = float(x.min()) if x_min is None else x_min
    hi = float(x.max()) if x_max is None else x_max
    scale, zero_point = qparams(lo, hi, bits, symmetric)
    qmin, qmax = integer_range(bits, signed=symmetric)
    return dequantize(quantize(x, scale, zero_point, qmin, qmax), scale, zero_point)


def sqnr_db(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: 10·log10(sum x² / sum (x - x_hat)²); lesson 02.

    Takes NumPy arrays or PyTorch tensors (lessons 06 and 07 compare model outputs with it).
    """
    x, x_hat = _float64(x), _float64(x_hat)
    if x.shape != x_hat.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {x_hat.shape}")
    noise = np.sum((x - x_hat) ** 2)
    if noise == 0:
        return float("inf")
    return float(10 * np.log10(np.sum(x**2) / noise))


def mse(x: np.ndarray, x_hat: np.ndarray) -> float:
    """Mean squared error between a tensor and its reconstruction."""
    x, x_hat = np.asarray(x, dtype=np.float64), np.asarray(x_hat, dtype=np.float64)
    if x.shape != x_hat.shape:
        raise ValueError(f"shapes differ: {x.shape} vs {x_hat.shape}")
    return float(np.mean((x - x_hat) ** 2))


def _float64(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def _check_bits(bits: int) -> None:
    if not isinstance(bits, (int, np.integer)) or not 2 <= bits <= 16:
        raise ValueError(f"bits must be an integer from 2 to 16, got {bits!r}")


def _check_range(x_min: float, x_max: float) -> tuple[float, float]:
    x_min, x_max = float(x_min), float(x_max)
    if not (np.isfinite(x_min) and np.isfinite(x_max)):
        raise ValueError(f"the range must be finite, got [{x_min}, {x_max}]: look for NaN or "
                         "inf in the tensor (np.isfinite(x).all())")
    if x_min > x_max:
        raise ValueError(f"x_min ({x_min}) is greater than x_max ({x_max}): swap them?")
    return x_min, x_max


def _check_values(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.size == 0:
        raise ValueError("cannot quantize an empty tensor")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise ValueError("the tensor holds NaN or inf; quantization needs finite values")
    return x


def error_split(x: np.ndarray, scale: float, zero_point: int, qmin: int,
                qmax: int) -> tuple[float, float]:
    """(rounding, clipping) parts of the quantization MSE; they add up to the total; lesson 02.

    Values inside the grid's range only suffer rounding (at most scale / 2); values outside
    it are clamped to the end of the grid, which is the clipping error.
    """
    x = _check_values(x).astype(np.float64)
    x_hat = dequantize(quantize(x, scale, zero_point, qmin, qmax), scale, zero_point)
    lo, hi = (qmin - zero_point) * scale, (qmax - zero_point) * scale
    clipped = (x < lo - scale / 2) | (x > hi + scale / 2)
    squared = (x - x_hat.astype(np.float64)) ** 2
    return float(squared[~clipped].sum() / x.size), float(squared[clipped].sum() / x.size)
