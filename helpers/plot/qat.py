"""Figures for lesson 08 (quantization-aware training): STE, training curves, low-bit evidence.

Each function draws one figure and returns it; lesson 08 calls one per cell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers.plot import COLORS, _as_numpy

METHOD_COLORS = {"PTQ": COLORS["after"], "QAT": COLORS["before"]}


def ste(x, x_hat, grad, title: str = "fake quantization and its straight-through gradient"):
    """Left: x_hat = fake_quantize(x) against x; right: the STE gradient vs round's; lesson 08."""
    x, x_hat, grad = _as_numpy(x), _as_numpy(x_hat), _as_numpy(grad)
    if not len(x) == len(x_hat) == len(grad):
        raise ValueError(f"x, x_hat and grad need the same length, got {len(x)}, {len(x_hat)}, "
                         f"{len(grad)}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.plot(x, x, "--", color="grey", label="identity (float)")
    left.plot(x, x_hat, color=COLORS["before"], label="fake-quantized x_hat")
    left.set_xlabel("input x (float)")
    left.set_ylabel("output x_hat (float)")
    left.set_title("forward: a staircase that stops at the clipping range")
    right.plot(x, grad, color=COLORS["after"], lw=2, label="STE: d x_hat / d x used in training")
    right.plot(x, np.zeros_like(x), ":", color="black",
               label="true derivative of round (0 almost everywhere)")
    right.set_ylim(-0.15, 1.25)
    right.set_xlabel("input x (float)")
    right.set_ylabel("gradient passed back (dimensionless)")
    right.set_title("backward: 1 inside the range, 0 where clipped")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(histories: Mapping[str, object], float_accuracy: float | None = None,
                    title: str = "QAT fine-tuning"):
    """Training loss and monitored (val) accuracy per epoch for each QAT run; lesson 08."""
    if not histories:
        raise ValueError("training_curves() needs at least one history")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    longest = max(len(h.loss) for h in histories.values())
    for index, (name, history) in enumerate(histories.items()):
        epochs = np.arange(1, len(history.loss) + 1)
        color = plt.cm.tab10(index)
        left.plot(epochs, history.loss, "o-", color=color, label=name)
        right.plot(epochs, np.asarray(history.accuracy) * 100, "o-", color=color, label=name)
        for epoch in getattr(history, "events", {}):
            right.axvline(epoch + 0.5, color=color, ls=":", alpha=0.6)
    if float_accuracy is not None:
        right.axhline(float_accuracy * 100, color="black", ls="--", label="fp32 (before QAT)")
    left.set_ylabel("training loss (cross-entropy)")
    right.set_ylabel("val accuracy (%)")
    right.set_title("dotted lines: observers and BN statistics frozen", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("epoch of QAT fine-tuning")
        ax.set_xticks(range(1, longest + 1))
        ax.set_xlim(0.5, longest + 0.5)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def accuracy_vs_bits(results: Mapping[str, Mapping[int, float]], float_accuracy: float,
                     title: str = "PTQ vs QAT as the bit width shrinks",
                     y_min: float | None = None, ylabel: str = "test accuracy (%)"):
    """Test accuracy against bit width, one line per method, fp32 as a reference; lesson 08.

    With ``y_min`` (in %), points below it are drawn on the bottom edge with their value
    written next to them, so one collapsed point does not squash the interesting range.
    """
    if not results:
        raise ValueError("accuracy_vs_bits() needs results like {'PTQ': {8: 0.97, 4: 0.9}}")
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    all_bits: set[int] = set()
    for index, (method, by_bits) in enumerate(results.items()):
        bits: Sequence[int] = sorted(by_bits)
        all_bits.update(bits)
        accuracy = [by_bits[b] * 100 for b in bits]
        shown = [a if y_min is None else max(a, y_min) for a in accuracy]
        ax.plot(bits, shown, "o-", color=METHOD_COLORS.get(method), label=method)
        for b, a, s in zip(bits, accuracy, shown, strict=True):
            if a == s:
                ax.annotate(f"{a:.1f}", (b, s), textcoords="offset points", fontsize=8,
                            xytext=(4, -12 if index % 2 == 0 else 6),
                            color=METHOD_COLORS.get(method))
            else:  # off the bottom of the axis: say so, to the left of the marker
                ax.annotate(f"{a:.1f} (off scale)", (b, s), textcoords="offset points",
                            fontsize=8, xytext=(-8, 4), ha="right",
                            color=METHOD_COLORS.get(method))
    ax.axhline(float_accuracy * 100, color="black", ls="--", label="fp32")
    if y_min is not None:
        ax.set_ylim(y_min - 1, 100.5)
    ax.set_xticks(sorted(all_bits))
    ax.invert_xaxis()
    ax.set_xlabel("bits for weights and activations (fewer to the right)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def low_bit_evidence(deltas: Mapping[str, Mapping[int, Sequence[tuple[float, float, float]]]],
                     images: int, title: str = "PTQ vs QAT against float, one marker per seed"):
    """Accuracy change vs fp32 per seed with its paired 95 % interval, by bit width; lesson 08.

    ``deltas`` maps a method ("PTQ", "QAT", ...) to ``{bits: [(delta, low, high), ...]}`` in
    points, one tuple per seed; the mean over seeds is drawn as a short bar.
    """
    if not deltas or not any(deltas.values()):
        raise ValueError("low_bit_evidence() needs {'PTQ': {4: [(delta, low, high), ...]}}")
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    bits = sorted({b for by_bits in deltas.values() for b in by_bits}, reverse=True)
    width = 0.7 / len(deltas)
    for m_index, (method, by_bits) in enumerate(deltas.items()):
        color = METHOD_COLORS.get(method, plt.cm.tab10(m_index))
        for b_index, b in enumerate(bits):
            runs = by_bits.get(b, [])
            centre = b_index + (m_index - (len(deltas) - 1) / 2) * width
            offsets = np.linspace(-width / 4, width / 4, len(runs)) if len(runs) > 1 else [0.0]
            for offset, (delta, low, high) in zip(offsets, runs, strict=True):
                ax.errorbar(centre + offset, delta, yerr=[[delta - low], [high - delta]], fmt="o",
                            color=color, capsize=3, ms=4)
            if runs:
                mean = float(np.mean([r[0] for r in runs]))
                ax.hlines(mean, centre - width / 2.5, centre + width / 2.5, color=color, lw=2.5,
                          label=method if b_index == 0 else None)
    ax.axhline(0, color="black", ls="--", lw=1, label="fp32")
    ax.set_xticks(range(len(bits)), [f"{b} bits" for b in bits])
    ax.set_ylabel(f"accuracy change vs fp32 (points, {images:,} test images)")
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig
