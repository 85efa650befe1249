"""Activation outliers in transformers and LLM.int8()'s decomposition (Dettmers et al. 2022): lesson 15.

A handful of hidden channels carry values 10-100x larger than the rest, in the same channels
for every token. LLM.int8() keeps those channels (any |x| above a threshold, 6.0 in the
paper) in 16-bit and multiplies the rest with vector-wise int8: one scale per token row of X
and one per output row of W.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from helpers.llm_model import GroupStats, InputGroup, modules

EPS = 1e-12


@dataclass(frozen=True)
class OutlierSummary:
    """How extreme one input's channel maxima are; lesson 15."""

    name: str
    channels: int
    top_channel: int
    top_over_median: float   # max over channels of max|x_j|, divided by the median channel's
    above_6: int             # channels whose max |x| exceeds LLM.int8()'s threshold 6.0
    above_20x_median: int    # channels 20x above the median channel


def summarize(name: str, absmax: torch.Tensor, threshold: float = 6.0) -> OutlierSummary:
    """Summary of per-channel max |x| of one layer input; lesson 15."""
    median = float(absmax.median().clamp_min(EPS))
    return OutlierSummary(name, absmax.numel(), int(absmax.argmax()), float(absmax.max()) / median,
                          int((absmax > threshold).sum()), int((absmax > 20 * median).sum()))


def outlier_table(stats: dict[str, GroupStats], groups: list[InputGroup]) -> list[OutlierSummary]:
    """One summary per group input, in model order; lesson 15."""
    return [summarize(g.name, stats[g.name].absmax) for g in groups]


def int8_vectorwise(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """X W^T with int8 X (one scale per token row) and int8 W (one per output row); lesson 15."""
    sx = x.abs().amax(dim=-1, keepdim=True).clamp_min(EPS) / 127
    sw = w.abs().amax(dim=1, keepdim=True).clamp_min(EPS) / 127
    qx, qw = torch.round(x / sx), torch.round(w / sw)
    return (qx @ qw.T) * sx * sw.T  # the integer product, rescaled by the outer product of scales


def outlier_columns(x: torch.Tensor, threshold: float = 6.0) -> torch.Tensor:
    """Boolean mask of the input channels where any |x| exceeds the threshold; lesson 15."""
    return (x.reshape(-1, x.shape[-1]).abs() > threshold).any(dim=0)


def llm_int8(x: torch.Tensor, w: torch.Tensor, threshold: float = 6.0) -> torch.Tensor:
    """LLM.int8(): outlier channels in 16-bit floats, the rest vector-wise int8, summed; lesson 15."""
    cols = outlier_columns(x, threshold)
    y = int8_vectorwise(x[..., ~cols], w[:, ~cols])
    if cols.any():
        y = y + (x[..., cols].half() @ w[:, cols].half().T).float()
    return y


def int8_forwards(model, names: list[str], threshold: float | None = 6.0,
                  counter: dict | None = None) -> dict:
    """Forwards for ``llm_model.swapped_forwards``: LLM.int8(), or vector-wise int8 (None); lesson 15.

    ``counter`` (a dict) accumulates ``outlier_columns`` and ``columns`` seen: the share kept in 16 bits.
    """
    found = modules(model)

    def make(_name):
        def forward(module, x):
            w = module.weight
            if threshold is None:
                y = int8_vectorwise(x, w)
            else:
                y = llm_int8(x, w, threshold)
                if counter is not None:
                    counter["outlier_columns"] = counter.get("outlier_columns", 0) + int(
                        outlier_columns(x, threshold).sum())
                    counter["columns"] = counter.get("columns", 0) + x.shape[-1]
            return y if module.bias is None else y + module.bias
        return forward

    missing = [n for n in names if n not in found]
    if missing:
        raise KeyError(f"no modules named {missing[:3]}")
    return {n: make(n) for n in names}
