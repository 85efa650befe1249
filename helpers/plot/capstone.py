"""Figures of the capstone comparison; lesson 13."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np

from helpers.plot import COLORS, METRIC_LABELS, _values, pareto_front

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
    fig.legend(handles, ["PyTorch", "TFLite (LiteRT)"], loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def pareto_by_framework(rows: Sequence[dict], x: str = "latency_ms", y: str = "accuracy",
                        log_x: bool = True, title: str = ""):
    """One Pareto scatter per framework side by side (their models differ), front dashed."""
    frameworks = [f for f in ("pytorch", "tflite") if any(r["framework"] == f for r in rows)]
    if not frameworks:
        raise ValueError("pareto_by_framework() needs rows with framework 'pytorch' or 'tflite'")
    fig, axes = plt.subplots(1, len(frameworks), figsize=(6.5 * len(frameworks), 4.6),
                             squeeze=False)
    for ax, framework in zip(axes[0], frameworks, strict=True):
        chosen = sorted((r for r in rows if r["framework"] == framework), key=lambda r: r[x])
        xs, ys = _values(x, [r[x] for r in chosen]), _values(y, [r[y] for r in chosen])
        ax.scatter(xs, ys, s=45, color=COLORS[framework], zorder=3)
        for i, (row, px, py) in enumerate(zip(chosen, xs, ys, strict=True)):
            # Stagger labels: methods often tie on accuracy and would print on top of each other.
            ax.annotate(row["name"], (px, py), textcoords="offset points", fontsize=8,
                        xytext=(5, 5) if i % 2 == 0 else (5, -12))
        front = pareto_front(list(zip(xs, ys, strict=True)))
        ax.plot(xs[front], ys[front], "--", color="grey", zorder=2, label="Pareto front")
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
        pad = max(0.5, 0.3 * float(ys.max() - ys.min()))
        ax.set_ylim(ys.min() - pad, ys.max() + pad)
        ax.set_xlabel(METRIC_LABELS.get(x, x) + (", log scale" if log_x else ""))
        ax.set_ylabel(METRIC_LABELS.get(y, y))
        ax.set_title("PyTorch (small_cnn)" if framework == "pytorch" else "TFLite (Keras CNN)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower right")
    fig.suptitle(title or f"{METRIC_LABELS.get(y, y)} vs {METRIC_LABELS.get(x, x)}")
    fig.tight_layout()
    return fig
