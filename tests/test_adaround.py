"""Tests for helpers.adaround (lesson 14): AdaRound, LSQ and the sensitivity scan."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.ao.quantization import MovingAverageMinMaxObserver
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize

from helpers import adaround as ar


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny layers: one thread is several times faster than many on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_rectified_sigmoid_and_regularizer_by_hand() -> None:
    v = torch.tensor([0.0, 100.0, -100.0, math.log(3.0)])
    # sigmoid(0) = 0.5 -> 0.5 * 1.2 - 0.1 = 0.5; sigmoid(log 3) = 0.75 -> 0.8; tails clip.
    torch.testing.assert_close(ar.rectified_sigmoid(v), torch.tensor([0.5, 1.0, 0.0, 0.8]))
    h = torch.tensor([0.5, 1.0, 0.0, 0.8])
    # 1 - |2h - 1|^beta: 1, 0, 0 and 1 - 0.6^2 = 0.64 at beta 2; 1 - 0.6^20 at beta 20
    assert float(ar.rounding_regularizer(h, 2.0)) == pytest.approx(1.64, abs=1e-6)
    assert float(ar.rounding_regularizer(h, 20.0)) == pytest.approx(2 - 0.6**20, abs=1e-6)


def test_adaround_binary_and_beats_nearest() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(16, 8)
    x = torch.randn(512, 16)
    result = ar.adaround(layer, x, bits=4, iterations=400, batch_size=128, lr=3e-2)
    h = result.h
    assert bool(((h < 1e-3) | (h > 1 - 1e-3)).all())
    assert result.loss_adaround <= result.loss_nearest
    assert 0 < result.flipped_fraction < 0.5
    assert result.weight_int.min() >= -8 and result.weight_int.max() <= 7
    torch.testing.assert_close(result.weight_int, torch.round(result.weight_int))


def test_adaround_conv_per_channel() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3)
    result = ar.adaround(conv, torch.randn(32, 3, 5, 5), bits=3, per_channel=True,
                         iterations=200, batch_size=16, lr=3e-2)
    assert result.scale.shape == (4, 1, 1, 1)
    assert result.loss_adaround <= result.loss_nearest


def _lsq_paper_grads(x: torch.Tensor, s: float, qn: int, qp: int, upstream: torch.Tensor):
    v = x / s
    g = 1 / math.sqrt(x.numel() * qp)
    ds = torch.where(v <= -qn, -float(qn), torch.where(v >= qp, float(qp), torch.round(v) - v))
    return upstream * ((v > -qn) & (v < qp)), float((upstream * ds).sum()) * g


def test_lsq_gradients_match_paper_and_ste() -> None:
    torch.manual_seed(0)
    fq = ar.LsqFakeQuantize(bits=4, signed=True)
    x = (torch.randn(200) * 2).requires_grad_(True)
    upstream = torch.randn(200)
    fq(x.detach())  # initialise the step
    step = float(fq.step.detach())
    assert step == pytest.approx(2 * float(x.detach().abs().mean()) / math.sqrt(7), rel=1e-5)
    fq(x).backward(upstream)
    grad_x, grad_s = _lsq_paper_grads(x.detach(), step, 8, 7, upstream)
    torch.testing.assert_close(x.grad, grad_x)
    assert float(fq.step.grad) == pytest.approx(grad_s, rel=1e-4)
    # autograd through the straight-through formulation gives the same gradients
    x2 = x.detach().clone().requires_grad_(True)
    s2 = torch.tensor([step], requires_grad=True)
    out = ar.lsq_ste(x2, s2, 8, 7, ar.lsq_grad_scale(200, 7))
    torch.testing.assert_close(out, fq(x.detach()))
    out.backward(upstream)
    torch.testing.assert_close(x2.grad, grad_x)
    assert float(s2.grad) == pytest.approx(grad_s, rel=1e-4)


def test_lsq_against_torch_learnable_fake_quantize() -> None:
    torch.manual_seed(0)
    x = torch.randn(300) * 2
    upstream = torch.randn(300)
    ours = ar.LsqFakeQuantize(bits=8, signed=True)
    ours(x)
    theirs = _LearnableFakeQuantize(MovingAverageMinMaxObserver, quant_min=-128, quant_max=127,
                                    scale=float(ours.step.detach()), zero_point=0.0,
                                    use_grad_scaling=True, dtype=torch.qint8,
                                    qscheme=torch.per_tensor_symmetric)
    theirs.enable_param_learning()
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = ours(x1), theirs(x2)
    torch.testing.assert_close(a, b)  # forward equal
    a.backward(upstream)
    b.backward(upstream)
    # torch also clips x's gradient at the clamp bounds and uses g = 1 / sqrt(N * qmax)
    torch.testing.assert_close(x1.grad, x2.grad)
    assert float(ours.step.grad) == pytest.approx(float(theirs.scale.grad), rel=1e-4)


def test_layer_sensitivity_refuses_test() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    with pytest.raises(ValueError, match="use val"):
        ar.layer_sensitivity(model, x, y, split_name="test")
    drops = ar.layer_sensitivity(model, x, y, split_name="val", bits=2)
    assert set(drops) == {"0", "2"}
    before = model[0].weight.detach().clone()
    ar.layer_sensitivity(model, x, y, split_name="val")
    torch.testing.assert_close(model[0].weight, before)
