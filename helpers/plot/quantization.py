"""Figures for lesson 02 (affine quantization): grids, errors, SQNR against bit width."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers import quant
from helpers.plot import COLORS, _as_numpy

# A grid is (scale, zero_point, qmin, qmax); its levels are (q - zero_point) * scale.
Grid = tuple[float, int, int, int]


def levels(grid: Grid) -> np.ndarray:
    """The real values a grid can represent, (qmin..qmax - zero_point) * scale; lesson 02."""
    scale, zero_point, qmin, qmax = grid
    return quant.dequantize(np.arange(qmin, qmax + 1), scale, zero_point)


def grid_over_histogram(x, grid: Grid, ax=None, title: str = "", bins: int = 120,
                        log: bool = False):
    """Histogram of x with the grid's levels over it, clipped regions shaded; lesson 02."""
    x = _as_numpy(x)
    ax = ax or plt.subplots(figsize=(7, 3.4))[1]
    values = levels(grid)
    lo, hi = min(x.min(), values[0]), max(x.max(), values[-1])
    ax.hist(x, bins=np.linspace(lo, hi, bins + 1), color=COLORS["before"], alpha=0.8, log=log)
    if len(values) <= 64:  # individual levels are visible only when there are few of them
        for value in values:
            ax.axvline(value, color=COLORS["after"], lw=0.7, alpha=0.8)
    else:
        ax.plot(values, np.zeros_like(values), "|", color=COLORS["after"], ms=12)
    ax.axvspan(lo, values[0], color="grey", alpha=0.2, lw=0)
    ax.axvspan(values[-1], hi, color="grey", alpha=0.2, lw=0, label="clipped")
    ax.set_xlabel("value")
    ax.set_ylabel("count (log scale)" if log else "count")
    ax.set_title(title or f"{len(values)} levels, scale {grid[0]:.3g}, zero point {grid[1]}")
    ax.grid(alpha=0.3)
    return ax.figure


def mapping(grid: Grid, x_range: tuple[float, float], ax=None):
    """The staircase x -> x_hat = dequantize(quantize(x)) over a range of x; lesson 02."""
    ax = ax or plt.subplots(figsize=(4.5, 4))[1]
    x = np.linspace(*x_range, 2000, dtype=np.float32)
    scale, zero_point, qmin, qmax = grid
    x_hat = quant.dequantize(quant.quantize(x, scale, zero_point, qmin, qmax), scale, zero_point)
    ax.plot(x, x, color="grey", lw=0.8, ls="--", label="x_hat = x")
    ax.plot(x, x_hat, color=COLORS["after"], lw=1.5, label="x_hat")
    ax.set_xlabel("x (real value)")
    ax.set_ylabel("x_hat (dequantized)")
    ax.set_title("quantize, then dequantize")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax.figure


def error_histogram(x, x_hat, scale: float, ax=None, bins: int = 80, log: bool = False):
    """Histogram of x - x_hat with the ±scale/2 rounding bound marked; lesson 02."""
    error = _as_numpy(x) - _as_numpy(x_hat)
    ax = ax or plt.subplots(figsize=(6, 3.4))[1]
    half = scale / 2
    span = max(np.abs(error).max(), half) * 1.05
    ax.hist(error, bins=np.linspace(-span, span, bins + 1), color=COLORS["after"], log=log)
    for bound in (-half, half):
        ax.axvline(bound, color="black", ls="--", lw=1)
    ax.set_xlabel("error x - x_hat (dashed: ±scale/2)")
    ax.set_ylabel("count (log scale)" if log else "count")
    ax.set_title("quantization error")
    ax.grid(alpha=0.3)
    return ax.figure


def sqnr_vs_bits(bits: Sequence[int], sqnr: Sequence[float], slope: float | None = None):
    """Measured SQNR (dB) against bit width, with the 6.02 dB-per-bit rule; lesson 02."""
    bits, sqnr = np.asarray(bits), np.asarray(sqnr)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot(bits, sqnr, "o-", color=COLORS["before"], label="measured")
    rule = sqnr[-1] + 6.02 * (bits - bits[-1])
    ax.plot(bits, rule, "--", color="grey", label="6.02 dB per bit (through the last point)")
    for b, s in zip(bits, sqnr, strict=True):
        ax.annotate(f"{s:.1f}", (b, s), textcoords="offset points", xytext=(-8, 7), fontsize=8)
    ax.set_xlabel("bits")
    ax.set_ylabel("SQNR (dB)")
    suffix = f": measured slope {slope:.2f} dB/bit" if slope is not None else ""
    ax.set_title(f"Each bit buys about 6 dB{suffix}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def rounding_vs_clipping(clip: Sequence[float], rounding: Sequence[float],
                         clipping: Sequence[float], bits: int):
    """Stacked rounding and clipping MSE against the clipping threshold; lesson 02."""
    clip = np.asarray(clip)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.stackplot(clip, rounding, clipping, labels=["rounding error", "clipping error"],
                 colors=[COLORS["before"], COLORS["after"]], alpha=0.85)
    total = np.asarray(rounding) + np.asarray(clipping)
    best = int(np.argmin(total))
    ax.axvline(clip[best], color="black", ls="--", lw=1,
               label=f"lowest total at {clip[best]:.2f}")
    ax.set_yscale("log")
    ax.set_xlabel("clipping threshold (fraction of max |x|)")
    ax.set_ylabel("MSE contribution")
    ax.set_title(f"{bits}-bit: clip too little and rounding dominates; too much and clipping does")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center")
    fig.tight_layout()
    return fig


def compare_grids(x, grids: Mapping[str, Grid], title: str = "", log: bool = False):
    """One histogram-with-grid panel per scheme, side by side, same x axis; lesson 02."""
    if not grids:
        raise ValueError("compare_grids() needs at least one named grid")
    fig, axes = plt.subplots(1, len(grids), figsize=(5.5 * len(grids), 3.6), sharex=True,
                             squeeze=False)
    for ax, (name, grid) in zip(axes[0], grids.items(), strict=True):
        grid_over_histogram(x, grid, ax=ax, log=log)
        used = np.unique(quant.quantize(_as_numpy(x), *grid)).size
        ax.set_title(f"{name}: {used} of {grid[3] - grid[2] + 1} levels used")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
