"""Cross-layer equalization and empirical bias correction: lesson 14 (advanced PTQ).

Introduced in lesson 14. Two fixes from "Data-Free Quantization Through Weight Equalization
and Bias Correction" (Nagel et al. 2019), applied before or after rounding:

* :func:`equalization_scales`, :func:`equalize_pair`, :func:`equalize`: cross-layer
  equalization (CLE). For output channel i of layer 1 with weight range r1_i and input channel
  i of layer 2 with range r2_i, s_i = sqrt(r1_i / r2_i); then W1 <- W1 / s, b1 <- b1 / s,
  W2 <- W2 * s, and both ranges become sqrt(r1_i * r2_i). Exact when the activation between
  the layers is positively homogeneous (ReLU, max-pool, average pool: f(y / s) * s = f(y)).
* :func:`relu6_report`: ReLU6 is not homogeneous (its clip at 6 would have to move to 6 / s_i,
  one value per channel); the report counts the calibration activations that would change.
* :func:`bias_correction`, :func:`correct_biases`: subtract the expected output error of each
  quantized layer, measured per output channel on calibration data.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from helpers import models, quant_sim

Layer = nn.Linear | nn.Conv2d


def out_ranges(layer: Layer) -> torch.Tensor:
    """Max |w| per output channel (row of a linear layer, filter of a conv); lesson 14."""
    return layer.weight.detach().abs().flatten(1).amax(dim=1)


def in_ranges(layer: Layer) -> torch.Tensor:
    """Max |w| per input channel; convs with groups=1 or depthwise (groups=channels); lesson 14."""
    w = layer.weight.detach().abs()
    if isinstance(layer, nn.Conv2d) and layer.groups > 1:
        if layer.groups != layer.in_channels or w.shape[1] != 1:
            raise ValueError("layer 2 must be a regular or a depthwise conv (groups=in_channels)")
        # A depthwise filter reads one channel: its input range is its output range.
        return w.reshape(layer.in_channels, -1).amax(dim=1)
    return w.transpose(0, 1).flatten(1).amax(dim=1)


def equalization_scales(layer1: Layer, layer2: Layer) -> torch.Tensor:
    """s_i = sqrt(r1_i / r2_i) for each channel between two layers; lesson 14."""
    r1, r2 = out_ranges(layer1), in_ranges(layer2)
    if r1.shape != r2.shape:
        raise ValueError(f"layer 1 has {r1.numel()} outputs but layer 2 reads {r2.numel()} channels")
    # A dead channel (a zero range on either side) is left alone.
    alive = (r1 > 0) & (r2 > 0)
    return torch.where(alive, torch.sqrt(r1 / torch.where(alive, r2, 1.0)), torch.ones_like(r1))


@torch.no_grad()
def apply_scales(layer1: Layer, layer2: Layer, scales: torch.Tensor) -> None:
    """W1 <- W1 / s, b1 <- b1 / s, W2 <- W2 * s (per channel, in place); lesson 14."""
    layer1.weight.div_(scales.reshape((-1,) + (1,) * (layer1.weight.dim() - 1)))
    if layer1.bias is not None:
        layer1.bias.div_(scales)
    w2 = layer2.weight
    if isinstance(layer2, nn.Conv2d) and layer2.groups > 1:
        # Depthwise: filter i reads channel i, so its (only) input axis is axis 0.
        w2.mul_(scales.reshape(-1, 1, 1, 1))
    else:
        w2.mul_(scales.reshape((1, -1) + (1,) * (w2.dim() - 2)))


def equalize_pair(layer1: Layer, layer2: Layer) -> torch.Tensor:
    """Equalize one pair in place and return the scales used; lesson 14."""
    scales = equalization_scales(layer1, layer2)
    apply_scales(layer1, layer2, scales)
    return scales


def equalize_chain(layers: list[Layer], iterations: int = 50, tol: float = 1e-6) -> list[torch.Tensor]:
    """Equalize consecutive pairs of a chain, sweeping until the scales settle; lesson 14.

    Returns the accumulated scale of each pair (what :func:`relu6_report` needs).
    """
    if len(layers) < 2:
        raise ValueError("a chain needs at least two layers")
    total = [torch.ones_like(out_ranges(layer)) for layer in layers[:-1]]
    for _ in range(iterations):
        change = 0.0
        for k, (first, second) in enumerate(zip(layers[:-1], layers[1:], strict=True)):
            scales = equalize_pair(first, second)
            total[k] = total[k] * scales
            change = max(change, float((scales - 1).abs().max()))
        if change < tol:
            break
    return total


def chains(model: nn.Module) -> list[list[str]]:
    """Names of the layer chains CLE may rescale in a course model; lesson 14.

    Only a channel that feeds one layer alone can be rescaled: SmallCNN's block1 output also
    feeds the residual add, so its chains stop there.
    """
    if isinstance(model, models.DepthwiseSeparableNet):
        names = ["stem.0"] + [f"features.{i}.0" for i in range(len(model.features))]
        return [names + ["fc"]]  # average pooling before fc is linear per channel
    if isinstance(model, models.SmallCNN):
        return [["stem.0", "block1.0"], ["res_a.0", "res_b.0"]]
    raise TypeError(f"no CLE chains known for {type(model).__name__}; pass the layer names")


def relu6_to_relu(model: nn.Module) -> nn.Module:
    """A copy with every ReLU6 replaced by ReLU, so CLE is exact; lesson 14."""
    copied = copy.deepcopy(model)
    for name, module in list(copied.named_modules()):
        if isinstance(module, nn.ReLU6):
            quant_sim._replace(copied, name, nn.ReLU())
    return copied


def equalize(folded: nn.Module, layer_chains: list[list[str]] | None = None
             ) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """An equalized copy of a folded model and each rescaled layer's scales; lesson 14.

    Refuses a model with ReLU6 (see :func:`relu6_report`; use :func:`relu6_to_relu` first).
    """
    if any(isinstance(m, nn.ReLU6) for m in folded.modules()):
        raise ValueError("the model uses ReLU6, which CLE does not preserve: equalize "
                         "relu6_to_relu(model), after checking relu6_report")
    if any(isinstance(m, nn.BatchNorm2d) for m in folded.modules()):
        raise ValueError("fold batch norm first (quant_sim.fold_batch_norm): CLE rescales the "
                         "weights the integer model will use")
    equalized = copy.deepcopy(folded)
    scales = {}
    for chain in layer_chains or chains(folded):
        layers = [equalized.get_submodule(name) for name in chain]
        for name, total in zip(chain[:-1], equalize_chain(layers), strict=True):
            scales[name] = total
    return equalized, scales


@dataclass(frozen=True)
class Relu6Report:
    """What ReLU6 does after equalization, measured on calibration pre-activations."""

    changed_if_kept: float      # fraction of outputs that differ when ReLU6 stays
    changed_if_relu: float      # fraction that differ when ReLU6 becomes ReLU
    max_preactivation: float    # largest original pre-activation seen

    @property
    def safe_to_replace(self) -> bool:
        """True when no calibration pre-activation reached 6 (ReLU and ReLU6 agree)."""
        return self.changed_if_relu == 0

    def __str__(self) -> str:
        return (f"{self.changed_if_kept:.2%} of outputs change if ReLU6 is kept after CLE, "
                f"{self.changed_if_relu:.3%} if it becomes ReLU (largest pre-activation "
                f"{self.max_preactivation:.2f})")


def relu6_report(pre_activations: torch.Tensor, scales: torch.Tensor) -> Relu6Report:
    """How ReLU6 breaks equalization, from original pre-activations (N, C, ...); lesson 14.

    The equalized layer outputs y / s; relu6(y / s) * s clips at 6 s instead of 6, while
    relu(y / s) * s = relu(y) differs from relu6(y) only where y > 6.
    """
    y = pre_activations.detach()
    s = scales.reshape((1, -1) + (1,) * (y.dim() - 2))
    original = F.relu6(y)
    kept = F.relu6(y / s) * s
    replaced = F.relu(y / s) * s
    changed_kept = float((~torch.isclose(kept, original, atol=1e-5)).float().mean())
    changed_relu = float((~torch.isclose(replaced, original, atol=1e-5)).float().mean())
    return Relu6Report(changed_kept, changed_relu, float(y.max()))


def bias_correction(float_out: torch.Tensor, quant_out: torch.Tensor) -> torch.Tensor:
    """E[quantized output - float output] per channel (axis 1), over batch and positions; lesson 14."""
    if float_out.shape != quant_out.shape:
        raise ValueError(f"outputs differ in shape: {tuple(float_out.shape)} vs {tuple(quant_out.shape)}")
    error = (quant_out - float_out).detach()
    return error.transpose(0, 1).flatten(1).mean(dim=1)


@torch.no_grad()
def correct_biases(float_model: nn.Module, quantized: nn.Module, calib_x: torch.Tensor
                   ) -> dict[str, torch.Tensor]:
    """Empirical bias correction of a :func:`quant_sim.quantize` model, in place; lesson 14.

    Layer by layer in execution order, the quantized layer's output (with every earlier layer
    already corrected) is compared with the float layer's on the same calibration images, and
    the mean error per output channel is subtracted from the bias. Returns the corrections.
    """
    reference = quant_sim.layer_outputs(float_model, calib_x)
    corrections = {}
    for name, layer in quant_sim.weight_layers(quantized).items():
        got = quant_sim.layer_outputs(quantized, calib_x)[name]
        correction = bias_correction(reference[name], got)
        if layer.bias is None:
            layer.bias = nn.Parameter(torch.zeros_like(correction))
        layer.bias.sub_(correction)
        corrections[name] = correction
    return corrections
