"""Clipping ranges for weights and activations: min-max, percentile and MSE search; lesson 14.

Introduced in lesson 14 (lesson 03 showed the observers on NumPy arrays; these work on torch
tensors, per tensor or per channel, and feed :mod:`helpers.quant_sim`). A range [lo, hi] trades
two errors: a wide range rounds every value coarsely, a narrow one clips the tails. Min-max
never clips; a percentile clips a fixed share of the tails; the MSE search tries a grid of
shrunken ranges and keeps the one with the lowest mean squared quantization error, which is
what matters most at 4 bits and below (Banner et al. 2019; Nagel et al. 2021, section 3.4).
"""

from __future__ import annotations

import math

import torch

RANGE_METHODS = ("minmax", "percentile", "mse")
MAX_SEARCH_VALUES = 200_000  # a random sample this large estimates an activation's MSE well


def fake_quant(x: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float, bits: int,
               symmetric: bool = True) -> torch.Tensor:
    """Quantize-dequantize x on the range [lo, hi] (tensors broadcast per channel); lesson 14.

    Symmetric: signed grid [-2^(b-1), 2^(b-1) - 1] with scale max(|lo|, |hi|) / (2^(b-1) - 1).
    Asymmetric: unsigned grid [0, 2^b - 1] on [min(lo, 0), max(hi, 0)] with a zero point.
    """
    lo, hi = torch.as_tensor(lo, dtype=x.dtype), torch.as_tensor(hi, dtype=x.dtype)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = torch.clamp(torch.maximum(-lo, hi) / qmax, min=1e-12)
        return torch.clamp(torch.round(x / scale), -qmax - 1, qmax) * scale
    qmax = 2**bits - 1
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    scale = torch.clamp((hi - lo) / qmax, min=1e-12)
    zero = torch.round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, qmax) - zero) * scale


def _per_channel(x: torch.Tensor, axis: int | None) -> tuple[torch.Tensor, tuple[int, ...]]:
    """x as (channels, values) and the shape that broadcasts a channel vector back."""
    if axis is None:
        return x.reshape(1, -1), (1,) * x.dim()
    shape = [1] * x.dim()
    shape[axis] = x.shape[axis]
    return x.transpose(0, axis).flatten(1), tuple(shape)


def minmax_range(x: torch.Tensor, axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(min, max) per tensor or per channel along ``axis``; lesson 14."""
    flat, shape = _per_channel(x.detach(), axis)
    return flat.amin(dim=1).reshape(shape), flat.amax(dim=1).reshape(shape)


def percentile_range(x: torch.Tensor, percent: float = 99.99,
                     axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper) percentiles per tensor or per channel; lesson 14."""
    if not 50 < percent <= 100:
        raise ValueError(f"percent must be in (50, 100], got {percent}")
    flat, shape = _per_channel(sample_values(x.detach(), axis), axis)
    q = torch.tensor([1 - percent / 100, percent / 100], dtype=flat.dtype)
    bounds = torch.quantile(flat, q, dim=1)
    return bounds[0].reshape(shape), bounds[1].reshape(shape)


def sample_values(x: torch.Tensor, axis: int | None = None, limit: int = MAX_SEARCH_VALUES,
                  seed: int = 0) -> torch.Tensor:
    """A fixed random sample of a large per-tensor x (flattened); x itself when small or per channel."""
    if axis is not None or x.numel() <= limit:
        return x
    generator = torch.Generator().manual_seed(seed)
    return x.reshape(-1)[torch.randperm(x.numel(), generator=generator)[:limit]]


def search_clip(x: torch.Tensor, bits: int, symmetric: bool = True, axis: int | None = None,
                grid: int = 100, min_ratio: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE-optimal (lo, hi): the min-max range shrunk by the best of ``grid`` ratios; lesson 14.

    The search is per tensor (``axis=None``) or per channel along ``axis``; ratio 1.0 (min-max)
    is in the grid, so the result's MSE is never above min-max's.
    """
    x = sample_values(x.detach(), axis)
    lo, hi = minmax_range(x, axis)
    best_err = torch.full((_per_channel(x, axis)[0].shape[0],), math.inf, dtype=x.dtype)
    best_ratio = torch.ones_like(best_err)
    shape = lo.shape
    for ratio in torch.linspace(min_ratio, 1.0, grid):
        err = (fake_quant(x, lo * ratio, hi * ratio, bits, symmetric) - x).pow(2)
        err = _per_channel(err, axis)[0].mean(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_ratio = torch.where(better, ratio, best_ratio)
    return lo * best_ratio.reshape(shape), hi * best_ratio.reshape(shape)


def choose_range(x: torch.Tensor, method: str, bits: int, symmetric: bool = True,
                 axis: int | None = None, percent: float = 99.99) -> tuple[torch.Tensor, torch.Tensor]:
    """The range of x by name: "minmax", "percentile" or "mse"; lesson 14."""
    if method == "minmax":
        return minmax_range(x, axis)
    if method == "percentile":
        return percentile_range(x, percent, axis)
    if method == "mse":
        return search_clip(x, bits, symmetric, axis)
    raise ValueError(f"unknown range method {method!r}; choose one of {RANGE_METHODS}")


def quant_mse(x: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float, bits: int,
              symmetric: bool = True) -> float:
    """Mean squared quantization error of x on the range [lo, hi]; lesson 14."""
    return float((fake_quant(x, lo, hi, bits, symmetric) - x).pow(2).mean())
