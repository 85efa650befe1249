"""AWQ, activation-aware weight quantization (Lin et al. 2023), from first principles: lesson 15.

The few input channels with large activations matter most to a layer's output. Scaling
weight column j up by s_j before rounding (and the input channel down by 1/s_j, folded into
the operation that produces the input) gives those columns a finer grid: relative rounding
error shrinks by about s_j. AWQ grid-searches one exponent α for s = mean|x|^α, choosing
the α with the smallest output error on calibration inputs. Layers that share an input
(q/k/v, gate/up) share s, because one fold must serve them all. After scaling, AWQ also
searches each weight group's clipping range (:func:`clip_search`, the reference code's
``auto_clip``): shrinking a group's max|w| a little trades a few clipped outliers for a finer
grid everywhere else, judged by the layer's output on calibration inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

from helpers import llm_quant as lq
from helpers.llm_model import GroupStats, InputGroup, modules


@dataclass
class AWQResult:
    """The chosen α, the per-input-channel scales s and the output error of every α tried; lesson 15."""
    alpha: float
    scales: torch.Tensor
    errors: dict[float, float] = field(default_factory=dict)


def awq_scales(x_mean: torch.Tensor, alpha: float) -> torch.Tensor:
    """s = mean|x|^α, normalized so that max(s) · min(s) = 1 (keeps weights in range); lesson 15."""
    s = x_mean.clamp_min(1e-8) ** alpha
    return s / torch.sqrt(s.max() * s.min())


def scaled_quantize(w: torch.Tensor, s: torch.Tensor, group_size: int | None = 128, bits: int = 4,
                    symmetric: bool = True) -> torch.Tensor:
    """Q(W · s) / s: the weight AWQ effectively uses once 1/s is folded into its input; lesson 15."""
    return lq.quantize_groupwise(w * s, group_size, bits, symmetric) / s


def awq_search(w: torch.Tensor | list[torch.Tensor], x: torch.Tensor, group_size: int | None = 128,
               bits: int = 4, symmetric: bool = True, grid: int = 20) -> AWQResult:
    """Grid-search α in {0, 1/grid, ..., 1} minimizing the summed output error of the layer(s); lesson 15.

    α = 0 is plain RTN (s = 1), so the search can never do worse than RTN on these inputs.
    """
    weights = [w] if isinstance(w, torch.Tensor) else list(w)
    stacked = torch.cat(weights)
    x = x.reshape(-1, x.shape[-1]).to(stacked.dtype)
    if x.shape[1] != stacked.shape[1]:
        raise ValueError(f"inputs have {x.shape[1]} channels, the weight {stacked.shape[1]} columns")
    x_mean = x.abs().mean(dim=0)
    reference = x @ stacked.T
    best, errors = None, {}
    for k in range(grid + 1):
        alpha = k / grid
        s = awq_scales(x_mean, alpha)
        w_hat = scaled_quantize(stacked, s, group_size, bits, symmetric)
        errors[alpha] = float(((reference - x @ w_hat.T) ** 2).mean())
        if best is None or errors[alpha] < errors[best[0]]:
            best = (alpha, s)
    return AWQResult(best[0], best[1], errors)


def clip_search(w: torch.Tensor, x: torch.Tensor, group_size: int = 128, bits: int = 4,
                steps: int = 20, max_shrink: float = 0.5, tokens: int = 512) -> torch.Tensor:
    """W with each (row, group) clipped to the fraction of its max|w| that best keeps x @ W.T; lesson 15.

    Symmetric grids only. Tries max|w| · (1 - i / steps) for i < max_shrink · steps (i = 0, no
    clipping, is always a candidate, so no group gets worse on these inputs) and keeps, per
    output row and input group, the ratio with the smallest error of that group's partial sums
    over up to ``tokens`` calibration rows.
    """
    qmin, qmax = lq.int_range(bits, symmetric=True)
    x = x.reshape(-1, x.shape[-1]).to(w.dtype)
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"inputs have {x.shape[1]} channels, the weight {w.shape[1]} columns")
    x = x[torch.linspace(0, len(x) - 1, min(tokens, len(x))).long()]
    pad = -w.shape[1] % group_size  # zero columns change neither max|w| nor any partial sum
    w_g = torch.nn.functional.pad(w, (0, pad)).reshape(w.shape[0], -1, group_size)  # (out, G, g)
    x_g = torch.nn.functional.pad(x, (0, pad)).reshape(len(x), -1, group_size).transpose(0, 1)
    reference = x_g @ w_g.permute(1, 2, 0)  # (G, tokens, out): each group's partial sums
    peak = w_g.abs().amax(dim=2, keepdim=True)  # (out, G, 1)
    best_err = torch.full(peak.shape[:2], float("inf"), dtype=w.dtype)
    best_max = peak.clone()
    for i in range(max(1, int(max_shrink * steps))):
        limit = peak * (1 - i / steps)
        scale = (limit / qmax).clamp_min(lq.EPS)
        w_q = torch.clamp(torch.round(torch.clamp(w_g, -limit, limit) / scale), qmin, qmax) * scale
        err = ((x_g @ w_q.permute(1, 2, 0) - reference) ** 2).mean(dim=1).T  # (out, G)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_max = torch.where(better[..., None], limit, best_max)
    clipped = torch.clamp(w_g, -best_max, best_max).reshape(w.shape[0], -1)
    return clipped[:, : w.shape[1]]


def awq(w: torch.Tensor, x: torch.Tensor, group_size: int | None = 128, bits: int = 4,
        symmetric: bool = True, grid: int = 20) -> tuple[torch.Tensor, AWQResult]:
    """(Q(W·s)/s with the searched s, the search result) for one layer; lesson 15."""
    result = awq_search(w, x, group_size, bits, symmetric, grid)
    return scaled_quantize(w, result.scales, group_size, bits, symmetric), result


def awq_weights(model, groups: list[InputGroup], stats: dict[str, GroupStats], group_size: int | None = 128,
                bits: int = 4, symmetric: bool = True, grid: int = 20, clip: bool = True,
                progress: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, AWQResult], float]:
    """(AWQ weights by layer, search results by group, seconds); groups without a fold get RTN; lesson 15.

    With ``clip`` (symmetric groups only), each scaled weight also gets :func:`clip_search`,
    except q_proj and k_proj: as in the reference code, attention scores are left unclipped.
    """
    from tqdm.auto import tqdm

    found = modules(model)
    out: dict[str, torch.Tensor] = {}
    results: dict[str, AWQResult] = {}
    start = time.perf_counter()
    for group in tqdm(groups, desc=f"AWQ w{bits}", disable=not progress, leave=False):
        weights = [found[n].weight.detach() for n in group.linears]
        if group.fold_into is None:  # nowhere to put 1/s: plain round-to-nearest
            for name, w in zip(group.linears, weights, strict=True):
                out[name] = lq.quantize_groupwise(w, group_size, bits, symmetric)
            continue
        x = stats[group.name].x
        result = awq_search(weights, x, group_size, bits, symmetric, grid)
        results[group.name] = result
        s = result.scales
        for name, w in zip(group.linears, weights, strict=True):
            if clip and symmetric and group_size and not name.endswith(("q_proj", "k_proj")):
                w = clip_search(w * s, x.reshape(-1, x.shape[-1]) / s, group_size, bits) / s
            out[name] = scaled_quantize(w, s, group_size, bits, symmetric)
    return out, results, time.perf_counter() - start


def fold_into_norm(norm_weight: torch.Tensor, linear_weights: list[torch.Tensor],
                   s: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Deployable form: norm weight / s and each W · s, so the network computes the same; lesson 15."""
    return norm_weight / s, [w * s for w in linear_weights]
