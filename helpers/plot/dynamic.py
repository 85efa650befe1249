"""Figures for lesson 05 (pytorch_dynamic): where the bytes are, fp32 vs int8 latency, cosines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers.plot import COLORS

_PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#B279A2", "#E45756", "#72B7B2", "#9D755D",
            "#BAB0AC")


def size_breakdown(breakdowns: Mapping[str, Mapping[str, int]], title: str = "where the bytes are"):
    """Stacked horizontal bars: MB of each model variant by the module type that owns them; lesson 05."""
    if not breakdowns:
        raise ValueError("size_breakdown() needs at least one {variant: {module type: bytes}}")
    kinds: list[str] = []
    for parts in breakdowns.values():
        kinds += [k for k in parts if k not in kinds]
    fig, ax = plt.subplots(figsize=(9, 1.3 + 0.7 * len(breakdowns)))
    names = list(breakdowns)
    left = np.zeros(len(names))
    for i, kind in enumerate(kinds):
        widths = np.array([breakdowns[n].get(kind, 0) for n in names], dtype=float) / 1e6
        ax.barh(names, widths, left=left, color=_PALETTE[i % len(_PALETTE)], label=kind)
        left += widths
    for y, total in enumerate(left):
        ax.text(total, y, f" {total:.1f} MB", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, left.max() * 1.18)
    ax.set_xlabel("tensor bytes in the state_dict (MB)")
    ax.set_title(title)
    # Below the axes, so the legend never hides a bar.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=min(len(kinds), 5),
              frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def latency_pairs(rows: Sequence[dict], title: str = "fp32 vs int8 latency, 1 thread"):
    """One panel per (model, batch): fp32 and int8 median latency with IQR bars and the speed-up.

    Each row needs ``model``, ``batch``, ``fp32`` and ``int8`` (helpers.measure.Timing); lesson 05.
    """
    if not rows:
        raise ValueError("latency_pairs() needs at least one row")
    fig, axes = plt.subplots(1, len(rows), figsize=(2.6 * len(rows), 3.6), squeeze=False)
    for ax, row in zip(axes[0], rows, strict=True):
        timings = [row["fp32"], row["int8"]]
        medians = [t.median_ms for t in timings]
        ax.bar([0, 1], medians, yerr=[t.spread_ms / 2 for t in timings], capsize=4,
               color=[COLORS["before"], COLORS["after"]])
        ax.set_xticks([0, 1], ["fp32", "int8"])
        ax.set_title(f"{row['model']}, batch {row['batch']}\n"
                     f"{medians[0] / medians[1]:.1f}x faster", fontsize=9)
        ax.set_ylim(0, max(medians[0] + timings[0].spread_ms, medians[1]) * 1.15)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("latency (ms, median ± IQR/2)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def cosine_histograms(cosines: Mapping[str, Sequence[float]],
                      title: str = "fp32 vs int8 sentence embeddings"):
    """Histogram of per-sentence cosine similarity to the fp32 embedding, per variant; lesson 05."""
    if not cosines:
        raise ValueError("cosine_histograms() needs at least one {variant: cosines}")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    values = [np.asarray(v, dtype=float) for v in cosines.values()]
    lo = min(v.min() for v in values)
    edges = np.linspace(min(lo, 0.999) - 0.002, 1.0, 40)
    for i, (name, v) in enumerate(zip(cosines, values, strict=True)):
        ax.hist(v, bins=edges, alpha=0.6, color=_PALETTE[i % len(_PALETTE)],
                label=f"{name} (min {v.min():.3f})")
    ax.set_xlabel("cosine similarity to the fp32 embedding (1 = identical direction)")
    ax.set_ylabel("sentences")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def method_latencies(panels: Mapping[str, Mapping[str, object]],
                     title: str = "latency by method, 1 thread (log scale)"):
    """One panel per model: median latency of each method (helpers.measure.Timing) with its
    interquartile range, on a log axis so a 30x gap and a 10 % gap both show; lesson 05."""
    if not panels or not all(panels.values()):
        raise ValueError("method_latencies() needs at least one {model: {method: Timing}}")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.9 + 0.42 * max(
        len(rows) for rows in panels.values())), squeeze=False)
    for ax, (model, rows) in zip(axes[0], panels.items(), strict=True):
        names = list(rows)
        medians = np.array([rows[n].median_ms for n in names])
        low = np.array([rows[n].median_ms - rows[n].spread_ms / 2 for n in names])
        high = np.array([rows[n].median_ms + rows[n].spread_ms / 2 for n in names])
        colors = [COLORS["before"] if n.startswith("fp32") else COLORS["after"] for n in names]
        ax.barh(names, medians, color=colors, alpha=0.85,
                xerr=[medians - np.maximum(low, medians * 0.01), high - medians], capsize=3)
        for y, value in enumerate(medians):
            ax.text(value, y, f" {value:.3g}", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlim(medians.min() / 2, medians.max() * 4)
        ax.invert_yaxis()
        ax.set_xlabel("ms per call (median ± IQR/2)")
        ax.set_title(model, fontsize=10)
        ax.grid(axis="x", alpha=0.3, which="both")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
