"""Figures for eager-mode static quantization; lesson 06."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import ScalarFormatter

from helpers.plot import _as_numpy


def _image(x) -> np.ndarray:
    return _as_numpy(x).reshape(28, 28)


def input_quantization(panels: Mapping[str, object], title: str = "what the QuantStub passes on"):
    """One digit as the model sees it: float input, then each quantize-dequantize; lesson 06.

    ``panels`` maps a label to a 784-value image (standardised units); all share one colour scale
    so lost detail and clipped values are visible.
    """
    if not panels:
        raise ValueError("input_quantization() needs at least one panel {label: image}")
    images = {label: _image(x) for label, x in panels.items()}
    lo = min(im.min() for im in images.values())
    hi = max(im.max() for im in images.values())
    fig, axes = plt.subplots(1, len(images), figsize=(3.6 * len(images), 4.0), squeeze=False)
    for ax, (label, im) in zip(axes[0], images.items(), strict=True):
        shown = ax.imshow(im, cmap="viridis", vmin=lo, vmax=hi)
        ax.set_title(f"{label}\n{len(np.unique(im))} distinct values", fontsize=9)
        ax.set_xlabel("pixel column")
        ax.set_xticks([]), ax.set_yticks([])
    axes[0][0].set_ylabel("pixel row")
    fig.colorbar(shown, ax=axes[0].tolist(), label="input value (standardised units)",
                 shrink=0.85)
    fig.suptitle(title)
    return fig


def calibration_curve(curves: Mapping[str, Sequence[dict]], float_accuracy: float,
                      tolerance: float = 0.003, title: str = "", split: str = "val"):
    """Accuracy and logit SQNR against the number of calibration images; lesson 06.

    Each curve is a list of {"images": n, "accuracy": a, "sqnr_db": s} (``sqnr_db`` optional);
    the float model is a dashed line with a band of +/- ``tolerance`` (the course target);
    ``split`` names the images the points were measured on.
    """
    if not curves or not any(curves.values()):
        raise ValueError("calibration_curve() needs at least one non-empty curve")
    with_sqnr = all("sqnr_db" in p for points in curves.values() for p in points)
    fig, axes = plt.subplots(1, 2 if with_sqnr else 1, figsize=(12 if with_sqnr else 7, 4.2),
                             squeeze=False)
    ax = axes[0][0]
    ax.axhline(float_accuracy * 100, color="grey", linestyle="--", label="fp32")
    ax.axhspan((float_accuracy - tolerance) * 100, (float_accuracy + tolerance) * 100,
               color="grey", alpha=0.15, label=f"fp32 ± {tolerance * 100:.1f} points")
    for label, points in curves.items():
        ax.plot([p["images"] for p in points], [p["accuracy"] * 100 for p in points], "o-",
                label=label)
        if with_sqnr:
            axes[0][1].plot([p["images"] for p in points], [p["sqnr_db"] for p in points], "o-",
                            label=label)
    ax.set_ylabel(f"{split} accuracy (%)")
    ax.set_title(f"accuracy on the {split} images")
    if with_sqnr:
        axes[0][1].set_ylabel("logit SQNR vs fp32 (dB, higher = closer)")
        axes[0][1].set_title("how close the int8 logits are to fp32")
    for a in axes[0]:
        a.set_xscale("log", base=2)
        a.xaxis.set_major_formatter(ScalarFormatter())
        a.set_xlabel("calibration images seen (log scale)")
        a.grid(alpha=0.3)
        a.legend(loc="lower right", fontsize=8)
    fig.suptitle(title or "int8 model as calibration sees more data")
    fig.tight_layout()
    return fig


def latency_bars(timings: Mapping[str, object], title: str = "latency, same run, same threads"):
    """Median latency with 10th-90th percentile whiskers, one bar per model; lesson 06."""
    if not timings:
        raise ValueError("latency_bars() needs at least one {label: Timing}")
    labels = list(timings)
    medians = np.array([timings[k].median_ms for k in labels])
    whiskers = np.array([[timings[k].median_ms - timings[k].p10_ms for k in labels],
                         [timings[k].p90_ms - timings[k].median_ms for k in labels]])
    fig, ax = plt.subplots(figsize=(1.6 * len(labels) + 3, 3.8))
    bars = ax.bar(range(len(labels)), medians, yerr=np.clip(whiskers, 0, None), capsize=4,
                  color="#4C78A8")
    ax.bar_label(bars, fmt="%.3g", fontsize=8, padding=3)
    ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right")
    ax.set_ylabel("latency (ms, median;\nwhiskers: 10th-90th percentile)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
