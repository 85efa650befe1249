"""Tests for helpers.qat_loop (lesson 08): one fine-tuning loop, freezing epochs, predictions."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.ao.quantization as tq

from helpers import data, models, qat, qat_loop

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore:Please use quant_min:UserWarning")]


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return models.SmallCNN(width=8).eval(), data.load_mnist().train.take(64)


def _observing(model) -> bool:
    return all(int(m.observer_enabled) == 1 for m in qat_loop.observing_modules(model))


def _bn_frozen(model) -> bool:
    return all(m.freeze_bn for m in model.modules() if hasattr(m, "freeze_bn"))


def test_finetune_freezes_after_the_requested_epochs(tiny) -> None:
    model, split = tiny
    prepared = qat.prepare(model, engine="x86")
    history = qat_loop.finetune(prepared, split, epochs=3, lr=1e-3, freeze_observers_after=1,
                                freeze_bn_after=2, batch_size=32, monitor=split.take(32))
    assert len(history.loss) == len(history.accuracy) == 3
    assert history.events == {1: "observers frozen", 2: "BN statistics frozen"}
    assert not _observing(prepared) and _bn_frozen(prepared) and not prepared.training


def test_freezing_at_zero_freezes_before_training(tiny) -> None:
    model, split = tiny
    prepared = qat.prepare(model, engine="x86")
    with torch.no_grad():
        prepared(data.torch_tensors(split)[0])  # ranges exist before they are frozen
    observer = prepared.stem[0].activation_post_process
    before = observer.scale.clone()
    history = qat_loop.finetune(prepared, split, epochs=1, freeze_observers_after=0,
                                freeze_bn_after=0, batch_size=32)
    assert history.events == {0: "observers frozen, BN statistics frozen"}
    assert torch.equal(observer.scale, before)


def test_same_seed_same_batches_for_qat_and_float_control(tiny) -> None:
    model, split = tiny
    runs = []
    for _ in range(2):
        control = copy.deepcopy(model)
        qat_loop.finetune(control, split, epochs=1, lr=1e-3, batch_size=16, seed=3,
                          flow=qat_loop.FLOAT)
        runs.append(control.state_dict())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_predict_does_not_teach_the_observers(tiny) -> None:
    model, split = tiny
    prepared = qat.prepare(model, qat.low_bit_qconfig(4), engine="x86")
    with torch.no_grad():
        prepared(data.torch_tensors(split)[0])
    observer = prepared.quant.activation_post_process.activation_post_process
    seen = (float(observer.min_val), float(observer.max_val))
    bright = data.Split(split.x * 50, split.y, "val")  # far outside anything seen so far
    predictions = qat_loop.predict(prepared, bright)
    assert predictions.shape == (64,) and predictions.dtype == np.int64
    assert (float(observer.min_val), float(observer.max_val)) == seen
    assert _observing(prepared)  # switched back on afterwards
    prepared.eval()(data.torch_tensors(bright)[0])  # what eval() alone would have done
    assert float(observer.max_val) > seen[1]


def test_accuracy_is_the_mean_of_correct_predictions(tiny) -> None:
    model, split = tiny
    expected = np.mean(qat_loop.predict(model, split, qat_loop.FLOAT) == split.y)
    assert qat_loop.accuracy(model, split, qat_loop.FLOAT) == pytest.approx(expected)


def test_finetune_bad_input(tiny) -> None:
    model, split = tiny
    with pytest.raises(ValueError, match="no fake quantizers"):
        qat_loop.finetune(model, split, epochs=1)
    prepared = qat.prepare(model, engine="x86")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        qat_loop.finetune(prepared, split, epochs=0)
    with pytest.raises(ValueError, match="freeze_bn_after must be None or from 0 to epochs=1"):
        qat_loop.finetune(prepared, split, epochs=1, freeze_bn_after=2)
    with pytest.raises(data.SelectionOnTestError):
        qat_loop.finetune(prepared, split, epochs=1, monitor=data.load_mnist().test.take(8))
    with pytest.raises(ValueError, match="nothing to freeze"):
        qat_loop.finetune(copy.deepcopy(model), split, epochs=1, freeze_bn_after=1,
                          flow=qat_loop.FLOAT)
    assert not any(isinstance(m, tq.FakeQuantizeBase) for m in model.modules())
