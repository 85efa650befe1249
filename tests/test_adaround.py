"""Tests for helpers.adaround (lesson 14): rectified sigmoid, regularizer, layer and model AdaRound."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helpers import adaround as ar
from helpers import models, quant_sim

# Tiny layers: one thread is several times faster than many on a shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_rectified_sigmoid_and_regularizer_by_hand() -> None:
    v = torch.tensor([0.0, 100.0, -100.0, math.log(3.0)])
    # sigmoid(0) = 0.5 -> 0.5 * 1.2 - 0.1 = 0.5; sigmoid(log 3) = 0.75 -> 0.8; tails clip.
    torch.testing.assert_close(ar.rectified_sigmoid(v), torch.tensor([0.5, 1.0, 0.0, 0.8]))
    h = torch.tensor([0.5, 1.0, 0.0, 0.8])
    # 1 - |2h - 1|^beta: 1, 0, 0 and 1 - 0.6^2 = 0.64 at beta 2; 1 - 0.6^20 at beta 20
    assert float(ar.rounding_regularizer(h, 2.0)) == pytest.approx(1.64, abs=1e-6)
    assert float(ar.rounding_regularizer(h, 20.0)) == pytest.approx(2 - 0.6**20, abs=1e-6)


def test_adaround_converges_to_binary_and_beats_nearest() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(16, 8)
    x = torch.randn(512, 16)
    result = ar.adaround(layer, x, bits=4, iterations=400, batch_size=128, lr=3e-2, reg_weight=1.0)
    h = result.h
    assert float(((h > 0.01) & (h < 0.99)).float().mean()) < 0.02  # decisions, not soft values
    assert result.loss_adaround < result.loss_nearest
    assert 0 < result.flipped_fraction < 0.5
    assert result.weight_int.min() >= -8 and result.weight_int.max() <= 7
    torch.testing.assert_close(result.weight_int, torch.round(result.weight_int))
    # every weight lands on floor(w / s) or floor(w / s) + 1
    floor = torch.floor(layer.weight.detach() / result.scale)
    assert bool(((result.weight_int - floor) >= 0).all() and ((result.weight_int - floor) <= 1).all())


def test_adaround_conv_per_channel() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    result = ar.adaround(conv, torch.randn(32, 3, 5, 5), bits=3, per_channel=True,
                         iterations=200, batch_size=16, lr=3e-2)
    assert result.scale.shape == (4, 1, 1, 1)
    assert result.loss_adaround <= result.loss_nearest
    with pytest.raises(TypeError, match="Linear and Conv2d"):
        ar.adaround(nn.Conv1d(2, 2, 1), torch.randn(4, 2, 3), iterations=1)


def test_adaround_model_every_layer_in_order() -> None:
    torch.manual_seed(0)
    model = models.build_torch_model("ds_cnn", blocks=1, width=8)
    folded = quant_sim.fold_batch_norm(model.eval())
    x = torch.randn(64, 1, 28, 28)
    config = quant_sim.QuantConfig(3, 8, per_channel=True)
    run = ar.adaround_model(folded, x, config, iterations=60, batch_size=16, lr=0.1, progress=False)
    assert list(run.layers) == list(quant_sim.weight_layers(folded))
    assert 0 < run.flipped_fraction < 0.5 and run.seconds > 0
    nearest = quant_sim.quantize(folded, x, config)
    learned = quant_sim.quantize(folded, x, config, weights=run.weights)
    with torch.no_grad():
        target = folded(x)
        assert float((learned(x) - target).pow(2).mean()) < float((nearest(x) - target).pow(2).mean())
