"""Figures for lesson 15 (transformers and LLMs): outliers, sizes, sweeps, methods, KV cache, speed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

_PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#B279A2", "#72B7B2", "#9D755D", "#BAB0AC")


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=float)


def channel_maxima(series: Mapping[str, object], title: str = "max |x| per input channel"):
    """One panel per layer input: max |x| of every channel (log scale), the top channel marked; lesson 15."""
    if not series:
        raise ValueError("channel_maxima() needs at least one {name: per-channel maxima}")
    fig, axes = plt.subplots(len(series), 1, figsize=(9, 2.2 * len(series)), squeeze=False)
    for ax, (name, values) in zip(axes[:, 0], series.items(), strict=True):
        v = _np(values)
        ax.vlines(np.arange(len(v)), 0, v, color=_PALETTE[0], lw=1)  # one line per channel: fast
        top = int(v.argmax())
        ax.annotate(f"channel {top}: {v[top]:.3g} ({v[top] / np.median(v):.0f}x median)", (top, v[top]),
                    textcoords="offset points", xytext=(8, -12), fontsize=8, color=_PALETTE[3])
        ax.axhline(np.median(v), color=_PALETTE[1], lw=1, ls="--", label="median channel")
        ax.set_yscale("log")
        ax.set_ylabel("max |x|")
        ax.set_title(name, fontsize=9)
        ax.set_xlim(-1, len(v))
        ax.legend(fontsize=8, loc="upper right")
    axes[-1, 0].set_xlabel("input channel")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def sizes_and_ceilings(sizes_mb: Mapping[str, float], ceilings: Mapping[str, float], bandwidth_gb_s: float):
    """Bytes read per token by format, annotated with the bandwidth ceiling in tokens/s; lesson 15."""
    names = list(sizes_mb)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(names) + 1.4))
    values = [sizes_mb[n] for n in names]
    ax.barh(names, values, color=_PALETTE[0])
    for y, (name, value) in enumerate(zip(names, values, strict=True)):
        ax.text(value, y, f" {value:.0f} MB -> at most {ceilings[name]:.0f} tokens/s", va="center",
                fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.7)
    ax.set_xlabel("weight bytes read per generated token (MB)")
    ax.set_title(f"batch-1 decoding ceiling at the measured {bandwidth_gb_s:.1f} GB/s")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def alpha_sweep(alphas: Sequence[float], val_ppl: Sequence[float], naive_val_ppl: float, chosen: float):
    """SmoothQuant's validation perplexity against α, with naive W8A8 for reference; lesson 15."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ax.plot(alphas, val_ppl, "o-", color=_PALETTE[0], label="SmoothQuant W8A8")
    ax.axhline(naive_val_ppl, color=_PALETTE[3], ls="--", label="naive per-tensor W8A8")
    ax.axvline(chosen, color=_PALETTE[2], ls=":", label=f"chosen α = {chosen}")
    ax.set_xlabel("migration strength α (0: all difficulty on activations, 1: all on weights)")
    ax.set_ylabel("perplexity on the val text")
    ax.set_title("choosing α on validation text, never on the test text")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def group_tradeoff(rows: Sequence[Mapping], title: str = "int4 round-to-nearest: error against storage"):
    """Layer output error against bits per weight (rows: kind, group, bits_per_weight, error); lesson 15."""
    fig, ax = plt.subplots(figsize=(6.8, 3.8))
    kinds = sorted({r["kind"] for r in rows})
    for i, kind in enumerate(kinds):
        pts = sorted((r for r in rows if r["kind"] == kind), key=lambda r: r["bits_per_weight"])
        ax.plot([r["bits_per_weight"] for r in pts], [r["error"] for r in pts], "o-",
                color=_PALETTE[i % len(_PALETTE)], label=kind)
        for r in pts:
            ax.annotate(f"g{r['group']}", (r["bits_per_weight"], r["error"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=8)
    ax.set_xlabel("bits per weight (codes + scales + zero points)")
    ax.set_ylabel("mean relative layer output error")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def perplexity_bars(rows: Sequence[Mapping], baseline: float, title: str = "held-out perplexity"):
    """Bars of perplexity with 95 % bootstrap intervals (rows: label, ppl, low, high); lesson 15."""
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 3.8))
    x = np.arange(len(rows))
    ppl = np.array([r["ppl"] for r in rows])
    err = np.array([[r["ppl"] - r["low"] for r in rows], [r["high"] - r["ppl"] for r in rows]])
    colors = [_PALETTE[i % len(_PALETTE)] for i in range(len(rows))]
    ax.bar(x, ppl, yerr=err, capsize=4, color=colors)
    ax.axhline(baseline, color="black", lw=1, ls="--", label=f"fp32 (the dequantized GGUF) {baseline:.2f}")
    for xi, p in zip(x, ppl, strict=True):
        ax.text(xi, p, f"{p:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [r["label"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("perplexity (log scale, 95 % interval)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def layer_errors(errors: Mapping[str, Sequence[float]], title: str = "relative output error per layer"):
    """One line per method: relative output error of each quantized layer, in model order; lesson 15."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for i, (name, values) in enumerate(errors.items()):
        ax.plot(np.arange(len(values)), values, ".-", lw=1, color=_PALETTE[i % len(_PALETTE)], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("quantized Linear layer (model order)")
    ax.set_ylabel("||X(W - W_hat)^T|| / ||X W^T||")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def value_grids(grids: Mapping[str, Sequence[float]], title: str = "the values a 4-bit code can take"):
    """Each format's representable values on a shared axis (scaled to max 1); lesson 15."""
    fig, ax = plt.subplots(figsize=(8, 0.7 * len(grids) + 1.2))
    for y, values in enumerate(grids.values()):
        v = np.asarray(values, dtype=float)
        v = v / np.abs(v).max()
        ax.scatter(v, np.full_like(v, y), s=30, color=_PALETTE[y % len(_PALETTE)])
    ax.set_yticks(range(len(grids)), list(grids))
    ax.set_xlabel("value / largest value")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def kv_tradeoff(rows: Sequence[Mapping], baseline: float, title: str = "KV cache: bytes against perplexity"):
    """Perplexity against KV-cache bytes per token (rows: label, bytes_per_token, ppl); lesson 15."""
    fig, ax = plt.subplots(figsize=(6.8, 3.8))
    for i, r in enumerate(rows):
        ax.scatter(r["bytes_per_token"] / 1024, r["ppl"], color=_PALETTE[i % len(_PALETTE)], s=40)
        ax.annotate(r["label"], (r["bytes_per_token"] / 1024, r["ppl"]), textcoords="offset points",
                    xytext=(5, 4), fontsize=8)
    ax.axhline(baseline, color="black", lw=1, ls="--", label=f"fp32 cache {baseline:.2f}")
    ax.set_xlabel("KV-cache KiB per token (all layers, K and V)")
    ax.set_ylabel("held-out perplexity")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def speed_bars(rows: Sequence[Mapping], title: str = "decoding speed at batch 1"):
    """Measured tokens/s per config beside its ceiling (rows: label, tokens_per_s, ceiling); lesson 15."""
    fig, ax = plt.subplots(figsize=(max(6.5, 1.1 * len(rows) + 2), 3.8))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["tokens_per_s"] for r in rows], width=0.4, color=_PALETTE[0], label="measured")
    ax.bar(x + 0.2, [r["ceiling"] for r in rows], width=0.4, color=_PALETTE[7],
           label="bandwidth ceiling for the bytes it reads")
    for xi, r in zip(x, rows, strict=True):
        ax.text(xi - 0.2, r["tokens_per_s"], f"{r['tokens_per_s']:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [r["label"] for r in rows], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("tokens per second")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
