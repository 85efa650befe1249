"""LSQ: quantization-aware training with learned step sizes; lesson 14 (advanced PTQ).

Introduced in lesson 14, after "Learned Step Size Quantization" (Esser et al. 2019). Lesson 08's
QAT learns the weights through fixed-range fake quantizers (an observer sets each range, then
it is frozen). LSQ makes each step size s a parameter and learns it with the weights:

    x_hat = round(clamp(x / s, -Qn, Qp)) * s

with the straight-through estimator for round. The gradient for s (eq. 3 of the paper) is
-x/s + round(x/s) inside the range, -Qn or Qp where x is clipped, scaled by
g = 1 / sqrt(N * Qp) so that s learns at the pace of the weights (N: the number of weights,
or of features of one example, that share s).

* :func:`lsq_grad_scale`, :func:`lsq_quantize`: the quantizer as autograd sees it (the
  gradient-scale trick and an STE round);
* :class:`LsqFunction`: the same with the paper's gradients written out, for the tests;
* :class:`LsqFakeQuantize`: a module with a learnable step, per tensor or per channel;
* :func:`prepare`: a folded model whose conv / linear layers quantize their weights and the
  activation they read with LSQ quantizers, ready for ``training.train_epochs``.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from helpers import quant_sim, range_search


def lsq_grad_scale(numel: int, qp: int) -> float:
    """LSQ's gradient scale g = 1 / sqrt(N * Qp); lesson 14."""
    if numel < 1 or qp < 1:
        raise ValueError(f"need numel >= 1 and qp >= 1, got {numel} and {qp}")
    return 1.0 / math.sqrt(numel * qp)

def _scale_gradient(s: torch.Tensor, g: float) -> torch.Tensor:
    """s in the forward pass, g times its gradient in the backward pass."""
    return (s - s * g).detach() + s * g

def _round_ste(v: torch.Tensor) -> torch.Tensor:
    """round(v) forward, identity backward (the straight-through estimator)."""
    return (torch.round(v) - v).detach() + v

def lsq_quantize(x: torch.Tensor, s: torch.Tensor, qn: int, qp: int, g: float) -> torch.Tensor:
    """x_hat = round(clamp(x / s, -Qn, Qp)) * s with a gradient-scaled s and an STE; lesson 14."""
    s = _scale_gradient(s, g)
    return _round_ste(torch.clamp(x / s, -qn, qp)) * s

class LsqFunction(torch.autograd.Function):
    """LSQ with the paper's gradients written out (eq. 3 and the STE); lesson 14."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, s: torch.Tensor, qn: int, qp: int, g: float) -> torch.Tensor:
        v = x / s
        ctx.save_for_backward(v)
        ctx.qn, ctx.qp, ctx.g, ctx.s_shape = qn, qp, g, s.shape
        return torch.clamp(torch.round(v), -qn, qp) * s

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (v,) = ctx.saved_tensors
        low, high = v <= -ctx.qn, v >= ctx.qp
        grad_x = grad * ~(low | high)
        ds = torch.where(low, -float(ctx.qn), torch.where(high, float(ctx.qp), torch.round(v) - v))
        grad_s = grad * ds * ctx.g
        # Sum over every axis the step is broadcast along.
        grad_s = grad_s.sum_to_size(ctx.s_shape) if ctx.s_shape else grad_s.sum()
        return grad_x, grad_s, None, None, None

class LsqFakeQuantize(nn.Module):
    """A fake quantizer with a learnable step size, as in LSQ; lesson 14.

    ``signed`` uses [-2^(b-1), 2^(b-1) - 1] (weights, or activations that go negative);
    unsigned [0, 2^b - 1] (activations after ReLU); ``restricted`` drops -2^(b-1), as lesson 08's
    weight grid does. ``channels`` gives one step per output
    channel (weights, axis 0). ``per_example`` counts N over one example (activations, as the
    paper's N_F); otherwise over the whole tensor (weights). The step starts at
    2 mean|x| / sqrt(Qp) (the paper's choice) on the first tensor seen, unless set with
    :meth:`init_step`.
    """

    def __init__(self, bits: int = 8, signed: bool = True, channels: int | None = None,
                 per_example: bool = False, restricted: bool = False) -> None:
        super().__init__()
        if not 2 <= bits <= 16:
            raise ValueError(f"bits must be from 2 to 16, got {bits}")
        self.bits, self.signed, self.per_example = bits, signed, per_example
        # restricted: the symmetric signed grid [-(2^(b-1) - 1), 2^(b-1) - 1] of lesson 08's weights
        self.qn = (2 ** (bits - 1) - int(restricted)) if signed else 0
        self.qp = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
        self.step = nn.Parameter(torch.ones(channels if channels else 1))
        self.register_buffer("initialized", torch.tensor(False))

    def _shaped_step(self, x: torch.Tensor) -> torch.Tensor:
        if self.step.numel() == 1:
            return self.step.reshape(())
        return self.step.reshape((-1,) + (1,) * (x.dim() - 1))

    @torch.no_grad()
    def init_step(self, step: torch.Tensor | float) -> None:
        """Start from a given step size (for example from a PTQ range search)."""
        self.step.copy_(torch.as_tensor(step, dtype=self.step.dtype).reshape(-1).expand_as(self.step))
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            with torch.no_grad():
                if self.step.numel() > 1:
                    mean = x.detach().abs().flatten(1).mean(dim=1)
                else:
                    mean = x.detach().abs().mean()
                self.init_step(2 * mean / math.sqrt(self.qp))
        n = x[0].numel() if self.per_example else x.numel()
        if self.step.numel() > 1:
            n //= self.step.numel()
        return LsqFunction.apply(x, self._shaped_step(x), self.qn, self.qp,
                                 lsq_grad_scale(n, self.qp))

    def extra_repr(self) -> str:
        kind = "signed" if self.signed else "unsigned"
        return f"bits={self.bits}, {kind}, steps={self.step.numel()}"

class LsqLayer(nn.Module):
    """A conv or linear layer whose weights and input activation go through LSQ quantizers."""

    def __init__(self, layer: nn.Conv2d | nn.Linear, weight_bits: int, act_bits: int,
                 act_signed: bool, per_channel: bool = True) -> None:
        super().__init__()
        self.layer = layer
        channels = layer.weight.shape[0] if per_channel else None
        self.weight_quant = LsqFakeQuantize(weight_bits, signed=True, channels=channels,
                                            restricted=True)
        self.act_quant = LsqFakeQuantize(act_bits, signed=act_signed, per_example=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act_quant(x)
        w = self.weight_quant(self.layer.weight)
        if isinstance(self.layer, nn.Conv2d):
            return self.layer._conv_forward(x, w, self.layer.bias)
        return F.linear(x, w, self.layer.bias)

@torch.no_grad()
def prepare(folded: nn.Module, calib_x: torch.Tensor, bits: int, per_channel: bool = True,
            init: str = "paper") -> nn.Module:
    """A trainable LSQ copy of a folded model: every layer's weights and input at ``bits``; lesson 14.

    The grids are lesson 08's: weights symmetric on [-(2^(b-1) - 1), 2^(b-1) - 1] (one step per
    output channel unless ``per_channel`` is False), activations one step per tensor.
    Steps start from the paper's 2 mean|x| / sqrt(Qp) (``init="paper"``) or from the MSE range
    search of PTQ (``init="mse"``). An activation that is negative on the calibration
    images (the normalized input image) gets a signed grid, the others unsigned.
    """
    if init not in ("mse", "paper"):
        raise ValueError(f"init must be 'mse' or 'paper', got {init!r}")
    inputs = quant_sim.layer_inputs(folded, calib_x)
    model = copy.deepcopy(folded).train()
    for name, layer in quant_sim.weight_layers(model).items():
        x = inputs[name]
        wrapped = LsqLayer(layer, bits, bits, act_signed=bool(x.min() < 0), per_channel=per_channel)
        if init == "mse":

            wq, aq = wrapped.weight_quant, wrapped.act_quant
            lo, hi = range_search.search_clip(layer.weight, bits, True, 0 if per_channel else None)
            wq.init_step((torch.maximum(-lo, hi) / wq.qp).clamp(min=1e-8))
            lo, hi = range_search.search_clip(x, bits, symmetric=aq.signed)
            aq.init_step((torch.maximum(-lo, hi) if aq.signed else hi).clamp(min=1e-8) / aq.qp)
        else:
            wrapped.weight_quant(layer.weight)
            wrapped.act_quant(x[:256])
        quant_sim._replace(model, name, wrapped)
    return model

def steps(model: nn.Module) -> dict[str, float]:
    """The mean learned weight and activation step of every LSQ layer; lesson 14."""
    out = {}
    for name, module in model.named_modules():
        if isinstance(module, LsqLayer):
            out[f"{name} weight"] = float(module.weight_quant.step.detach().mean())
            out[f"{name} input"] = float(module.act_quant.step.detach().mean())
    return out
