"""Figures of the capstone comparison; lesson 13."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers.plot import COLORS

PANELS = (
    ("size_x", "times smaller than float (x)"),
    ("speedup_x", "speed-up over float (x)"),
    ("accuracy_change_points", "accuracy change (points)"),
)


def relative_to_float(rows: Sequence[dict], title: str = "Each method against its own float model"):
    """Size reduction, speed-up and accuracy change of each method vs its framework's float."""
    rows = [r for r in rows if all(key in r for key, _ in PANELS)]
    if not rows:
        raise ValueError("relative_to_float() needs rows from capstone.with_baselines()")
    names = [r["name"] for r in rows]
    colors = [COLORS.get(r.get("framework", ""), COLORS["before"]) for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), sharey=True)
    for ax, (key, label) in zip(axes, PANELS, strict=True):
        values = np.array([r[key] for r in rows], dtype=float)
        bars = ax.barh(range(len(rows)), values, color=colors)
        ax.bar_label(bars, fmt="%.2f", fontsize=8, padding=2)
        reference = 0.0 if key == "accuracy_change_points" else 1.0
        ax.axvline(reference, color="grey", linewidth=1)
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        low, high = min(values.min(), reference), max(values.max(), reference)
        pad = 0.15 * (high - low or 1.0)
        ax.set_xlim(low - pad, high + pad)
    axes[0].set_yticks(range(len(rows)), names)
    axes[0].invert_yaxis()
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[f]) for f in ("pytorch", "tflite")]
    fig.legend(handles, ["PyTorch", "TFLite (LiteRT)"], loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
