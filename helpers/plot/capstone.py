"""Figures of the capstone comparison: one Pareto front across both frameworks, and speed-ups; lesson 13.

The accuracy axis shows each method's change against the float model in points, with its
paired 95 % interval as the error bar (the quantity the decision guide judges); the latency
axis shows the median with the 10th-90th percentile range. Labels are placed one by one where
they overlap no earlier label, no marker and no legend.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.patches import Patch
from matplotlib.text import Text

from helpers.plot import COLORS, pareto_front

AXIS_LABELS = {
    "latency_ms": "latency at batch 1 (ms, median, 10th-90th percentile; log scale)",
    "latency_ms_batch64": "latency of a batch of 64 (ms, median; log scale)",
    "size_bytes": "deployable file (KB; log scale)",
}
MARKERS = {"nothing": "o", "calibration": "s", "training": "D"}
# PyTorch's course colour, and a blue for LiteRT that cannot be mistaken for it.
FRAMEWORK_COLORS = {"pytorch": COLORS["pytorch"], "tflite": "#3366CC"}
# Where a label may go, in points from its marker: close first, then farther out (with a
# leader line beyond the first ring).
OFFSETS = [(7, 5), (7, -11), (-7, 5), (-7, -11), (7, 16), (7, -22), (-7, 16), (-7, -22),
           (16, -3), (-16, -3)] + [(dx * r, dy * r) for r in (2, 3, 4, 5, 6, 8, 10, 12)
                                   for dx, dy in ((7, 14), (7, -17), (-7, 14), (-7, -17),
                                                  (16, 0), (-16, 0), (0, 20), (0, -23))]


def _x(rows: Sequence[dict], x: str) -> tuple[np.ndarray, np.ndarray | None]:
    values = np.array([r[x] for r in rows], dtype=float)
    if x == "size_bytes":
        return values / 1e3, None
    if x == "latency_ms" and all("latency_p10_ms" in r for r in rows):
        low = values - np.array([r["latency_p10_ms"] for r in rows])
        high = np.array([r["latency_p90_ms"] for r in rows]) - values
        return values, np.clip(np.vstack([low, high]), 0, None)
    return values, None


def pareto(rows: Sequence[dict], x: str = "latency_ms", title: str = ""):
    """Accuracy change (points, paired 95 % CI) against ``x`` for every method, one front; lesson 13."""
    rows = [r for r in rows if r.get(x) is not None]
    if not rows:
        raise ValueError(f"no row has {x!r}")
    xs, xerr = _x(rows, x)
    ys = np.array([r["delta_points"] for r in rows])
    yerr = np.abs(np.array([r["delta_ci95"] for r in rows]).T - ys)
    fig, ax = plt.subplots(figsize=(10, 6))
    for framework in ("pytorch", "tflite"):
        for needs, marker in MARKERS.items():
            chosen = [i for i, r in enumerate(rows)
                      if r["framework"] == framework and r["needs"] == needs]
            if not chosen:
                continue
            ax.errorbar(xs[chosen], ys[chosen], yerr=yerr[:, chosen],
                        xerr=None if xerr is None else xerr[:, chosen], fmt=marker, ms=7,
                        color=FRAMEWORK_COLORS[framework], ecolor=FRAMEWORK_COLORS[framework],
                        elinewidth=1,
                        capsize=2, alpha=0.9, zorder=3,
                        label=f"{'PyTorch' if framework == 'pytorch' else 'LiteRT'}, needs {needs}")
    front = pareto_front(list(zip(xs, ys, strict=True)))
    ax.plot(xs[front], ys[front], "--", color="grey", zorder=2, label="Pareto front (both frameworks)")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel("accuracy change vs float (points, paired 95 % CI)")
    ax.set_title(title or f"Every method of both frameworks: accuracy vs {x}")
    ax.grid(alpha=0.3, which="both")
    legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    place_labels(ax, [r["name"] for r in rows], xs, ys, avoid=[legend])
    return fig


def place_labels(ax, names: Sequence[str], xs: np.ndarray, ys: np.ndarray, avoid=()) -> None:
    """Annotate each point at the first offset whose box overlaps no label, marker or ``avoid``."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    points = ax.transData.transform(np.column_stack([xs, ys]))
    marker_boxes = [(px - 5, py - 5, px + 5, py + 5) for px, py in points]
    taken = [tuple(a.get_window_extent(renderer).extents) for a in avoid]
    frame = ax.get_window_extent(renderer).extents
    for name, px, py in sorted(zip(names, xs, ys, strict=True), key=lambda t: (t[1], -t[2])):
        best = None  # (overlapping area, offset) of the least bad spot, if no spot is free
        for index, (dx, dy) in enumerate(OFFSETS):
            label = _annotate(ax, name, px, py, dx, dy, leader=index >= 10)
            box = _text_box(label, renderer)
            inside = (box[0] >= frame[0] and box[2] <= frame[2]
                      and box[1] >= frame[1] and box[3] <= frame[3])
            area = sum(_overlap_area(box, other) for other in taken + marker_boxes)
            if inside and area == 0:
                break
            label.remove()
            if inside and (best is None or area < best[0]):
                best = (area, index)
        else:  # nowhere free: the spot that overlaps least
            index = best[1] if best is not None else len(OFFSETS) - 1
            label = _annotate(ax, name, px, py, *OFFSETS[index], leader=index >= 10)
            box = _text_box(label, renderer)
        taken.append(box)


def _annotate(ax, name: str, px: float, py: float, dx: float, dy: float, leader: bool):
    return ax.annotate(name, (px, py), textcoords="offset points", xytext=(dx, dy), fontsize=7.5,
                       ha="left" if dx >= 0 else "right", zorder=4,
                       arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.6} if leader else None)


def _text_box(label, renderer) -> tuple:
    """The text's own box (an Annotation's box would include its leader line)."""
    label.update_positions(renderer)  # place the text where the offset puts it, then measure it
    return tuple(Text.get_window_extent(label, renderer).extents)


def _overlap_area(a: tuple, b: tuple) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0.0) * max(height, 0.0)


def speedups(rows: Sequence[dict], title: str = ""):
    """Each method's speed-up over the best float of its runtime, at batch 1 and 64; lesson 13."""
    rows = [r for r in rows if "speedup_vs_best" in r]
    if not rows:
        raise ValueError("speedups() needs rows from capstone.with_speedups()")
    names = [r["name"] for r in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(9, 0.38 * len(rows) + 1.5))
    colors = [FRAMEWORK_COLORS[r["framework"]] for r in rows]
    one = ax.barh(y - 0.2, [r["speedup_vs_best"] for r in rows], height=0.4, color=colors)
    big = ax.barh(y + 0.2, [r["speedup64_vs_best"] for r in rows], height=0.4, color=colors,
                  alpha=0.45, hatch="//")
    for bars in (one, big):
        ax.bar_label(bars, fmt="%.2fx", fontsize=7, padding=2)
    ax.axvline(1, color="black", linewidth=0.8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("speed-up over the best float model of the same runtime (x, log scale; >1 is faster)")
    ax.set_title(title or "Speed-ups, one thread")
    ax.grid(axis="x", alpha=0.3, which="both")
    handles = [Patch(color=FRAMEWORK_COLORS["pytorch"], label="PyTorch"),
               Patch(color=FRAMEWORK_COLORS["tflite"], label="LiteRT"),
               Patch(facecolor="grey", label="batch 1"),
               Patch(facecolor="grey", alpha=0.45, hatch="//", label="batch 64")]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    return fig
