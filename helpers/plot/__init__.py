"""Figures for the lessons: one function per figure, labelled axes with units.

Introduced in lesson 00. The shared figures live here (weight histograms before and after,
grouped bars of size / latency / accuracy, Pareto scatters); figures that belong to one topic
live in a submodule named after it (``helpers.plot.<topic>``). Every function returns the
matplotlib Figure, so a notebook cell shows it by ending with the call.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

COLORS = {"before": "#4C78A8", "after": "#F58518", "pytorch": "#EE4C2C", "tflite": "#FF8F00",
          "keras": "#D00000", "numpy": "#4C78A8"}

METRIC_LABELS = {
    "size_bytes": "size (MB)",
    "latency_ms": "latency (ms, median)",
    "accuracy": "test accuracy (%)",
}


def _values(metric: str, values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if metric == "size_bytes":
        return array / 1e6
    if metric == "accuracy":
        return array * 100
    return array


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if getattr(x, "is_quantized", False):
            x = x.dequantize()
        x = x.numpy()
    return np.asarray(x, dtype=float).ravel()


def weight_histograms(before, after, title: str = "weights", bins: int = 80,
                      labels: tuple[str, str] = ("fp32", "int8 (dequantized)")):
    """Side-by-side histograms of weights before and after quantization; lesson 02."""
    before, after = _as_numpy(before), _as_numpy(after)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharex=True, sharey=True)
    edges = np.linspace(min(before.min(), after.min()), max(before.max(), after.max()), bins + 1)
    for ax, values, label, color in zip(axes, (before, after), labels,
                                        (COLORS["before"], COLORS["after"]), strict=True):
        ax.hist(values, bins=edges, color=color, edgecolor="white", linewidth=0.3)
        ax.set_title(f"{title}: {label} ({len(np.unique(values)):,} distinct values)")
        ax.set_xlabel("weight value")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("count")
    fig.tight_layout()
    return fig


def grouped_bars(records: Sequence[dict], metrics: Sequence[str] = ("size_bytes", "latency_ms",
                 "accuracy"), title: str = ""):
    """One bar chart per metric, a bar per record (records need "name" and the metrics)."""
    if not records:
        raise ValueError("grouped_bars() needs at least one record")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
    names = [r["name"] for r in records]
    for ax, metric in zip(axes[0], metrics, strict=True):
        raw = [r.get(metric, np.nan) for r in records]
        values = _values(metric, [np.nan if v is None else v for v in raw])
        bars = ax.bar(range(len(names)), values, color=COLORS["before"])
        ax.bar_label(bars, fmt="%.3g", fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=35, ha="right")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def pareto(records: Sequence[dict], x: str = "latency_ms", y: str = "accuracy",
           log_x: bool = False, title: str = ""):
    """Scatter of records on two metrics with the Pareto front drawn (lower x, higher y wins)."""
    points = [(r["name"], r.get("framework", ""), r[x], r[y]) for r in records
              if r.get(x) is not None and r.get(y) is not None]
    if not points:
        raise ValueError(f"no record has both {x!r} and {y!r}")
    xs = _values(x, [p[2] for p in points])
    ys = _values(y, [p[3] for p in points])
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for (name, framework, *_), px, py in zip(points, xs, ys, strict=True):
        ax.scatter(px, py, s=45, color=COLORS.get(framework, COLORS["before"]), zorder=3)
        ax.annotate(name, (px, py), textcoords="offset points", xytext=(5, 4), fontsize=8)
    front = pareto_front(list(zip(xs, ys, strict=True)))
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "--", color="grey", zorder=2,
            label="Pareto front")
    if log_x:
        ax.set_xscale("log")
        # Plain numbers on a log axis; matplotlib's default labels every minor tick as 3x10^0.
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(METRIC_LABELS.get(x, x))
    ax.set_ylabel(METRIC_LABELS.get(y, y))
    ax.set_title(title or f"{METRIC_LABELS.get(y, y)} vs {METRIC_LABELS.get(x, x)}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y), by x."""
    front = []
    for i, (xi, yi) in enumerate(points):
        dominated = any(
            (xj <= xi and yj >= yi) and (xj < xi or yj > yi)
            for j, (xj, yj) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def digit_grid(images: np.ndarray, labels: np.ndarray, per_class: int = 8):
    """A grid of example digits, one row per class; lesson 00."""
    fig, axes = plt.subplots(10, per_class, figsize=(per_class * 0.9, 9.5))
    for digit in range(10):
        chosen = np.flatnonzero(labels == digit)[:per_class]
        for col in range(per_class):
            ax = axes[digit, col]
            ax.axis("off")
            if col < len(chosen):
                ax.imshow(images[chosen[col]], cmap="gray_r", vmin=0, vmax=1)
        axes[digit, 0].set_title(str(digit), loc="left", fontsize=9, x=-0.35, y=0.25)
    fig.suptitle("MNIST examples, one row per digit")
    fig.tight_layout()
    return fig
