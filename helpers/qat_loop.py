"""One fine-tuning loop for every QAT flow, and predictions that never teach an observer.

Introduced in lesson 08. A :class:`Flow` says how a flow switches between training and
evaluation and how it freezes observers and batch-norm statistics: :data:`EAGER` (the
deprecated ``torch.ao.quantization`` flow), :data:`FLOAT` (the float control), and in
:mod:`helpers.qat_flows` PT2E and torchao. :func:`finetune` runs the same Adam loop, data
order and freezing schedule for all of them, so they can be compared fairly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.ao import quantization as tq
from torch.ao.nn.intrinsic import qat as nniqat
from tqdm.auto import tqdm

from helpers import data, env, training


@dataclass(frozen=True)
class Flow:
    """How one QAT flow switches modes and freezes; lesson 08."""

    name: str
    to_train: Callable[[nn.Module], object]
    to_eval: Callable[[nn.Module], object]
    freeze_observers: Callable[[nn.Module], object]
    freeze_bn: Callable[[nn.Module], object]
    has_observers: bool = True


def observing_modules(model: nn.Module) -> list[nn.Module]:
    """Every fake quantizer with an observer (eager and PT2E alike); lesson 08."""
    return [m for m in model.modules()
            if hasattr(m, "observer_enabled") and hasattr(m, "disable_observer")]


def _nothing_to_freeze(model: nn.Module) -> None:
    raise ValueError("the float control has nothing to freeze; pass freeze_*_after=None")


EAGER = Flow("eager", nn.Module.train, nn.Module.eval,
             lambda m: m.apply(tq.disable_observer), lambda m: m.apply(nniqat.freeze_bn_stats))
FLOAT = Flow("float", nn.Module.train, nn.Module.eval, _nothing_to_freeze, _nothing_to_freeze,
             has_observers=False)


@dataclass
class History:
    """Per-epoch record of a fine-tuning run: loss, monitored accuracy, freeze events; lesson 08."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    events: dict[int, str] = field(default_factory=dict)


def finetune(model: nn.Module, train: data.Split, epochs: int, lr: float = 1e-4,
             freeze_observers_after: int | None = None, freeze_bn_after: int | None = None,
             batch_size: int = 64, seed: int = 0, monitor: data.Split | None = None,
             flow: Flow = EAGER, desc: str = "QAT") -> History:
    """Fine-tune with Adam; freeze observers / BN once the given epochs are done; lesson 08.

    ``freeze_observers_after=k`` freezes the quantization ranges after epoch ``k`` (0: before
    the first; None: never); likewise ``freeze_bn_after`` for batch-norm statistics. The data
    order depends only on ``seed``, so two runs with the same seed see the same batches.
    ``monitor`` (a val split, never test) is scored after every epoch without teaching the
    observers. The model is left in eval mode.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    for name, after in (("freeze_observers_after", freeze_observers_after),
                        ("freeze_bn_after", freeze_bn_after)):
        if after is not None and not 0 <= after <= epochs:
            raise ValueError(f"{name} must be None or from 0 to epochs={epochs}, got {after}")
    if flow.has_observers and not observing_modules(model):
        raise ValueError(f"the model has no fake quantizers for the {flow.name} flow: prepare "
                         "it first (qat.prepare, or helpers.qat_flows for PT2E)")
    if monitor is not None:
        data.require_selection_split(monitor, "the per-epoch accuracy of finetune()")
    env.seed_everything(seed)
    loader = data.torch_loader(train, batch_size=batch_size, shuffle=True, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    history = History()

    def freeze_due(done: int) -> None:
        events = []
        if freeze_observers_after == done:
            flow.freeze_observers(model)
            events.append("observers frozen")
        if freeze_bn_after == done:
            flow.freeze_bn(model)
            events.append("BN statistics frozen")
        if events:
            history.events[done] = ", ".join(events)

    freeze_due(0)
    with tqdm(total=epochs * len(loader), desc=desc, leave=False) as bar:
        for epoch in range(1, epochs + 1):
            flow.to_train(model)
            history.loss.append(training.run_epoch(model, loader, optimizer, loss_fn, bar))
            freeze_due(epoch)
            if monitor is not None:
                history.accuracy.append(accuracy(model, monitor, flow))
    flow.to_eval(model)
    return history


@contextmanager
def _frozen_observers(model: nn.Module) -> Iterator[None]:
    observing = [m for m in observing_modules(model) if bool(m.observer_enabled[0])]
    for module in observing:
        module.disable_observer()
    try:
        yield
    finally:
        for module in observing:
            module.enable_observer()


def predict(model: nn.Module, split: data.Split, flow: Flow = EAGER,
            batch_size: int = 500) -> np.ndarray:
    """Predicted labels in eval mode, without letting any observer learn from them; lesson 08.

    ``eval()`` does not stop a fake quantizer's observer: while enabled it keeps updating its
    range on whatever passes through, test images included. Observers are switched off for
    the pass and switched back on afterwards.
    """
    x, _ = data.torch_tensors(split)
    with _frozen_observers(model):
        flow.to_eval(model)
        with torch.inference_mode():
            return torch.cat([model(x[start:start + batch_size]).argmax(1)
                              for start in range(0, len(x), batch_size)]).numpy()


def accuracy(model: nn.Module, split: data.Split, flow: Flow = EAGER) -> float:
    """Top-1 accuracy through :func:`predict` (observers untouched); lesson 08."""
    return float(np.mean(predict(model, split, flow) == split.y))
