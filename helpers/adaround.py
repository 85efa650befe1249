"""AdaRound, LSQ and a per-layer sensitivity scan: lesson 14 (advanced PTQ).

Introduced in lesson 14.

* :func:`adaround`: learn whether each weight rounds up or down (Nagel et al. 2020) by
  reconstructing the layer's output on calibration inputs; h(V) = clip(sigmoid(V)(zeta -
  gamma) + gamma, 0, 1) and the regularizer sum(1 - |2h - 1|^beta) push h to 0 or 1 as beta
  is annealed from 20 to 2.
* :class:`LsqFakeQuantize`: LSQ (Esser et al. 2019), a fake quantizer with a learnable step
  size s, gradient scale g = 1 / sqrt(N * Qp), the straight-through estimator for x.
* :func:`layer_sensitivity`: accuracy with one layer's weights quantized at a time; refuses
  the test split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from helpers.data import SelectionOnTestError

ZETA, GAMMA = 1.1, -0.1


def rectified_sigmoid(v: torch.Tensor, zeta: float = ZETA, gamma: float = GAMMA) -> torch.Tensor:
    """h(V) = clip(sigmoid(V) * (zeta - gamma) + gamma, 0, 1); lesson 14."""
    return torch.clamp(torch.sigmoid(v) * (zeta - gamma) + gamma, 0.0, 1.0)


def rounding_regularizer(h: torch.Tensor, beta: float) -> torch.Tensor:
    """sum(1 - |2h - 1|^beta): zero when every h is 0 or 1; lesson 14."""
    return (1 - (2 * h - 1).abs().pow(beta)).sum()


def symmetric_scale(weight: torch.Tensor, bits: int, per_channel: bool = False) -> torch.Tensor:
    """Min-max symmetric step size, per tensor or per output channel (broadcastable); lesson 14."""
    qmax = 2 ** (bits - 1) - 1
    if per_channel:
        bound = weight.detach().abs().flatten(1).amax(dim=1)
        return (bound / qmax).clamp(min=1e-12).reshape((-1,) + (1,) * (weight.dim() - 1))
    return (weight.detach().abs().max() / qmax).clamp(min=1e-12)


def _layer_forward(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, nn.Conv2d):
        return F.conv2d(x, weight, layer.bias, layer.stride, layer.padding, layer.dilation,
                        layer.groups)
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, layer.bias)
    raise TypeError(f"AdaRound handles Linear and Conv2d layers, got {type(layer).__name__}")


@dataclass
class AdaRoundResult:
    """The learned integer weights and how they differ from round-to-nearest."""

    weight_int: torch.Tensor
    scale: torch.Tensor
    flipped_fraction: float     # share of weights rounded the other way than nearest
    h: torch.Tensor             # final soft rounding values, 0 or 1 when converged
    loss_adaround: float        # output MSE with the learned rounding
    loss_nearest: float         # output MSE with round-to-nearest

    def weight(self) -> torch.Tensor:
        """The dequantized weight, scale * integer weight."""
        return self.weight_int * self.scale


def adaround(layer: nn.Module, inputs: torch.Tensor, bits: int = 4, per_channel: bool = False,
             iterations: int = 1000, lr: float = 1e-2, reg_weight: float = 0.01,
             beta: tuple[float, float] = (20.0, 2.0), warmup: float = 0.2,
             batch_size: int = 256, seed: int = 0) -> AdaRoundResult:
    """Learn each weight's rounding by layer-wise output reconstruction with Adam; lesson 14.

    The first ``warmup`` share of iterations optimizes the reconstruction alone; then the
    regularizer joins with beta decaying linearly from ``beta[0]`` to ``beta[1]``. The layer
    is not modified; use ``result.weight()``.
    """
    generator = torch.Generator().manual_seed(seed)
    weight = layer.weight.detach()
    scale = symmetric_scale(weight, bits, per_channel)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    w_floor = torch.floor(weight / scale)
    rest = (weight / scale - w_floor).clamp(1e-4, 1 - 1e-4)
    # Start where h(V) equals the fractional part, i.e. at the float weight.
    v = -torch.log((ZETA - GAMMA) / (rest - GAMMA) - 1)
    v = v.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([v], lr=lr)
    with torch.no_grad():
        target = _layer_forward(layer, inputs, weight)
    start = int(warmup * iterations)
    for step in range(iterations):
        index = torch.randint(len(inputs), (min(batch_size, len(inputs)),), generator=generator)
        h = rectified_sigmoid(v)
        w_soft = torch.clamp(w_floor + h, qmin, qmax) * scale
        loss = F.mse_loss(_layer_forward(layer, inputs[index], w_soft), target[index])
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
        loss_ada = F.mse_loss(_layer_forward(layer, inputs, weight_int * scale), target)
        loss_rtn = F.mse_loss(_layer_forward(layer, inputs, nearest * scale), target)
    return AdaRoundResult(weight_int, scale, float((weight_int != nearest).float().mean()),
                          h.detach(), float(loss_ada), float(loss_rtn))


def lsq_grad_scale(numel: int, qp: int) -> float:
    """LSQ's gradient scale g = 1 / sqrt(N * Qp); lesson 14."""
    return 1.0 / math.sqrt(numel * qp)


class _LsqFunction(torch.autograd.Function):
    """LSQ with the paper's gradients written out (eq. 3 and the STE)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, s: torch.Tensor, qn: int, qp: int, g: float) -> torch.Tensor:
        v = x / s
        ctx.save_for_backward(v)
        ctx.qn, ctx.qp, ctx.g = qn, qp, g
        return torch.clamp(torch.round(v), -qn, qp) * s

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (v,) = ctx.saved_tensors
        low, high = v <= -ctx.qn, v >= ctx.qp
        inside = ~(low | high)
        grad_x = grad * inside
        ds = torch.where(low, -float(ctx.qn), torch.where(high, float(ctx.qp), torch.round(v) - v))
        grad_s = (grad * ds).sum().reshape(1) * ctx.g
        return grad_x, grad_s, None, None, None


def lsq_ste(x: torch.Tensor, s: torch.Tensor, qn: int, qp: int, g: float) -> torch.Tensor:
    """The same quantizer as autograd sees it: gradient-scaled s and round with an STE; lesson 14."""
    s_scaled = (s - s * g).detach() + s * g
    v = torch.clamp(x / s_scaled, -qn, qp)
    return ((torch.round(v) - v).detach() + v) * s_scaled


class LsqFakeQuantize(nn.Module):
    """A fake quantizer with a learnable step size, as in LSQ (Esser et al. 2019); lesson 14.

    ``signed`` weights use [-2^(b-1), 2^(b-1) - 1]; unsigned activations [0, 2^b - 1]. The step
    starts at 2 mean|x| / sqrt(Qp) on the first batch seen.
    """

    def __init__(self, bits: int = 8, signed: bool = True) -> None:
        super().__init__()
        self.qn = 2 ** (bits - 1) if signed else 0
        self.qp = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
        self.step = nn.Parameter(torch.ones(1))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            with torch.no_grad():
                self.step.copy_(2 * x.abs().mean() / math.sqrt(self.qp))
                self.initialized.fill_(True)
        return _LsqFunction.apply(x, self.step, self.qn, self.qp,
                                  lsq_grad_scale(x.numel(), self.qp))


@torch.no_grad()
def layer_sensitivity(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                      split_name: str, bits: int = 4) -> dict[str, float]:
    """Accuracy drop with each Linear/Conv2d's weights alone quantized (per tensor); lesson 14.

    A sensitivity scan chooses which layers to keep in higher precision, so it runs on the
    validation split: ``split_name="test"`` is refused.
    """
    if split_name == "test":
        raise SelectionOnTestError(
            "layer_sensitivity chooses layers, and choices are made on the validation split: "
            "use val (mnist.val), not test")
    model.eval()

    def accuracy() -> float:
        return float((model(inputs).argmax(dim=1) == labels).float().mean())

    baseline = accuracy()
    drops = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            original = module.weight.detach().clone()
            scale = symmetric_scale(original, bits)
            qmax = 2 ** (bits - 1) - 1
            module.weight.copy_(torch.clamp(torch.round(original / scale), -qmax - 1, qmax) * scale)
            drops[name] = baseline - accuracy()
            module.weight.copy_(original)
    return drops
