"""Figures for lesson 14 (advanced PTQ): ranges, SQNR per layer, AdaRound, sensitivity, summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

BEFORE, AFTER = "#4C78A8", "#F58518"
PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#9D755D")


def _numpy(values) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=float)


def _short(name: str) -> str:
    """features.3.0 -> f3, stem.0 -> stem: layer names that fit under an axis."""
    parts = name.split(".")
    if parts[0] == "features" and len(parts) > 1:
        return f"f{parts[1]}"
    return parts[0]


def channel_ranges(before: Mapping[str, object], after: Mapping[str, object],
                   title: str = "largest |weight| per output channel, before and after CLE"):
    """Per-channel weight ranges of some layers before and after equalization; lesson 14."""
    names = list(before)
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        b, a = _numpy(before[name]), _numpy(after[name])
        idx = np.arange(len(b))
        ax.bar(idx - 0.2, b, 0.4, color=BEFORE, label=f"before: max/min {b.max() / b.min():.1f}x")
        ax.bar(idx + 0.2, a, 0.4, color=AFTER, label=f"after: max/min {a.max() / a.min():.1f}x")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("output channel")
        ax.set_ylabel("max |weight| (log scale)")
        ax.legend(fontsize=8, loc="lower right")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def layer_sqnr(curves: Mapping[str, Mapping[str, float]],
               title: str = "SQNR of each layer's output against the float model"):
    """SQNR (dB) layer by layer, one line per quantization setting; lesson 14."""
    fig, ax = plt.subplots(figsize=(9, 3.8))
    for color, (label, values) in zip(PALETTE, curves.items(), strict=False):
        names = list(values)
        ax.plot(range(len(names)), [values[n] for n in names], "o-", color=color, label=label)
    ax.set_xticks(range(len(names)), [_short(n) for n in names])
    ax.set_xlabel("layer (in execution order)")
    ax.set_ylabel("output SQNR (dB, higher is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def adaround_layers(runs: Mapping[str, object],
                    title: str = "AdaRound layer by layer"):
    """Per layer: share of weights rounded away from nearest, and the reconstruction loss; lesson 14.

    ``runs`` maps a label to an :class:`helpers.adaround.ModelAdaRound`.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.8))
    width = 0.8 / max(1, len(runs))
    for i, (color, (label, run)) in enumerate(zip(PALETTE, runs.items(), strict=False)):
        names = list(run.layers)
        x = np.arange(len(names))
        flipped = [run.layers[n].flipped_fraction * 100 for n in names]
        left.bar(x + i * width, flipped, width, color=color, label=label)
        right.plot(x, [run.layers[n].loss_nearest for n in names], "o--", color=color,
                   label=f"{label}: nearest")
        right.plot(x, [run.layers[n].loss_adaround for n in names], "o-", color=color,
                   label=f"{label}: AdaRound")
    for ax in (left, right):
        ax.set_xticks(np.arange(len(names)) + (width * (len(runs) - 1) / 2 if ax is left else 0),
                      [_short(n) for n in names])
        ax.set_xlabel("layer")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    left.set_ylabel("weights rounded away from nearest (%)")
    left.set_title("how many rounding decisions AdaRound changes")
    right.set_yscale("log")
    right.set_ylabel("reconstruction loss (log scale)")
    right.set_title("layer output error on calibration images")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def sensitivity(table: Mapping[str, Mapping[int, float]],
                title: str = "sensitivity: KL(float || one layer at b bits) on val"):
    """Heat map of each layer's sensitivity at each bit width (log10 KL); lesson 14."""
    names = list(table)
    bits = sorted({b for row in table.values() for b in row}, reverse=True)
    values = np.array([[max(table[n].get(b, np.nan), 1e-9) for n in names] for b in bits])
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(bits) + 1.6))
    image = ax.imshow(np.log10(values), aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(names)), [_short(n) for n in names])
    ax.set_yticks(range(len(bits)), [f"{b}-bit" for b in bits])
    ax.set_xlabel("layer (the only one quantized below 8 bits)")
    fig.colorbar(image, ax=ax, label="log10 KL (nats)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def mixed_precision_search(result, title: str = "mixed precision: val accuracy against weight size"):
    """Every assignment the search scored (val accuracy vs bytes), the budget and the choice; lesson 14.

    ``result`` is a :class:`helpers.mixed_precision.SearchResult`: its greedy path is a line,
    its uniform widths are squares.
    """
    fig, ax = plt.subplots(figsize=(8, 4))
    n = result.path_length
    sizes = np.asarray(result.sizes) / 1e3
    acc = np.asarray(result.val_accuracy) * 100
    ax.plot(sizes[:n], acc[:n], "o-", color=BEFORE, ms=4, label="greedy moves, one layer at a time")
    if result.val_delta_low is not None:  # whiskers down to each interval's lower end: what the budget reads
        low = result.float_val_accuracy * 100 + np.asarray(result.val_delta_low)
        ax.errorbar(sizes, acc, yerr=[np.maximum(acc - low, 0), np.zeros_like(acc)], fmt="none",
                    ecolor="grey", elinewidth=0.8, capsize=2, label="lower end of the paired 95 % interval")
    floor = result.float_val_accuracy * 100 - result.budget_points
    ax.axhline(result.float_val_accuracy * 100, color="grey", ls="--", lw=1, label="float (val)")
    ax.axhline(floor, color="#E45756", ls=":", lw=1.5,
               label=f"budget: {result.budget_points} points below float")
    for color, (bits, (size, accuracy)) in zip(PALETTE[2:], result.uniform().items(), strict=False):
        ax.plot(size / 1e3, accuracy * 100, "s", color=color, ms=8, label=f"uniform {bits}-bit")
    ax.plot(sizes[result.chosen], acc[result.chosen], "*", color=AFTER, ms=16,
            label="chosen: smallest whose interval stays within budget")
    ax.set_xlabel("weights + scales + biases (kB)")
    ax.set_ylabel("val accuracy (%)")
    ax.set_ylim(max(acc.min(), floor - 3) - 0.5, result.float_val_accuracy * 100 + 0.5)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def technique_summary(rows: Sequence[Mapping], budget_points: float | None = 0.5,
                      title: str = "what each technique buys"):
    """Accuracy change against float with its 95 % interval, one row per technique; lesson 14.

    Each row needs ``label``, ``group`` (e.g. "ds_cnn W4A8 per-tensor"), ``delta_points``,
    ``delta_ci95`` and ``seconds``; groups are drawn in the order they first appear. A dotted
    line marks ``-budget_points``.
    """
    if not rows:
        raise ValueError("technique_summary() needs at least one row")
    groups = list(dict.fromkeys(r["group"] for r in rows))
    fig, ax = plt.subplots(figsize=(10, 0.34 * len(rows) + 0.5 * len(groups) + 1.2))
    y, ticks, labels = 0, [], []
    for g, group in enumerate(groups):
        color = PALETTE[g % len(PALETTE)]
        ax.text(1.01, y, group, transform=ax.get_yaxis_transform(), fontsize=8, color=color,
                va="center")
        for row in [r for r in rows if r["group"] == group]:
            low, high = row["delta_ci95"]
            ax.errorbar(row["delta_points"], y, xerr=[[row["delta_points"] - low],
                                                      [high - row["delta_points"]]],
                        fmt="o", color=color, capsize=3)
            ticks.append(y)
            labels.append(f"{row['label']}  ({row['seconds']:.1f} s)")
            y -= 1
        y -= 0.6
    ax.axvline(0, color="grey", lw=1)
    if budget_points is not None:
        ax.axvline(-budget_points, color="#E45756", ls=":", lw=1.5,
                   label=f"{budget_points} points below float")
        ax.legend(loc="lower left", fontsize=8)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.set_xscale("symlog", linthresh=1.0)
    lowest = min(r["delta_ci95"][0] for r in rows)
    marks = [m for m in (-50, -20, -10, -5, -2, -1, -0.5, 0, 0.5, 1) if m >= min(lowest, -1) * 1.5]
    ax.set_xticks(marks, [f"{m:g}" for m in marks])
    ax.set_xlabel("accuracy change vs float (points, 95 % paired interval; symlog scale)")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig
