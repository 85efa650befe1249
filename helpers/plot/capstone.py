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
        for i, (names, px, py) in enumerate(_clusters(chosen, xs, ys)):
            # Points that coincide share one label; neighbours alternate above and below.
            ax.annotate("\n".join(names), (px, py), textcoords="offset points", fontsize=8,
                        xytext=(5, 5) if i % 2 == 0 else (5, -9 - 9 * len(names)))
        front = pareto_front(list(zip(xs, ys, strict=True)))
        ax.plot(xs[front], ys[front], "--", color="grey", zorder=2, label="Pareto front")
        if log_x and xs.max() / xs.min() > 8:  # a narrow range reads better on a linear axis
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        pad = max(0.5, 0.3 * float(ys.max() - ys.min()))
        ax.set_ylim(ys.min() - pad, ys.max() + pad)
        ax.set_xlabel(METRIC_LABELS.get(x, x) + (", log scale" if ax.get_xscale() == "log" else ""))
        ax.set_ylabel(METRIC_LABELS.get(y, y))
        ax.set_title("PyTorch (small_cnn)" if framework == "pytorch" else "TFLite (Keras CNN)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="lower right")
    fig.suptitle(title or f"{METRIC_LABELS.get(y, y)} vs {METRIC_LABELS.get(x, x)}")
    fig.tight_layout()
    return fig


def _clusters(rows: Sequence[dict], xs: np.ndarray, ys: np.ndarray, close: float = 0.06):
    """Group points (sorted by x) whose x differ by under ``close`` (relative) at equal y."""
    groups: list[tuple[list[str], float, float]] = []
    for row, px, py in zip(rows, xs, ys, strict=True):
        for names, gx, gy in groups:
            if abs(gy - py) < 0.05 and abs(px - gx) <= close * max(abs(gx), 1e-12):
                names.append(row["name"])
                break
        else:
            groups.append(([row["name"]], float(px), float(py)))
    return groups
