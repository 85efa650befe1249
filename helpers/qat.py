"""Quantization-aware training (QAT) in PyTorch, at 8 bits and below.

Introduced in lesson 08. The pieces:

* :class:`FakeQuantSTE` / :func:`fake_quantize_ste`: quantize-then-dequantize in the forward
  pass, the straight-through estimator (STE) in the backward pass, written out as a
  ``torch.autograd.Function`` (PyTorch's own op is ``torch.fake_quantize_per_tensor_affine``).
* :func:`low_bit_qconfig` and :func:`prepare`: the eager-mode flow (``fuse_modules_qat``,
  ``prepare_qat``) of the deprecated ``torch.ao.quantization`` API, at any width from 2 to 8.
* :func:`simulated_ptq`, :func:`int8_ptq`, :func:`convert`: the PTQ baselines and the int8 model.
* :func:`spread`, :func:`worst_loss_points`, :func:`choose_deployment`: the evidence over seeds
  and the decision, made on ``val``.

The fine-tuning loop shared by every flow is :mod:`helpers.qat_loop`; the maintained flows
(PT2E, torchao's ``QATConfig``) are :mod:`helpers.qat_flows`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.ao import quantization as tq

from helpers import data, env, measure, ptq


class FakeQuantSTE(torch.autograd.Function):
    """x_hat = (clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale; lesson 08.

    Backward: the straight-through estimator. ``round`` has zero gradient almost everywhere,
    so the STE treats it as the identity: the incoming gradient passes unchanged where ``x``
    fell inside the representable range, and zero passes where it was clipped.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float, zero_point: int, qmin: int,
                qmax: int) -> torch.Tensor:
        q = torch.round(x / scale) + zero_point
        ctx.save_for_backward((q >= qmin) & (q <= qmax))
        return (torch.clamp(q, qmin, qmax) - zero_point) * scale

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (inside,) = ctx.saved_tensors
        # One gradient per forward input; scale, zero_point and the range are not learned here.
        return grad_output * inside, None, None, None, None


def fake_quantize_ste(x: torch.Tensor, scale: float, zero_point: int, qmin: int,
                      qmax: int) -> torch.Tensor:
    """Fake-quantize ``x`` with an STE backward (see :class:`FakeQuantSTE`); lesson 08."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point torch.Tensor, got {type(x).__name__}"
                        f"{'' if not isinstance(x, torch.Tensor) else ' of ' + str(x.dtype)}")
    if not float(scale) > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    if not qmin < qmax:
        raise ValueError(f"need qmin < qmax, got qmin={qmin}, qmax={qmax}")
    if not qmin <= zero_point <= qmax:
        raise ValueError(f"zero_point {zero_point} must lie in [qmin, qmax] = [{qmin}, {qmax}]")
    return FakeQuantSTE.apply(x, float(scale), int(zero_point), int(qmin), int(qmax))


def ste_curves(x: torch.Tensor, scale: float, zero_point: int, qmin: int,
               qmax: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fake-quantized values of ``x`` and the STE gradient d x_hat / d x at each; lesson 08."""
    x = x.detach().clone().requires_grad_(True)
    x_hat = fake_quantize_ste(x, scale, zero_point, qmin, qmax)
    x_hat.sum().backward()
    return x_hat.detach(), x.grad.detach()


def low_bit_qconfig(bits: int = 4, per_channel_weights: bool = True,
                    averaging_constant: float = 0.01) -> tq.QConfig:
    """QAT qconfig at ``bits`` bits: unsigned affine activations, symmetric weights; lesson 08.

    Activations use [0, 2**bits - 1] (quint8 storage) with a moving-average min-max observer;
    weights the symmetric, restricted range [-(2**(bits-1) - 1), 2**(bits-1) - 1] (qint8
    storage), per output channel unless ``per_channel_weights`` is False. At 8 bits this is
    PyTorch's default without the x86 ``reduce_range`` trick (7-bit activations).
    """
    if not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be an integer from 2 to 8 (int8 storage), got {bits!r}")
    if not 0 < averaging_constant <= 1:
        raise ValueError(f"averaging_constant must be in (0, 1], got {averaging_constant}")
    activation = tq.FakeQuantize.with_args(
        observer=tq.MovingAverageMinMaxObserver, averaging_constant=averaging_constant,
        quant_min=0, quant_max=2**bits - 1, dtype=torch.quint8,
        qscheme=torch.per_tensor_affine)
    half = 2 ** (bits - 1) - 1
    observer, qscheme, extra = ((tq.MovingAveragePerChannelMinMaxObserver,
                                 torch.per_channel_symmetric, {"ch_axis": 0})
                                if per_channel_weights else
                                (tq.MovingAverageMinMaxObserver, torch.per_tensor_symmetric, {}))
    weight = tq.FakeQuantize.with_args(observer=observer, averaging_constant=1.0,
                                       quant_min=-half, quant_max=half, dtype=torch.qint8,
                                       qscheme=qscheme, **extra)
    return tq.QConfig(activation=activation, weight=weight)


def prepare(model: nn.Module, qconfig: tq.QConfig | None = None, engine: str | None = None,
            train: bool = True) -> nn.Module:
    """A fused, eager-mode QAT copy of a float model (default qconfig: the engine's); lesson 08.

    The model must offer ``fusion_groups()`` (as :class:`helpers.models.SmallCNN` does).
    With ``train=False`` the copy is left in eval mode, ready for calibration.
    """
    if not hasattr(model, "fusion_groups"):
        raise TypeError(f"{type(model).__name__} has no fusion_groups(); use "
                        "helpers.models.SmallCNN or add a fusion_groups() method")
    engine = env.select_engine(engine)
    prepared = copy.deepcopy(model).train()
    # fuse_modules_qat keeps BatchNorm as a trainable part of ConvBn(ReLU)2d; plain
    # fuse_modules would fold it into the conv and refuses to run in train mode.
    tq.fuse_modules_qat(prepared, model.fusion_groups(), inplace=True)
    prepared.qconfig = qconfig or tq.get_default_qat_qconfig(engine)
    tq.prepare_qat(prepared, inplace=True)
    return prepared.train(train)


# --- PTQ baselines and the int8 model ---------------------------------------------------------

def subset(split: data.Split, n: int, seed: int) -> data.Split:
    """``n`` images drawn at random (fixed by ``seed``) from a split, keeping its role; lesson 08."""
    if not 1 <= n <= len(split):
        raise ValueError(f"n must be from 1 to {len(split)} (the split's size), got {n}")
    index = np.sort(np.random.default_rng(seed).choice(len(split), size=n, replace=False))
    return data.Split(split.x[index], split.y[index], split.role)


def simulated_ptq(model: nn.Module, calib: data.Split, qconfig: tq.QConfig,
                  batches: int = 10, engine: str | None = None) -> nn.Module:
    """Post-training quantization simulated with fake quantizers: calibrate, no training; lesson 08.

    The observers watch ``batches`` calibration batches with fake quantization switched off
    (each layer sees float inputs, as PTQ observers do); then quantization is switched on and
    the ranges frozen.
    """
    if calib.role == "test":
        raise data.SelectionOnTestError("calibrate on mnist.calib, never on the test split")
    prepared = prepare(model, qconfig, engine=engine, train=False)
    prepared.apply(tq.disable_fake_quant)
    ptq.calibrate(prepared, calib, batches=batches)
    prepared.apply(tq.enable_fake_quant)
    prepared.apply(tq.disable_observer)
    return prepared.eval()


def int8_ptq(model: nn.Module, calib: data.Split, batches: int = 10,
             engine: str | None = None) -> nn.Module:
    """Eager-mode int8 PTQ with the engine's default qconfig: fuse, calibrate, convert; lesson 08."""
    engine = env.select_engine(engine)
    prepared = copy.deepcopy(model).eval()
    tq.fuse_modules(prepared, model.fusion_groups(), inplace=True)
    prepared.qconfig = tq.get_default_qconfig(engine)
    tq.prepare(prepared, inplace=True)
    ptq.calibrate(prepared, calib, batches=batches)
    return tq.convert(prepared.eval())


def convert(model: nn.Module) -> nn.Module:
    """A real quantized (int8-kernel) copy of an eager QAT model, in eval mode; lesson 08."""
    return tq.convert(copy.deepcopy(model).eval())


# --- evidence over seeds, and the decision ----------------------------------------------------

@dataclass(frozen=True)
class Spread:
    """Mean, standard deviation and range of one number over seeds; lesson 08."""

    mean: float
    std: float
    low: float
    high: float
    n: int

    def __str__(self) -> str:
        return (f"{self.mean:+.2f} (sd {self.std:.2f}, range {self.low:+.2f} to "
                f"{self.high:+.2f}, {self.n} seeds)")


def spread(values: Sequence[float]) -> Spread:
    """The :class:`Spread` of a few numbers (sample standard deviation); lesson 08."""
    array = np.asarray(values, dtype=np.float64)
    if array.size < 2:
        raise ValueError(f"a spread needs at least 2 values (seeds), got {array.size}")
    return Spread(float(array.mean()), float(array.std(ddof=1)), float(array.min()),
                  float(array.max()), int(array.size))


def worst_loss_points(intervals: Sequence[Sequence[float]]) -> float:
    """Largest accuracy loss any of these 95 % intervals allows (points, >= 0); lesson 08.

    "QAT comes back within N points" holds, on this evidence, for N at least this number:
    every seed's interval of (QAT - float) lies above -N.
    """
    if not intervals:
        raise ValueError("need at least one interval, e.g. [comparison.delta_ci95, ...]")
    lows = [float(low) for low, _ in intervals]
    return max(0.0, math.ceil(round(-min(lows) * 100, 6)) / 100)


def choose_deployment(results: dict[str, dict], fp32_accuracy: float, budget_points: float,
                      split: data.Split) -> str:
    """The smallest file within ``budget_points`` of float on ``split`` (val), or "fp32"; lesson 08.

    ``results`` maps a name to ``{"method": "ptq" | "qat", "size_bytes": int, "accuracy":
    float}`` with accuracies measured on ``split``. Ties in bytes go to PTQ (no training
    run to maintain), then to the higher accuracy. The test split is refused.
    """
    data.require_selection_split(split, "choose_deployment")
    if budget_points < 0:
        raise ValueError(f"budget_points must be >= 0 (accuracy points you accept to lose), "
                         f"got {budget_points}")
    within = []
    for name, entry in results.items():
        missing = {"method", "size_bytes", "accuracy"} - set(entry)
        if missing:
            raise KeyError(f"result {name!r} lacks {sorted(missing)}; each entry needs method "
                           "('ptq' or 'qat'), size_bytes and accuracy")
        if measure.points_below(fp32_accuracy, entry["accuracy"]) <= budget_points:
            within.append((entry["size_bytes"], entry["method"] != "ptq", -entry["accuracy"],
                           name))
    return min(within)[-1] if within else "fp32"
