"""W8A8 with per-tensor scales, and SmoothQuant (Xiao et al. 2022), emulated in torch: lesson 15.

A per-tensor int8 activation scale is set by the largest |x| in the tensor; a few outlier
channels 10-100x larger than the rest leave every other channel with a handful of levels.
SmoothQuant divides each input channel j by s_j = max|X_j|^α / max|W_j|^(1-α) and
multiplies weight column j by s_j: the product is unchanged, the activation outliers shrink
and the weights absorb part of the difficulty. 1/s folds into the norm (or Linear) before.
Activations here are quantized dynamically: one scale per tensor per forward call.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from helpers.llm_model import GroupStats, InputGroup, modules

EPS = 1e-12


def smoothquant_scales(x_absmax: torch.Tensor, w: torch.Tensor | Sequence[torch.Tensor],
                       alpha: float = 0.5) -> torch.Tensor:
    """s_j = max|X_j|^α / max|W_j|^(1-α) per input channel j (weights sharing the input pooled); lesson 15."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha is the share of difficulty moved to the weights, in [0, 1]; got {alpha}")
    stacked = w if isinstance(w, torch.Tensor) else torch.cat(list(w))
    if stacked.shape[1] != x_absmax.shape[0]:
        raise ValueError(f"{x_absmax.shape[0]} activation channels but the weight has "
                         f"{stacked.shape[1]} columns")
    w_absmax = stacked.abs().amax(dim=0).clamp_min(1e-8)
    return (x_absmax.clamp_min(1e-8) ** alpha / w_absmax ** (1 - alpha)).clamp_min(1e-8)


def smooth(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Migrate difficulty: (X / s, W * s), so (X / s) @ (W * s)^T = X @ W^T; lesson 15."""
    return x / s, w * s


def fake_quant_per_tensor(t: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Symmetric per-tensor fake quantization (int8 by default): one scale max|t| / 127; lesson 15."""
    qmax = 2 ** (bits - 1) - 1
    scale = t.abs().max().clamp_min(EPS) / qmax
    return torch.clamp(torch.round(t / scale), -qmax - 1, qmax) * scale


def levels_used(t: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Per channel (last dim): distinct int8 levels used under one per-tensor scale; lesson 15."""
    qmax = 2 ** (bits - 1) - 1
    q = torch.round(t / (t.abs().max().clamp_min(EPS) / qmax)).reshape(-1, t.shape[-1])
    return torch.tensor([len(torch.unique(q[:, j])) for j in range(q.shape[1])])


def w8a8_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None,
                s: torch.Tensor | None = None) -> torch.Tensor:
    """A Linear layer with per-tensor int8 weights and activations, optionally smoothed by s; lesson 15."""
    if s is not None:
        x, w = smooth(x, w, s)
    y = fake_quant_per_tensor(x) @ fake_quant_per_tensor(w).T
    return y if bias is None else y + bias


def _w8a8_forward(w: torch.Tensor, s: torch.Tensor | None):
    # Keep int8 codes and one scale (a quarter of the fp32 bytes) and rebuild W per call.
    scale = w.abs().max().clamp_min(EPS) / 127
    codes = torch.clamp(torch.round(w / scale), -128, 127).to(torch.int8)

    def forward(module, x):
        x = x if s is None else x / s
        y = fake_quant_per_tensor(x) @ (codes.float() * scale).T
        return y if module.bias is None else y + module.bias
    return forward


def w8a8_forwards(model, groups: list[InputGroup], stats: dict[str, GroupStats] | None = None,
                  alpha: float | None = None) -> dict:
    """Forwards for ``llm_model.swapped_forwards``: naive per-tensor W8A8, or smoothed with α; lesson 15.

    With ``alpha``, groups whose input can take a fold get SmoothQuant scales from the
    calibration maxima in ``stats``; the others stay naive.
    """
    if (alpha is None) != (stats is None):
        raise ValueError("pass both stats and alpha for SmoothQuant, or neither for naive W8A8")
    found = modules(model)
    forwards = {}
    for group in groups:
        weights = [found[n].weight.detach() for n in group.linears]
        s = None
        if alpha is not None and group.fold_into is not None:
            s = smoothquant_scales(stats[group.name].absmax, weights, alpha)
        for name, w in zip(group.linears, weights, strict=True):
            forwards[name] = _w8a8_forward(w if s is None else w * s, s)
    return forwards
