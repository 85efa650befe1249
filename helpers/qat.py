"""Quantization-aware training (QAT) in PyTorch eager mode, at 8 bits and below.

Introduced in lesson 08. Four pieces:

* :class:`FakeQuantSTE` / :func:`fake_quantize_ste`: quantize-then-dequantize in the forward
  pass with the straight-through estimator (STE) in the backward pass, written out as a
  ``torch.autograd.Function`` so the trick is visible (PyTorch's own op is
  ``torch.fake_quantize_per_tensor_affine``).
* :func:`low_bit_qconfig`: a QAT qconfig of ``FakeQuantize`` modules for any bit width from 2
  to 8, with per-channel symmetric weights and per-tensor affine activations.
* :func:`prepare` and :func:`finetune`: fuse, ``prepare_qat``, then fine-tune with a low
  learning rate, freezing observers and batch-norm statistics after some epochs.
* :func:`simulated_ptq`: post-training quantization at any bit width, simulated with the same
  fake-quantize modules (calibrate observers, no training), for a like-for-like comparison.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.ao import quantization as tq
from torch.ao.nn.intrinsic import qat as nniqat

from helpers import data, env, measure, ptq, training


class FakeQuantSTE(torch.autograd.Function):
    """x_hat = (clamp(round(x / scale) + zero_point, qmin, qmax) - zero_point) * scale; lesson 08.

    Backward: the straight-through estimator. ``round`` has zero gradient almost everywhere,
    so the STE pretends it is the identity and passes the incoming gradient through unchanged
    where ``x`` fell inside the representable range, and passes zero where it was clipped.
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

    Activations use the range [0, 2**bits - 1] (quint8 storage) with a moving-average min-max
    observer; weights use the symmetric, restricted range [-(2**(bits-1) - 1), 2**(bits-1) - 1]
    (qint8 storage), per output channel unless ``per_channel_weights`` is False. At 8 bits this
    is close to PyTorch's default, without the x86 ``reduce_range`` trick.
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
    if per_channel_weights:
        weight = tq.FakeQuantize.with_args(
            observer=tq.MovingAveragePerChannelMinMaxObserver, averaging_constant=1.0,
            quant_min=-half, quant_max=half, dtype=torch.qint8,
            qscheme=torch.per_channel_symmetric, ch_axis=0)
    else:
        weight = tq.FakeQuantize.with_args(
            observer=tq.MovingAverageMinMaxObserver, averaging_constant=1.0,
            quant_min=-half, quant_max=half, dtype=torch.qint8,
            qscheme=torch.per_tensor_symmetric)
    return tq.QConfig(activation=activation, weight=weight)


def prepare(model: nn.Module, qconfig: tq.QConfig | None = None, engine: str | None = None,
            train: bool = True) -> nn.Module:
    """A fused, QAT-prepared copy of a float model (default qconfig: the engine's); lesson 08.

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


@dataclass
class History:
    """Per-epoch record of a QAT fine-tuning run; lesson 08."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    events: dict[int, str] = field(default_factory=dict)


def freeze(model: nn.Module, observers: bool = True, bn_stats: bool = True) -> None:
    """Stop updating quantization ranges and/or batch-norm running statistics; lesson 08."""
    if observers:
        model.apply(tq.disable_observer)
    if bn_stats:
        model.apply(nniqat.freeze_bn_stats)


def finetune(model: nn.Module, train: data.Split, test: data.Split, epochs: int,
             lr: float = 1e-4, freeze_observers_after: int | None = None,
             freeze_bn_after: int | None = None, batch_size: int = 64, seed: int = 0,
             desc: str = "QAT") -> History:
    """Fine-tune a QAT-prepared model; freeze observers / BN after the given epochs; lesson 08.

    ``freeze_observers_after=k`` disables the observers once ``k`` epochs have finished (the
    fake quantizers keep quantizing with the last ranges); likewise ``freeze_bn_after`` for the
    batch-norm running statistics. Test accuracy is measured after every epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if not any(isinstance(m, tq.FakeQuantizeBase) for m in model.modules()):
        raise ValueError("the model has no FakeQuantize modules: call qat.prepare(model) first")
    history = History()

    def after_epoch(epoch: int, loss: float) -> None:
        history.loss.append(loss)
        events = []
        if freeze_observers_after is not None and epoch == freeze_observers_after:
            freeze(model, observers=True, bn_stats=False)
            events.append("observers frozen")
        if freeze_bn_after is not None and epoch == freeze_bn_after:
            freeze(model, observers=False, bn_stats=True)
            events.append("BN stats frozen")
        if events:
            history.events[epoch] = ", ".join(events)
        history.accuracy.append(accuracy_without_observing(model, test))

    training.train_epochs(model, train, epochs, lr=lr, batch_size=batch_size, seed=seed,
                          desc=desc, after_epoch=after_epoch)
    return history


def accuracy_without_observing(model: nn.Module, test: data.Split) -> float:
    """Test accuracy of a QAT model whose observers must not learn from the test data; lesson 08.

    ``eval()`` does not stop a FakeQuantize observer: while enabled it keeps updating its
    range on whatever passes through, test images included. Observers are switched off for
    the measurement and switched back on afterwards.
    """
    observing = [m for m in model.modules()
                 if isinstance(m, tq.FakeQuantizeBase) and bool(m.observer_enabled[0])]
    for module in observing:
        module.disable_observer()
    try:
        return measure.torch_accuracy(model, test)
    finally:
        for module in observing:
            module.enable_observer()


def simulated_ptq(model: nn.Module, calib: data.Split, qconfig: tq.QConfig,
                  batches: int = 10, engine: str | None = None) -> nn.Module:
    """Post-training quantization simulated with fake quantizers: calibrate, no training; lesson 08.

    The observers watch ``batches`` calibration batches with fake quantization switched off
    (so each layer sees float inputs, as PTQ observers do), then quantization is switched on
    and the ranges frozen.
    """
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
    """A real quantized (int8-kernel) copy of a QAT model, in eval mode; lesson 08."""
    return tq.convert(copy.deepcopy(model).eval())


def choose_deployment(results: dict[str, dict], fp32_accuracy: float,
                      budget_points: float) -> str:
    """The smallest candidate within ``budget_points`` of float (PTQ wins ties), or "fp32"; lesson 08.

    ``results`` maps a name to ``{"bits": int, "method": "ptq" | "qat", "accuracy": float}``.
    """
    if budget_points < 0:
        raise ValueError(f"budget_points must be >= 0 (accuracy points you accept to lose), "
                         f"got {budget_points}")
    within = []
    for name, entry in results.items():
        missing = {"bits", "method", "accuracy"} - set(entry)
        if missing:
            raise KeyError(f"result {name!r} lacks {sorted(missing)}; each entry needs "
                           "bits, method ('ptq' or 'qat') and accuracy")
        if measure.points_below(fp32_accuracy, entry["accuracy"]) <= budget_points:
            within.append((entry["bits"], entry["method"] != "ptq", name))
    return min(within)[2] if within else "fp32"
