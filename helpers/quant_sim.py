"""Simulated (fake-quantized) integer models with per-layer bit widths and ranges; lesson 14.

Introduced in lesson 14. Every post-training technique of that lesson changes one thing (the
weights before rounding, the rounding itself, a bias, a range, a layer's bit width) and is
judged by the same simulation, so their accuracies compare like for like:

* :func:`fold_batch_norm`: an eval copy with each batch norm folded into the conv before it,
  the weights an integer kernel would use;
* :class:`QuantConfig` and :func:`quantize`: a copy of a folded model whose conv and linear
  layers use fake-quantized weights (symmetric, per tensor or per channel, any bit width per
  layer) and fake-quantize the activation they read (asymmetric, range from calibration);
* :func:`layer_outputs`, :func:`layer_sqnr_db`: where, layer by layer, the quantized model
  departs from the float one;
* :func:`predict`: the predicted classes on a split, in batches.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from helpers import range_search
from helpers.quant import sqnr_db

Layer = nn.Conv2d | nn.Linear


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An eval copy with every conv + batch norm pair of ``fusion_groups()`` folded; lesson 14.

    The batch norm becomes ``nn.Identity``; ReLU / ReLU6 modules stay where they are.
    """
    if not hasattr(model, "fusion_groups"):
        raise TypeError(f"{type(model).__name__} has no fusion_groups(); use a course model "
                        "(helpers.models) or fold its batch norms yourself")
    folded = copy.deepcopy(model).eval()
    for group in model.fusion_groups():
        conv_name, bn_name = group[0], group[1]
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        if not isinstance(bn, nn.BatchNorm2d):
            continue
        _replace(folded, conv_name, fuse_conv_bn_eval(conv, bn))
        _replace(folded, bn_name, nn.Identity())
    return folded


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def weight_layers(model: nn.Module) -> dict[str, Layer]:
    """The conv and linear layers of a model by name, in execution order; lesson 14."""
    layers = {}
    for name, module in model.named_modules():
        if isinstance(module, FakeQuantLayer):
            layers[name] = module.layer
        elif isinstance(module, nn.Conv2d | nn.Linear) and not name.endswith(".layer"):
            layers[name] = module
    return layers


def symmetric_weight(weight: torch.Tensor, bits: int, per_channel: bool = False,
                     method: str = "minmax") -> torch.Tensor:
    """The fake-quantized weight on a symmetric grid, range by ``method``; lesson 14."""
    axis = 0 if per_channel else None
    lo, hi = range_search.choose_range(weight.detach(), method, bits, symmetric=True, axis=axis)
    return range_search.fake_quant(weight.detach(), lo, hi, bits, symmetric=True)


class FakeQuantLayer(nn.Module):
    """A conv or linear layer with quantized weights that quantizes the activation it reads.

    The activation grid is asymmetric and unsigned, [0, 2^bits - 1] with a zero point, as
    :func:`helpers.range_search.fake_quant` computes it; here in three passes over the tensor
    (clamp(round(x / scale), -zero_point, qmax - zero_point) * scale) because evaluating on
    10,000 images runs it millions of times.
    """

    def __init__(self, layer: Layer, act_range: tuple[float, float] | None, act_bits: int | None,
                 weight_bits: int) -> None:
        super().__init__()
        self.layer = layer
        self.act_range, self.act_bits, self.weight_bits = act_range, act_bits, weight_bits
        if act_bits is not None:
            # The same float32 arithmetic as range_search.fake_quant, so ties round alike.
            qmax = 2**act_bits - 1
            lo = torch.clamp(torch.tensor(act_range[0], dtype=torch.float32), max=0.0)
            hi = torch.clamp(torch.tensor(act_range[1], dtype=torch.float32), min=0.0)
            scale = torch.clamp((hi - lo) / qmax, min=1e-12)
            zero_point = int(torch.round(-lo / scale))
            self.scale, self.q_low, self.q_high = float(scale), -zero_point, qmax - zero_point

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_bits is not None:
            x = x.div(self.scale).round_().clamp_(self.q_low, self.q_high).mul_(self.scale)
        return self.layer(x)

    def extra_repr(self) -> str:
        act = "float" if self.act_bits is None else f"{self.act_bits}-bit"
        return f"weights {self.weight_bits}-bit, input activation {act}"


@dataclass(frozen=True)
class QuantConfig:
    """How :func:`quantize` rounds a model: bits, granularity, range methods; lesson 14.

    ``layer_bits`` overrides the weight bits of named layers (first and last at 8, mixed
    precision); ``act_bits=None`` leaves activations in float (weight-only quantization).
    """

    weight_bits: int = 8
    act_bits: int | None = 8
    per_channel: bool = False
    weight_range: str = "minmax"
    act_range: str = "minmax"
    layer_bits: Mapping[str, int] = field(default_factory=dict)
    layer_act_bits: Mapping[str, int] = field(default_factory=dict)

    def bits_of(self, name: str) -> int:
        return self.layer_bits.get(name, self.weight_bits)

    def act_bits_of(self, name: str) -> int | None:
        return self.layer_act_bits.get(name, self.act_bits)

    def label(self) -> str:
        granularity = "per-channel" if self.per_channel else "per-tensor"
        act = "float" if self.act_bits is None else self.act_bits
        return f"W{self.weight_bits}A{act} {granularity}"


@torch.no_grad()
def layer_inputs(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> dict[str, torch.Tensor]:
    """The input each conv / linear layer receives on ``x`` (calibration data), by name; lesson 14."""
    layers = weight_layers(model)
    seen: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    hooks = [layer.register_forward_pre_hook(
        lambda _module, args, name=name: seen[name].append(args[0].detach()))
        for name, layer in layers.items()]
    try:
        model.eval()
        for start in range(0, len(x), batch_size):
            model(x[start:start + batch_size])
    finally:
        for hook in hooks:
            hook.remove()
    return {name: torch.cat(values) for name, values in seen.items()}


def activation_ranges(inputs: Mapping[str, torch.Tensor], method: str, bits: Mapping[str, int | None],
                      ) -> dict[str, tuple[float, float]]:
    """Per layer, the range of its input activation by ``method`` at its bit width; lesson 14."""
    ranges = {}
    for name, x in inputs.items():
        if bits[name] is None:
            continue
        lo, hi = range_search.choose_range(x, method, bits[name], symmetric=False)
        ranges[name] = (float(lo.min()), float(hi.max()))
    return ranges


@torch.no_grad()
def quantize(folded: nn.Module, calib_x: torch.Tensor, config: QuantConfig,
             weights: Mapping[str, torch.Tensor] | None = None,
             inputs: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """A fake-quantized copy of a folded float model; lesson 14.

    Activation ranges come from the float model's layer inputs on ``calib_x`` (pass ``inputs``
    to reuse them). ``weights`` gives already-quantized weights for some layers (AdaRound's);
    the others are rounded to nearest on the grid ``config`` describes.
    """
    if any(isinstance(m, nn.BatchNorm2d) for m in folded.modules()):
        raise ValueError("the model still has batch norm: quantize fold_batch_norm(model)")
    inputs = inputs if inputs is not None else layer_inputs(folded, calib_x)
    layers = weight_layers(folded)
    unknown = (set(config.layer_bits) | set(weights or {})) - set(layers)
    if unknown:
        raise KeyError(f"no conv/linear layers named {sorted(unknown)}; the model has {list(layers)}")
    act_bits = {name: config.act_bits_of(name) for name in layers}
    ranges = activation_ranges(inputs, config.act_range, act_bits)
    quantized = copy.deepcopy(folded).eval()
    for name, layer in weight_layers(quantized).items():
        if weights is not None and name in weights:
            w_hat = weights[name]
        else:
            w_hat = symmetric_weight(layer.weight, config.bits_of(name), config.per_channel,
                                     config.weight_range)
        layer.weight.copy_(w_hat)
        _replace(quantized, name, FakeQuantLayer(layer, ranges.get(name), act_bits[name],
                                                 config.bits_of(name)))
    return quantized


@torch.no_grad()
def logits(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The model's outputs for images ``x`` (N, 1, 28, 28), in batches; lesson 14.

    Runs in the channels-last memory format, about twice as fast for these small convs on a
    CPU (the model's conv weights are converted in place; the arithmetic is the same).
    """
    model.eval().to(memory_format=torch.channels_last)
    return torch.cat([model(x[i:i + batch_size].contiguous(memory_format=torch.channels_last))
                      for i in range(0, len(x), batch_size)])


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted classes for images ``x``, in batches (see :func:`logits`); lesson 14."""
    return logits(model, x, batch_size).argmax(dim=1)


@torch.no_grad()
def layer_outputs(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The output of every conv / linear layer on ``x``, by name; lesson 14."""
    outputs: dict[str, torch.Tensor] = {}
    modules = {name: module for name, module in model.named_modules()
               if name in weight_layers(model)}
    hooks = [module.register_forward_hook(
        lambda _m, _args, out, name=name: outputs.__setitem__(name, out.detach()))
        for name, module in modules.items()]
    try:
        model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    return outputs


def layer_sqnr_db(float_model: nn.Module, quantized: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """SQNR (dB) of each layer's output in the quantized model against the float one; lesson 14.

    The error accumulates: layer k's output carries the error of every layer before it, so
    the curve shows where the quantized network departs from the float one.
    """
    reference, got = layer_outputs(float_model, x), layer_outputs(quantized, x)
    return {name: sqnr_db(reference[name], got[name]) for name in reference}
