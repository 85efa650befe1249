"""AWQ, activation-aware weight quantization (Lin et al. 2023), from first principles: lesson 15.

The few input channels with large activations matter most to a layer's output. Scaling
weight column j up by s_j before rounding (and the input channel down by 1/s_j, folded into
the operation that produces the input) gives those columns a finer grid: relative rounding
error shrinks by about s_j. AWQ grid-searches one exponent α for s = mean|x|^α, choosing
the α with the smallest output error on calibration inputs. Layers that share an input
(q/k/v, gate/up) share s, because one fold must serve them all.
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


def awq(w: torch.Tensor, x: torch.Tensor, group_size: int | None = 128, bits: int = 4,
        symmetric: bool = True, grid: int = 20) -> tuple[torch.Tensor, AWQResult]:
    """(Q(W·s)/s with the searched s, the search result) for one layer; lesson 15."""
    result = awq_search(w, x, group_size, bits, symmetric, grid)
    return scaled_quantize(w, result.scales, group_size, bits, symmetric), result


def awq_weights(model, groups: list[InputGroup], stats: dict[str, GroupStats], group_size: int | None = 128,
                bits: int = 4, symmetric: bool = True, grid: int = 20,
                progress: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, AWQResult], float]:
    """(AWQ weights by layer, search results by group, seconds); groups without a fold get RTN; lesson 15."""
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
        result = awq_search(weights, stats[group.name].x, group_size, bits, symmetric, grid)
        results[group.name] = result
        for name, w in zip(group.linears, weights, strict=True):
            out[name] = scaled_quantize(w, result.scales, group_size, bits, symmetric)
    return out, results, time.perf_counter() - start


def fold_into_norm(norm_weight: torch.Tensor, linear_weights: list[torch.Tensor],
                   s: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Deployable form: norm weight / s and each W · s, so the network computes the same; lesson 15."""
    return norm_weight / s, [w * s for w in linear_weights]
