"""Figures for lesson 01 (number formats): bit fields, spacing, memory, arithmetic intensity."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from helpers import formats

FIELD_COLORS = {"sign": "#E45756", "exponent": "#4C78A8", "mantissa": "#54A24B"}
FORMAT_COLORS = {"fp32": "#4C78A8", "fp16": "#F58518", "bf16": "#E45756", "fp8_e4m3": "#72B7B2",
                 "fp8_e5m2": "#54A24B", "int8": "#B279A2", "uint8": "#FF9DA6", "int4": "#9D755D"}


def bit_fields(fields: Sequence[formats.FloatFields]):
    """One row of coloured bit boxes (sign, exponent, mantissa) per stored float; lesson 01."""
    if not fields:
        raise ValueError("bit_fields() needs at least one FloatFields (formats.float_fields(x, fmt))")
    width = max(1 + f.exponent_bits + f.mantissa_bits for f in fields)
    fig, ax = plt.subplots(figsize=(min(0.32 * width + 4.5, 15), 0.6 * len(fields) + 1.2))
    for row, f in enumerate(fields):
        y = len(fields) - 1 - row
        bits = f.bit_string.replace(" | ", "")
        kinds = ["sign"] + ["exponent"] * f.exponent_bits + ["mantissa"] * f.mantissa_bits
        for col, (bit, kind) in enumerate(zip(bits, kinds, strict=True)):
            ax.add_patch(plt.Rectangle((col, y), 0.92, 0.8, color=FIELD_COLORS[kind]))
            ax.text(col + 0.46, y + 0.4, bit, ha="center", va="center", color="white", fontsize=8)
        ax.text(-0.5, y + 0.4, f.fmt, ha="right", va="center", fontsize=9)
        ax.text(len(bits) + 0.5, y + 0.4, f"= {f.value:.8g}", ha="left", va="center", fontsize=9)
    for kind, color in FIELD_COLORS.items():
        ax.bar(0, 0, color=color, label=kind)
    ax.set_xlim(-4, width + 6)
    ax.set_ylim(-0.3, len(fields) + 0.2)
    ax.set_xlabel("bit position (most significant first)")
    ax.set_yticks([])
    ax.set_title("How each format stores the same number")
    ax.legend(loc="upper right", ncol=3, fontsize=8, frameon=False, bbox_to_anchor=(1, 1.25))
    fig.tight_layout()
    return fig


def spacing_vs_magnitude(float_formats: Sequence[str] = ("fp32", "fp16", "bf16", "fp8_e4m3",
                         "fp8_e5m2"), int_formats: Mapping[str, float] | None = None,
                         magnitudes: np.ndarray | None = None):
    """Gap to the next representable value against magnitude, log-log; lesson 01.

    ``int_formats`` maps an integer format to the range x_max its scale covers.
    """
    x = np.logspace(-9, 6, 3000) if magnitudes is None else np.asarray(magnitudes, dtype=float)
    fig, ax = plt.subplots(figsize=(8.5, 4.8))
    for fmt in float_formats:
        ax.step(x, formats.spacing(x, fmt), where="post", label=fmt, lw=1.4,
                color=FORMAT_COLORS.get(fmt))
    for fmt, x_max in (int_formats or {}).items():
        ax.plot(x, formats.spacing(x, fmt, x_max=x_max), lw=2.2, ls="--",
                label=f"{fmt} covering ±{x_max:g}", color=FORMAT_COLORS.get(fmt))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("magnitude |x|")
    ax.set_ylabel("gap to the next representable value")
    ax.set_title("Floats keep the relative gap constant; integers keep the absolute gap constant")
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def memory_bars(memory: Mapping[str, Mapping[str, int]]):
    """Grouped bars: megabytes of each model (a group) in each format (a bar); lesson 01."""
    if not memory:
        raise ValueError("memory_bars() needs {model: {format: bytes}}")
    models = list(memory)
    fmts = list(next(iter(memory.values())))
    fig, ax = plt.subplots(figsize=(8.5, 4))
    width = 0.8 / len(fmts)
    for i, fmt in enumerate(fmts):
        values = [memory[m][fmt] / 1e6 for m in models]
        bars = ax.bar(np.arange(len(models)) + i * width, values, width, label=fmt,
                      color=FORMAT_COLORS.get(fmt))
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(np.arange(len(models)) + width * (len(fmts) - 1) / 2, models)
    ax.set_xlabel("model")
    top = max(max(table.values()) for table in memory.values()) / 1e6
    ax.set_ylim(0, top * 1.25)  # headroom so the legend never covers a bar
    ax.set_ylabel("weights (MB, 10^6 bytes)")
    ax.set_title("Memory of the weights at each width (parameter count × bits / 8)")
    ax.legend(fontsize=8, ncol=len(fmts))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def intensity_vs_batch(batches: Sequence[int], intensity: Mapping[str, Sequence[float]],
                       machine_balance: float | None = None):
    """FLOPs per byte of a Linear layer against batch size, one line per weight format; lesson 01.

    ``machine_balance`` (FLOPs the CPU can do per byte it can read) draws the ridge: below it
    a layer waits for memory, above it for arithmetic.
    """
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, values in intensity.items():
        ax.plot(batches, values, marker="o", ms=3, label=label, color=FORMAT_COLORS.get(label))
    if machine_balance is not None:
        ax.axhline(machine_balance, color="grey", ls="--",
                   label=f"this CPU's balance ({machine_balance:.0f} FLOP/byte)")
        ax.fill_between(batches, 1e-2, machine_balance, color="grey", alpha=0.08)
        ax.text(batches[0], machine_balance * 0.6, "memory-bound", fontsize=9, color="grey")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_ylim(bottom=0.1)
    ax.set_xlabel("batch size (rows of activations, tokens or pixels)")
    ax.set_ylabel("arithmetic intensity (FLOP / byte)")
    ax.set_title("Small batches are memory-bound: fewer weight bytes means faster")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
