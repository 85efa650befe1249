"""Figures for lesson 03: channel ranges, granularity, observers' clip ranges, calibration size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

OBSERVER_COLORS = {"min-max": "#E45756", "moving-average": "#F58518", "percentile": "#54A24B",
                   "mse": "#4C78A8"}


def channel_ranges(ranges: Mapping[str, np.ndarray], title: str = "largest |weight| per output channel"):
    """Bars of each output channel's largest |weight|, one panel per labelled array; lesson 03."""
    fig, axes = plt.subplots(1, len(ranges), figsize=(5.2 * len(ranges), 3.6), squeeze=False)
    for ax, (label, values) in zip(axes[0], ranges.items(), strict=True):
        values = np.asarray(values, dtype=float)
        ax.bar(np.arange(len(values)), values, color="#4C78A8")
        ax.axhline(values.max(), color="#E45756", ls="--", lw=1, label="per-tensor range")
        ax.set_title(f"{label}: max/min = {values.max() / values.min():.1f}x")
        ax.set_xlabel("output channel")
        ax.set_ylabel("max |weight|")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def granularity_sqnr(rows: Sequence[dict], title: str = "SQNR by granularity"):
    """SQNR per scheme and bit width (rows from granularity.compare_schemes), overhead labelled."""
    schemes = list(dict.fromkeys(r["scheme"] for r in rows))
    bits = sorted({r["bits"] for r in rows}, reverse=True)
    fig, ax = plt.subplots(figsize=(8.5, 4))
    width = 0.8 / len(bits)
    for i, b in enumerate(bits):
        chosen = {r["scheme"]: r for r in rows if r["bits"] == b}
        values = [chosen[s]["sqnr_db"] if s in chosen else np.nan for s in schemes]
        bars = ax.bar(np.arange(len(schemes)) + i * width, values, width, label=f"{b}-bit")
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
    overhead = {r["scheme"]: r["overhead_bits_per_weight"] for r in rows}
    labels = [f"{s}\n+{overhead[s]:.3f} bit/w" for s in schemes]
    ax.set_xticks(np.arange(len(schemes)) + width * (len(bits) - 1) / 2, labels, fontsize=8)
    ax.set_ylabel("SQNR (dB, higher is better)")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def activation_ranges(values, ranges: Mapping[str, tuple[float, float]], title: str = "activation",
                      bins: int = 200):
    """Log-count histogram of an activation with each observer's clip range drawn; lesson 03."""
    values = np.asarray(values, dtype=float).ravel()
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.hist(values, bins=bins, color="#9D9D9D", log=True)
    for name, (lo, hi) in ranges.items():
        color = OBSERVER_COLORS.get(name, "black")
        ax.axvline(hi, color=color, lw=1.6, label=f"{name}: [{lo:.2f}, {hi:.2f}]")
        if lo < 0:
            ax.axvline(lo, color=color, lw=1.6)
    ax.set_xlabel("activation value")
    ax.set_ylabel("count (log scale)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def calibration_curve(sizes: Sequence[int], curves: Mapping[str, np.ndarray],
                      ylabel: str = "SQNR on held-out validation activations (dB)",
                      title: str = "how many calibration images are enough?"):
    """Metric against the number of calibration images; each curve is (draws, sizes); lesson 03."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, values in curves.items():
        values = np.atleast_2d(np.asarray(values, dtype=float))
        mean = values.mean(0)
        color = OBSERVER_COLORS.get(name)
        ax.plot(sizes, mean, "o-", color=color, label=name)
        if values.shape[0] > 1:
            ax.fill_between(sizes, values.min(0), values.max(0), color=color, alpha=0.2)
    ax.set_xscale("log")
    ax.set_xlabel("calibration images (log scale)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig
