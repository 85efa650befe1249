"""Cross-layer equalization, bias correction and clipping-range search: lesson 14 (advanced PTQ).

Introduced in lesson 14. Three data-free or calibration-only fixes applied before rounding:

* :func:`equalize_pair` / :func:`equalize_chain`: cross-layer equalization (Nagel et al. 2019,
  "Data-Free Quantization"). For output channel i of layer 1 with weight range r1_i and input
  column i of layer 2 with range r2_i, s_i = sqrt(r1_i * r2_i) / r2_i, then W1 <- W1 / s,
  b1 <- b1 / s, W2 <- W2 * s. Both ranges become sqrt(r1_i * r2_i). Exact when the activation
  between them is positively homogeneous (ReLU: relu(y / s) * s = relu(y) for s > 0).
* :func:`relu6_report`: ReLU6 is not homogeneous (its clip at 6 moves to 6 / s); the report says
  how many calibration activations would change, and whether ReLU6 may safely become ReLU.
* :func:`empirical_bias_correction`: subtract E[W_q x - W x] per output channel.
* :func:`search_clip`: MSE-optimal clipping by grid search, against :func:`minmax_range` and
  :func:`percentile_range`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Layer = nn.Linear | nn.Conv2d


def _out_ranges(layer: Layer) -> torch.Tensor:
    """Max |w| per output channel (row of a linear layer, filter of a conv)."""
    return layer.weight.detach().abs().flatten(1).amax(dim=1)


def _in_ranges(layer: Layer) -> torch.Tensor:
    """Max |w| per input channel; convs with groups=1 or depthwise (groups=channels) only."""
    w = layer.weight.detach().abs()
    if isinstance(layer, nn.Conv2d) and layer.groups > 1:
        if layer.groups != layer.in_channels or w.shape[1] != 1:
            raise ValueError("layer 2 must be a regular or a depthwise conv (groups=in_channels)")
        return w.reshape(layer.in_channels, -1).amax(dim=1)
    return w.transpose(0, 1).flatten(1).amax(dim=1)


def equalization_scales(layer1: Layer, layer2: Layer) -> torch.Tensor:
    """s_i = sqrt(r1_i * r2_i) / r2_i for each channel between two layers; lesson 14."""
    r1, r2 = _out_ranges(layer1), _in_ranges(layer2)
    if r1.shape != r2.shape:
        raise ValueError(f"layer 1 has {r1.numel()} outputs but layer 2 reads {r2.numel()} channels")
    scales = torch.sqrt(r1 * r2) / r2
    # A dead channel (a zero range on either side) is left alone.
    return torch.where((r1 > 0) & (r2 > 0), scales, torch.ones_like(scales))


@torch.no_grad()
def apply_scales(layer1: Layer, layer2: Layer, scales: torch.Tensor) -> None:
    """W1 <- W1 / s, b1 <- b1 / s, W2 <- W2 * s (per channel, in place); lesson 14."""
    shape1 = (-1,) + (1,) * (layer1.weight.dim() - 1)
    layer1.weight.div_(scales.reshape(shape1))
    if layer1.bias is not None:
        layer1.bias.div_(scales)
    w2 = layer2.weight
    if isinstance(layer2, nn.Conv2d) and layer2.groups > 1:
        w2.mul_(scales.reshape(-1, 1, 1, 1).repeat_interleave(w2.shape[0] // scales.numel(), 0))
    else:
        w2.mul_(scales.reshape((1, -1) + (1,) * (w2.dim() - 2)))


def equalize_pair(layer1: Layer, layer2: Layer) -> torch.Tensor:
    """Equalize one pair in place and return the scales used; lesson 14."""
    scales = equalization_scales(layer1, layer2)
    apply_scales(layer1, layer2, scales)
    return scales


def equalize_chain(layers: list[Layer], iterations: int = 20, tol: float = 1e-6) -> list[torch.Tensor]:
    """Equalize consecutive pairs of a chain, sweeping until the scales settle; lesson 14.

    Returns the accumulated scale of each pair (what relu6_report needs).
    """
    if len(layers) < 2:
        raise ValueError("a chain needs at least two layers")
    total = [torch.ones_like(_out_ranges(layer)) for layer in layers[:-1]]
    for _ in range(iterations):
        change = 0.0
        for k, (first, second) in enumerate(zip(layers[:-1], layers[1:], strict=True)):
            scales = equalize_pair(first, second)
            total[k] = total[k] * scales
            change = max(change, float((scales - 1).abs().max()))
        if change < tol:
            break
    return total


@dataclass(frozen=True)
class Relu6Report:
    """What ReLU6 does after equalization, measured on calibration pre-activations."""

    changed_if_kept: float      # fraction of outputs that differ when ReLU6 stays
    changed_if_relu: float      # fraction that differ when ReLU6 becomes ReLU
    max_preactivation: float    # largest original pre-activation seen
    safe_to_replace: bool       # True when no equalized pre-activation exceeds 6 / s

    def __str__(self) -> str:
        verdict = "replace ReLU6 by ReLU" if self.safe_to_replace else "equalization is not exact"
        return (f"ReLU6 after CLE: {self.changed_if_kept:.2%} of outputs change if kept, "
                f"{self.changed_if_relu:.2%} if replaced by ReLU (max pre-activation "
                f"{self.max_preactivation:.2f}): {verdict}")


def relu6_report(pre_activations: torch.Tensor, scales: torch.Tensor) -> Relu6Report:
    """How ReLU6 breaks equalization, from original pre-activations (N, C, ...); lesson 14.

    The equalized layer outputs y / s; relu6(y / s) * s clips at 6 s instead of 6, and
    relu(y / s) * s equals relu6(y) only where y <= 6, i.e. y / s <= 6 / s.
    """
    y = pre_activations.detach()
    s = scales.reshape((1, -1) + (1,) * (y.dim() - 2))
    original = F.relu6(y)
    kept = F.relu6(y / s) * s
    replaced = F.relu(y / s) * s
    changed_kept = float((~torch.isclose(kept, original, atol=1e-6)).float().mean())
    changed_relu = float((~torch.isclose(replaced, original, atol=1e-6)).float().mean())
    return Relu6Report(changed_kept, changed_relu, float(y.max()), bool((y / s <= 6 / s).all()))


@torch.no_grad()
def empirical_bias_correction(layer: Layer, weight_q: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Set the layer's weight to weight_q and subtract E[W_q x - W x] from its bias; lesson 14.

    The expected error is measured per output channel on calibration ``inputs``, averaged over
    the batch (and over positions for convs). Returns the correction that was subtracted.
    """
    reference = layer(inputs)
    layer.weight.copy_(weight_q)
    error = layer(inputs) - reference
    correction = error.transpose(0, 1).flatten(1).mean(dim=1)
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros_like(correction))
    layer.bias.sub_(correction)
    return correction


def fake_quant(x: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float, bits: int,
               symmetric: bool = True) -> torch.Tensor:
    """Quantize-dequantize x on the range [lo, hi] (tensors broadcast per channel); lesson 14."""
    lo, hi = torch.as_tensor(lo, dtype=x.dtype), torch.as_tensor(hi, dtype=x.dtype)
    if symmetric:
        qmax = 2 ** (bits - 1) - 1
        scale = torch.clamp(torch.maximum(-lo, hi) / qmax, min=1e-12)
        return torch.clamp(torch.round(x / scale), -qmax - 1, qmax) * scale
    qmax = 2**bits - 1
    lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    scale = torch.clamp((hi - lo) / qmax, min=1e-12)
    zero = torch.round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, qmax) - zero) * scale


def _per_channel(x: torch.Tensor, axis: int | None) -> tuple[torch.Tensor, tuple[int, ...]]:
    """x as (channels, values) and the shape that broadcasts a channel vector back."""
    if axis is None:
        return x.reshape(1, -1), (1,) * x.dim()
    shape = [1] * x.dim()
    shape[axis] = x.shape[axis]
    return x.transpose(0, axis).flatten(1), tuple(shape)


def minmax_range(x: torch.Tensor, axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(min, max) per tensor or per channel along ``axis``; lesson 14."""
    flat, shape = _per_channel(x, axis)
    return flat.amin(dim=1).reshape(shape), flat.amax(dim=1).reshape(shape)


def percentile_range(x: torch.Tensor, percent: float = 99.99,
                     axis: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(lower, upper) percentiles per tensor or per channel; lesson 14."""
    flat, shape = _per_channel(x, axis)
    q = torch.tensor([1 - percent / 100, percent / 100], dtype=flat.dtype)
    bounds = torch.quantile(flat, q, dim=1)
    return bounds[0].reshape(shape), bounds[1].reshape(shape)


def search_clip(x: torch.Tensor, bits: int, symmetric: bool = True, axis: int | None = None,
                grid: int = 100, min_ratio: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """MSE-optimal (lo, hi): the min-max range shrunk by the best of ``grid`` ratios; lesson 14.

    The search is per tensor (``axis=None``) or per channel along ``axis``; ratio 1.0 (min-max)
    is in the grid, so the result's MSE is never above min-max's.
    """
    lo, hi = minmax_range(x, axis)
    flat, shape = _per_channel(x, axis)
    best_err = torch.full((flat.shape[0],), math.inf, dtype=flat.dtype)
    best_ratio = torch.ones_like(best_err)
    for ratio in torch.linspace(min_ratio, 1.0, grid):
        err = (fake_quant(x, lo * ratio, hi * ratio, bits, symmetric) - x).pow(2)
        err = _per_channel(err, axis)[0].mean(dim=1)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best_ratio = torch.where(better, ratio, best_ratio)
    return lo * best_ratio.reshape(shape), hi * best_ratio.reshape(shape)


def quant_mse(x: torch.Tensor, lo: torch.Tensor | float, hi: torch.Tensor | float, bits: int,
              symmetric: bool = True) -> float:
    """Mean squared quantization error of x on the range [lo, hi]; lesson 14."""
    return float((fake_quant(x, lo, hi, bits, symmetric) - x).pow(2).mean())
