"""Figures for lesson 07 (FX graph-mode static quantization): one function per figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers.plot import COLORS


def fp32_vs_int8(latency_ms: dict[str, dict[str, float]], size_bytes: dict[str, int],
                 title: str = "ResNet18, batch 1"):
    """Latency per thread setting and file size, fp32 vs int8, side by side; lesson 07.

    ``latency_ms`` maps a setting ("1 thread", "2 threads") to {"fp32": ms, "int8": ms};
    ``size_bytes`` maps "fp32" and "int8" to bytes.
    """
    if not latency_ms or set(size_bytes) != {"fp32", "int8"}:
        raise ValueError("need latencies per setting and size_bytes with keys 'fp32' and 'int8'")
    fig, (ax_lat, ax_size) = plt.subplots(1, 2, figsize=(10, 3.8),
                                          gridspec_kw={"width_ratios": [2, 1]})
    settings = list(latency_ms)
    positions = np.arange(len(settings))
    for offset, method in ((-0.2, "fp32"), (0.2, "int8")):
        values = [latency_ms[s][method] for s in settings]
        color = COLORS["before"] if method == "fp32" else COLORS["after"]
        bars = ax_lat.bar(positions + offset, values, width=0.4, label=method, color=color)
        ax_lat.bar_label(bars, fmt="%.1f", fontsize=8)
    for i, s in enumerate(settings):
        ratio = latency_ms[s]["fp32"] / latency_ms[s]["int8"]
        ax_lat.annotate(f"{ratio:.1f}x faster", (i, max(latency_ms[s].values())),
                        textcoords="offset points", xytext=(0, 14), ha="center", fontsize=9)
    ax_lat.set_xticks(positions, settings)
    ax_lat.set_ylabel("latency (ms, median)")
    ax_lat.set_title(f"{title}: latency")
    ax_lat.margins(y=0.25)
    ax_lat.legend()
    sizes = [size_bytes["fp32"] / 1e6, size_bytes["int8"] / 1e6]
    bars = ax_size.bar(["fp32", "int8"], sizes, color=[COLORS["before"], COLORS["after"]])
    ax_size.bar_label(bars, fmt="%.1f", fontsize=8)
    ax_size.set_ylabel("state_dict size (MB)")
    ax_size.set_title(f"size: {sizes[0] / sizes[1]:.2f}x smaller")
    for ax in (ax_lat, ax_size):
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def sensitivity(rows: Sequence[dict], title: str = "Quantizing one layer at a time"):
    """Output SQNR (dB) with only one layer quantized; the most sensitive bar highlighted; lesson 07."""
    if not rows:
        raise ValueError("no sensitivity rows to plot: run fx.layer_sensitivity() first")
    names = [r["layer"] for r in rows]
    values = np.array([r["sqnr_db"] for r in rows], dtype=float)
    colors = [COLORS["after"] if v == values.min() else COLORS["before"] for v in values]
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    bars = ax.bar(names, values, color=colors)
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.set_xlabel("the only layer quantized to int8")
    ax.set_ylabel("SQNR of the logits vs fp32 (dB)")
    ax.set_title(f"{title} (lower = more sensitive)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def graph_stages(counts: dict[str, dict[str, int]], title: str = "What each PT2E stage does to the graph"):
    """Operator counts of a graph after each stage (export, prepare, convert), side by side; lesson 07.

    ``counts`` maps a stage name to ``pt2e.op_counts(graph)``; one group of bars per operator.
    """
    if not counts or not any(counts.values()):
        raise ValueError("graph_stages() needs {stage: {operator: count}} for at least one stage")
    ops = sorted({op for c in counts.values() for op in c},
                 key=lambda op: -max(c.get(op, 0) for c in counts.values()))
    positions = np.arange(len(ops))
    width = 0.8 / len(counts)
    fig, ax = plt.subplots(figsize=(max(7.5, 0.75 * len(ops) + 2), 4.0))
    for i, (stage, c) in enumerate(counts.items()):
        values = [c.get(op, 0) for op in ops]
        bars = ax.bar(positions + (i - (len(counts) - 1) / 2) * width, values, width=width,
                      label=stage)
        ax.bar_label(bars, labels=[str(v) if v else "" for v in values], fontsize=7)
    ax.set_xticks(positions, ops, rotation=35, ha="right")
    ax.set_ylabel("calls in the graph")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
