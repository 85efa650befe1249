"""AdaRound: learn whether each weight rounds up or down; lesson 14 (advanced PTQ).

Introduced in lesson 14, after "Up or Down? Adaptive Rounding for Post-Training Quantization"
(Nagel et al. 2020). Rounding each weight to the nearest grid point minimizes each weight's
own error, not the layer's output error. AdaRound keeps the grid and learns, per weight, a
soft choice h in [0, 1] between floor(w / s) and floor(w / s) + 1:

* :func:`rectified_sigmoid`: h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1), stretched
  past [0, 1] and clipped so that h can reach exactly 0 or 1 with a non-zero gradient nearby;
* :func:`rounding_regularizer`: sum(1 - |2h - 1|^beta), zero only when every h is 0 or 1;
  beta is annealed from 20 (gentle) to 2 (forces decisions);
* :func:`adaround`: one layer, by reconstructing its output on calibration inputs with Adam;
* :func:`adaround_model`: every layer in order, each reading the inputs the already-rounded
  layers before it produce, so later layers learn to compensate earlier errors.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from helpers import quant_sim, range_search

ZETA, GAMMA = 1.1, -0.1


def rectified_sigmoid(v: torch.Tensor, zeta: float = ZETA, gamma: float = GAMMA) -> torch.Tensor:
    """h(V) = clip(sigmoid(V) * (zeta - gamma) + gamma, 0, 1); lesson 14."""
    return torch.clamp(torch.sigmoid(v) * (zeta - gamma) + gamma, 0.0, 1.0)


def rounding_regularizer(h: torch.Tensor, beta: float) -> torch.Tensor:
    """sum(1 - |2h - 1|^beta): zero when every h is 0 or 1; lesson 14."""
    return (1 - (2 * h - 1).abs().pow(beta)).sum()


def symmetric_scale(weight: torch.Tensor, bits: int, per_channel: bool = False,
                    method: str = "minmax") -> torch.Tensor:
    """The step size of a symmetric grid, per tensor or per output channel (broadcastable); lesson 14."""
    axis = 0 if per_channel else None
    lo, hi = range_search.choose_range(weight.detach(), method, bits, symmetric=True, axis=axis)
    return (torch.maximum(-lo, hi) / (2 ** (bits - 1) - 1)).clamp(min=1e-12)


def _layer_forward(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(x, weight, layer.bias, layer.stride, layer.padding, layer.dilation,
                        layer.groups)
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, layer.bias)
    raise TypeError(f"AdaRound handles Linear and Conv2d layers, got {type(layer).__name__}")


def reconstruction_loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error summed over channels, averaged over images and positions; lesson 14."""
    return (out - target).pow(2).sum(dim=1).mean()


@dataclass
class AdaRoundResult:
    """The learned integer weights of one layer and how they differ from round-to-nearest."""

    weight_int: torch.Tensor
    scale: torch.Tensor
    flipped_fraction: float     # share of weights rounded the other way than nearest
    h: torch.Tensor             # final soft rounding values, 0 or 1 when converged
    loss_adaround: float        # reconstruction loss with the learned rounding
    loss_nearest: float         # reconstruction loss with round-to-nearest

    def weight(self) -> torch.Tensor:
        """The dequantized weight, scale * integer weight."""
        return self.weight_int * self.scale


def adaround(layer: nn.Module, inputs: torch.Tensor, bits: int = 4, per_channel: bool = False,
             target: torch.Tensor | None = None, iterations: int = 1000, lr: float = 1e-2,
             reg_weight: float = 0.1, beta: tuple[float, float] = (20.0, 2.0),
             warmup: float = 0.2, batch_size: int = 64, range_method: str = "minmax",
             seed: int = 0) -> AdaRoundResult:
    """Learn each weight's rounding by layer-wise output reconstruction with Adam; lesson 14.

    ``target`` is the output to reconstruct (default: the float layer on ``inputs``). The
    first ``warmup`` share of iterations optimizes the reconstruction alone; then the
    regularizer joins with beta decaying linearly from ``beta[0]`` to ``beta[1]``. The layer
    is not modified; use ``result.weight()``.
    """
    generator = torch.Generator().manual_seed(seed)
    weight = layer.weight.detach()
    scale = symmetric_scale(weight, bits, per_channel, range_method)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    w_floor = torch.floor(weight / scale)
    rest = (weight / scale - w_floor).clamp(1e-4, 1 - 1e-4)
    # Start where h(V) equals the fractional part, i.e. at the float weight.
    v = -torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1)
    v = v.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([v], lr=lr)
    if target is None:
        with torch.no_grad():
            target = _layer_forward(layer, inputs, weight)
    start = int(warmup * iterations)
    for step in range(iterations):
        index = torch.randint(len(inputs), (min(batch_size, len(inputs)),), generator=generator)
        h = rectified_sigmoid(v)
        w_soft = torch.clamp(w_floor + h, qmin, qmax) * scale
        loss = reconstruction_loss(_layer_forward(layer, inputs[index], w_soft), target[index])
        if step >= start:
            progress = (step - start) / max(1, iterations - start)
            b = beta[0] + (beta[1] - beta[0]) * progress
            loss = loss + reg_weight * rounding_regularizer(h, b)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        h = rectified_sigmoid(v)
        weight_int = torch.clamp(w_floor + (h >= 0.5).float(), qmin, qmax)
        nearest = torch.clamp(torch.round(weight / scale), qmin, qmax)
        loss_ada = reconstruction_loss(_layer_forward(layer, inputs, weight_int * scale), target)
        loss_rtn = reconstruction_loss(_layer_forward(layer, inputs, nearest * scale), target)
    return AdaRoundResult(weight_int, scale, float((weight_int != nearest).float().mean()),
                          h.detach(), float(loss_ada), float(loss_rtn))


@dataclass
class ModelAdaRound:
    """AdaRound of a whole model: the weights to pass to quant_sim.quantize, and per-layer results."""

    weights: dict[str, torch.Tensor]
    layers: dict[str, AdaRoundResult]
    seconds: float

    @property
    def flipped_fraction(self) -> float:
        """Share of all rounded weights that differ from round-to-nearest."""
        flipped = sum(r.flipped_fraction * r.weight_int.numel() for r in self.layers.values())
        return flipped / sum(r.weight_int.numel() for r in self.layers.values())


def adaround_model(folded: nn.Module, calib_x: torch.Tensor, config: quant_sim.QuantConfig,
                   iterations: int = 1000, layers: Mapping[str, int] | None = None,
                   progress: bool = True, **kwargs) -> ModelAdaRound:
    """AdaRound every conv / linear layer of a folded model, in execution order; lesson 14.

    Layer k reads the output of the already-rounded layers before it (with activations
    quantized as ``config`` says) and reconstructs the float model's layer-k output on the
    same calibration images. ``layers`` limits it to some layers (name -> bits); the others
    keep round-to-nearest at ``config``'s bits. Extra keyword arguments go to :func:`adaround`.
    """
    start = time.perf_counter()
    float_layers = quant_sim.weight_layers(folded)
    chosen = dict(layers) if layers is not None else {n: config.bits_of(n) for n in float_layers}
    targets = quant_sim.layer_outputs(folded, calib_x)
    inputs = quant_sim.layer_inputs(folded, calib_x)
    weights: dict[str, torch.Tensor] = {}
    results: dict[str, AdaRoundResult] = {}
    for name in tqdm(list(chosen), desc="AdaRound", leave=False, disable=not progress):
        quantized = quant_sim.quantize(folded, calib_x, config, weights=weights, inputs=inputs)
        seen = quant_sim.layer_inputs(quantized, calib_x)[name]
        result = adaround(float_layers[name], seen, bits=chosen[name],
                          per_channel=config.per_channel, target=targets[name],
                          iterations=iterations, range_method=config.weight_range, **kwargs)
        weights[name], results[name] = result.weight(), result
    return ModelAdaRound(weights, results, time.perf_counter() - start)
