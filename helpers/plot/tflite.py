"""Figures for the TensorFlow Lite lessons (09 to 11): where the bytes go, scales, latency."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

DTYPE_COLORS = {"float32": "#4C78A8", "float16": "#72B7B2", "int8": "#F58518",
                "uint8": "#E45756", "int16": "#54A24B", "int32": "#B279A2",
                "int64": "#9D755D", "overhead": "#BAB0AC"}


def tensor_bytes_by_dtype(rows: Sequence[dict]) -> dict[str, int]:
    """Bytes of the constant tensors (weights, biases) of a model, summed by dtype; lesson 09."""
    totals: dict[str, int] = {}
    for row in rows:
        if row.get("is_constant", True):
            n = int(np.prod(row["shape"])) if row["shape"] else 1
            totals[row["dtype"]] = totals.get(row["dtype"], 0) + n * np.dtype(row["dtype"]).itemsize
    return totals


def bytes_by_dtype(models: Mapping[str, tuple[dict[str, int], int]], title: str = ""):
    """Stacked bars: each file's bytes split into weights by dtype and the rest; lesson 09.

    ``models`` maps a name to (bytes by dtype of the weight tensors, file size in bytes);
    whatever the weights do not explain is the flatbuffer's own overhead.
    """
    if not models:
        raise ValueError("bytes_by_dtype() needs at least one model")
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    names = list(models)
    dtypes = sorted({d for by_dtype, _ in models.values() for d in by_dtype})
    bottom = np.zeros(len(names))
    for dtype in [*dtypes, "overhead"]:
        values = []
        for name in names:
            by_dtype, file_size = models[name]
            values.append(file_size - sum(by_dtype.values()) if dtype == "overhead"
                          else by_dtype.get(dtype, 0))
        values_kb = np.maximum(np.asarray(values, dtype=float), 0) / 1e3
        ax.bar(names, values_kb, bottom=bottom, label=dtype,
               color=DTYPE_COLORS.get(dtype, "#888888"))
        bottom += values_kb
    for i, total in enumerate(bottom):
        ax.annotate(f"{total:,.1f} kB", (i, total), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("file size (kB)")
    ax.set_title(title or "Where the bytes of each .tflite file go")
    ax.legend(title="tensor dtype", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def weight_and_activation_scales(weight_scales: np.ndarray, activation_scales: Mapping[str, float],
                                 title: str = ""):
    """Left: one scale per output channel of a weight; right: one scale per activation; lesson 10."""
    weight_scales = np.asarray(weight_scales, dtype=float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6),
                                      gridspec_kw={"width_ratios": [1.3, 1]})
    left.bar(np.arange(len(weight_scales)), weight_scales, color=DTYPE_COLORS["int8"])
    left.set_xlabel("output channel")
    left.set_ylabel("weight scale (float per int step)")
    left.set_title(f"per-channel: {len(weight_scales)} weight scales")
    names = list(activation_scales)
    right.barh(range(len(names)), [activation_scales[n] for n in names],
               color=DTYPE_COLORS["float32"])
    right.set_yticks(range(len(names)), [n[:28] for n in names], fontsize=8)
    right.set_xlabel("activation scale (float per int step)")
    right.set_title("per-tensor: one scale per activation")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def latency_by_kernels(timings: Mapping[str, Mapping[str, object]], title: str = ""):
    """Grouped bars of median latency (IQR whiskers) per model and kernel set; lesson 09.

    ``timings`` maps a model name to {kernel set name: helpers.measure.Timing}.
    """
    if not timings:
        raise ValueError("latency_by_kernels() needs at least one model")
    models = list(timings)
    kernels = list(dict.fromkeys(k for per in timings.values() for k in per))
    width = 0.8 / len(kernels)
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for j, kernel in enumerate(kernels):
        xs = np.arange(len(models)) + (j - (len(kernels) - 1) / 2) * width
        medians = [timings[m][kernel].median_ms if kernel in timings[m] else np.nan for m in models]
        spreads = [timings[m][kernel].spread_ms / 2 if kernel in timings[m] else 0 for m in models]
        bars = ax.bar(xs, medians, width, yerr=spreads, capsize=3, label=kernel)
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xticks(np.arange(len(models)), models)
    ax.set_ylabel("latency (ms, median, batch 1)")
    ax.set_title(title or "Latency by model and kernels")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def activation_ranges(values: np.ndarray, scales: Mapping[str, float], title: str = ""):
    """Log-log histogram of one activation tensor with each format's step marked; lesson 11.

    Zeros (from the ReLU) are left out so that a logarithmic axis can show small and huge
    values together.
    """
    values = np.asarray(values, dtype=float).ravel()
    positive = values[values > 0]
    if positive.size == 0:
        raise ValueError("activation_ranges() needs some positive activation values")
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    low = min(positive.min(), *scales.values()) / 2
    bins = np.logspace(np.log10(low), np.log10(positive.max() * 1.05), 90)
    ax.hist(positive, bins=bins, color=DTYPE_COLORS["float32"], log=True)
    for (name, scale), color in zip(scales.items(), ("#E45756", "#54A24B", "#B279A2"),
                                    strict=False):
        ax.axvline(scale, color=color, linestyle="--", label=f"{name}: one step = {scale:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("activation value (log scale; zeros left out)")
    ax.set_ylabel("count (log scale)")
    ax.set_title(title or "Activation values and the quantization step")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def layer_errors(rows: Sequence[dict], rounding_only: float, title: str = ""):
    """Bars of each layer's rmse/scale from the quantization debugger, with rounding marked.

    ``rows`` come from :func:`helpers.litert_debug.layer_statistics`; ``rounding_only`` is the
    rmse/scale that rounding alone gives (1/sqrt(12)). Lesson 10.
    """
    if not rows:
        raise ValueError("layer_errors() needs at least one layer")
    labels = [f"{i}: {row['op'].lower()}" for i, row in enumerate(rows)]
    values = [row["rmse/scale"] for row in rows]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(np.arange(len(rows)), values, color=DTYPE_COLORS["int8"])
    ax.axhline(rounding_only, color="black", linestyle="--",
               label=f"rounding alone: 1/sqrt(12) = {rounding_only:.3f}")
    ax.set_xticks(np.arange(len(rows)), labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("layer RMSE / quantization step")
    ax.set_title(title or "Error each int8 layer adds (quantization debugger)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
