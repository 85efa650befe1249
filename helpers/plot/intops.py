"""Figures for lesson 04: accumulator ranges, and LSB differences between int8 kernels."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np


def accumulator_range(acc, title: str = "int32 accumulators of one int8 layer"):
    """Histogram of |accumulator| (log x) against the int16 and int32 limits; lesson 04."""
    values = np.abs(np.asarray(acc, dtype=np.float64)).ravel()
    values = values[values > 0]
    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    ax.hist(values, bins=np.logspace(0, 10, 101), color="#4C78A8")
    ax.set_xscale("log")
    for limit, label, color in ((2**15 - 1, "int16 max", "#E45756"), (2**31 - 1, "int32 max", "#54A24B")):
        ax.axvline(limit, color=color, ls="--", lw=1.6, label=f"{label} ({limit:,})")
    ax.set_xlabel("|accumulator| (integer units, log scale)")
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def lsb_differences(comparisons: Mapping[str, np.ndarray], title: str = "int8 outputs compared"):
    """Share of outputs differing by 0, 1, 2, ... LSB for each pair of kernels; lesson 04."""
    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    width = 0.8 / max(len(comparisons), 1)
    top = max(int(np.max(np.abs(d))) for d in comparisons.values()) if comparisons else 0
    levels = np.arange(0, max(top, 1) + 1)
    for i, (name, diff) in enumerate(comparisons.items()):
        diff = np.abs(np.asarray(diff, dtype=np.int64)).ravel()
        share = np.array([np.mean(diff == k) for k in levels]) * 100
        bars = ax.bar(levels + i * width, share, width, label=name)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_xticks(levels + width * (len(comparisons) - 1) / 2, [f"{k} LSB" for k in levels])
    ax.set_xlabel("|difference| between the two int8 outputs")
    ax.set_ylabel("outputs (%, symlog scale)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
