"""Mixed precision by sensitivity: which layers can take fewer bits; lesson 14 (advanced PTQ).

Introduced in lesson 14. Layers differ in how much their rounding error costs: a small first
layer reading raw pixels, or the last layer writing the logits, may hurt far more per weight
than a wide middle layer. The recipe (after the idea of HAWQ, Dong et al. 2019, with a cheaper
measure than the Hessian):

* :func:`layer_sensitivity`: for each layer and each candidate bit width, the KL divergence
  between the float model's and the model's predictions when that layer alone drops to those
  bits (every other layer at 8), measured on a **selection** split (val; test is refused);
* :func:`greedy_moves`: the moves "layer L to b bits" ordered by sensitivity per byte saved;
* :func:`search`: apply the moves one after another, score each assignment (and the uniform
  widths) on val, and keep the smallest one whose val accuracy stays within the budget;
* :func:`weight_bytes`: packed weights at their bit widths plus float32 scales and biases.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from helpers import data, quant_sim, stats


def weight_bytes(folded: nn.Module, bits: Mapping[str, int] | int, per_channel: bool = True) -> int:
    """Bytes of packed weights (bits each) plus float32 scales and biases of every layer; lesson 14."""
    total = 0
    for name, layer in quant_sim.weight_layers(folded).items():
        b = bits if isinstance(bits, int) else bits[name]
        scales = layer.weight.shape[0] if per_channel else 1
        bias = layer.bias.numel() if layer.bias is not None else 0
        total += math.ceil(layer.weight.numel() * b / 8) + 4 * (scales + bias)
    return total


def _kl(reference_logits: torch.Tensor, logits: torch.Tensor) -> float:
    return stats.logit_kl(reference_logits.numpy(), logits.numpy())


def layer_sensitivity(folded: nn.Module, calib_x: torch.Tensor, split: data.Split,
                      candidate_bits: Sequence[int] = (6, 4, 3, 2), base_bits: int = 8,
                      per_channel: bool = True, progress: bool = True) -> dict[str, dict[int, float]]:
    """KL(float || one layer at b bits, the rest at ``base_bits``) on ``split``, per layer and b; lesson 14.

    A sensitivity scan chooses layers, so it reads a selection split: the test split is refused.
    """
    data.require_selection_split(split, "layer_sensitivity")
    x, _ = data.torch_tensors(split)
    inputs = quant_sim.layer_inputs(folded, calib_x)
    reference = quant_sim.logits(folded, x)
    names = list(quant_sim.weight_layers(folded))
    table: dict[str, dict[int, float]] = {name: {} for name in names}
    pairs = [(name, b) for name in names for b in candidate_bits]
    for name, b in tqdm(pairs, desc="sensitivity", leave=False, disable=not progress):
        config = quant_sim.QuantConfig(base_bits, base_bits, per_channel, layer_bits={name: b})
        model = quant_sim.quantize(folded, calib_x, config, inputs=inputs)
        table[name][b] = _kl(reference, quant_sim.logits(model, x))
    return table


def greedy_moves(sensitivity: Mapping[str, Mapping[int, float]], folded: nn.Module,
                 base_bits: int = 8) -> list[tuple[str, int]]:
    """Moves (layer, bits), cheapest KL per byte saved first, each layer's bits falling; lesson 14."""
    layers = quant_sim.weight_layers(folded)
    scored = []
    for name, by_bits in sensitivity.items():
        numel = layers[name].weight.numel()
        for b, kl in by_bits.items():
            saved = numel * (base_bits - b) / 8
            scored.append((max(kl, 0.0) / saved, -b, name, b))
    moves, current = [], {name: base_bits for name in sensitivity}
    for _, _, name, b in sorted(scored):
        if b < current[name]:  # a later, cheaper-looking move to more bits would undo a saving
            moves.append((name, b))
            current[name] = b
    return moves


@dataclass
class SearchResult:
    """Every assignment the search scored on val (the greedy path, then uniform widths), and the choice."""

    assignments: list[dict[str, int]]
    sizes: list[int]
    val_accuracy: list[float]
    float_val_accuracy: float
    budget_points: float
    chosen: int  # index into the lists above
    path_length: int  # the first path_length entries are the greedy path, the rest uniform
    val_delta_low: list[float] | None = None  # lower end of each paired 95 % interval vs float, points

    @property
    def bits(self) -> dict[str, int]:
        return self.assignments[self.chosen]

    @property
    def size_bytes(self) -> int:
        return self.sizes[self.chosen]

    def uniform(self) -> dict[int, tuple[int, float]]:
        """Uniform bit width -> (size_bytes, val accuracy) of the uniform assignments scored."""
        return {next(iter(a.values())): (size, acc) for a, size, acc in zip(
            self.assignments[self.path_length:], self.sizes[self.path_length:],
            self.val_accuracy[self.path_length:], strict=True)}


def search(folded: nn.Module, calib_x: torch.Tensor, split: data.Split,
           moves: Sequence[tuple[str, int]], budget_points: float = 0.5, base_bits: int = 8,
           act_bits: int = 8, per_channel: bool = True, uniform_bits: Sequence[int] = (),
           progress: bool = True) -> SearchResult:
    """Score the greedy path and uniform widths on ``split`` (val); keep the smallest in budget; lesson 14.

    In budget means the lower end of the paired 95 % interval against the float model (in
    points) is at least ``-budget_points``, the rule of lessons 07 and 13.

    The path applies ``moves`` one by one from uniform ``base_bits``; ``uniform_bits`` adds
    every layer at each of those widths, so the search never misses a uniform answer.
    """
    data.require_selection_split(split, "the mixed-precision search")
    if budget_points < 0:
        raise ValueError(f"budget_points must be >= 0 (points of accuracy you accept to lose), "
                         f"got {budget_points}")
    x, _ = data.torch_tensors(split)
    inputs = quant_sim.layer_inputs(folded, calib_x)
    float_pred = quant_sim.predict(folded, x).numpy()
    float_acc = float(np.mean(float_pred == split.y))
    names = list(quant_sim.weight_layers(folded))
    current = {name: base_bits for name in names}
    candidates = [dict(current)]
    for name, b in moves:
        current[name] = b
        candidates.append(dict(current))
    candidates += [{name: b for name in names} for b in uniform_bits]
    sizes, accuracies, lows = [], [], []
    for bits in tqdm(candidates, desc="mixed precision", leave=False, disable=not progress):
        config = quant_sim.QuantConfig(base_bits, act_bits, per_channel, layer_bits=bits)
        model = quant_sim.quantize(folded, calib_x, config, inputs=inputs)
        sizes.append(weight_bytes(folded, bits, per_channel))
        paired = stats.compare_predictions(split.y, float_pred, quant_sim.predict(model, x).numpy())
        accuracies.append(paired.accuracy)
        lows.append(paired.delta_ci95[0])
    # The interval's lower end, not the point estimate: a loss the data cannot rule out counts.
    within = [i for i, low in enumerate(lows) if low >= -budget_points - 1e-9]
    if not within:
        raise ValueError(f"no assignment, not even uniform {base_bits}-bit, has its 95 % interval "
                         f"within {budget_points} points on {split.role}: raise the budget or use "
                         f"more validation images")
    chosen = min(within, key=lambda i: (sizes[i], -accuracies[i]))
    return SearchResult(candidates, sizes, accuracies, float_acc, budget_points, chosen,
                        path_length=len(moves) + 1, val_delta_low=lows)


def bits_histogram(bits: Mapping[str, int]) -> dict[int, int]:
    """How many layers got each bit width; lesson 14."""
    values, counts = np.unique(list(bits.values()), return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}
