"""Tests for helpers.lsq (lesson 14): LSQ gradients against the paper, autograd and PyTorch."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.ao.quantization import MovingAverageMinMaxObserver
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize

from helpers import lsq, models, quant_sim

# Tiny layers: one thread is several times faster than many on a shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _paper_grads(x: torch.Tensor, s: float, qn: int, qp: int, upstream: torch.Tensor, n: int):
    v = x / s
    g = 1 / math.sqrt(n * qp)
    ds = torch.where(v <= -qn, -float(qn), torch.where(v >= qp, float(qp), torch.round(v) - v))
    return upstream * ((v > -qn) & (v < qp)), float((upstream * ds).sum()) * g


def test_grad_scale() -> None:
    assert lsq.lsq_grad_scale(100, 7) == pytest.approx(1 / math.sqrt(700))
    with pytest.raises(ValueError):
        lsq.lsq_grad_scale(0, 7)


def test_gradients_match_the_paper_and_autograd() -> None:
    torch.manual_seed(0)
    fq = lsq.LsqFakeQuantize(bits=4, signed=True)
    x = (torch.randn(200) * 2).requires_grad_(True)
    upstream = torch.randn(200)
    fq(x.detach())  # initialise the step
    step = float(fq.step.detach())
    assert step == pytest.approx(2 * float(x.detach().abs().mean()) / math.sqrt(7), rel=1e-5)
    fq(x).backward(upstream)
    grad_x, grad_s = _paper_grads(x.detach(), step, 8, 7, upstream, 200)
    torch.testing.assert_close(x.grad, grad_x)
    assert float(fq.step.grad) == pytest.approx(grad_s, rel=1e-4)
    # autograd through the straight-through formulation gives the same gradients
    x2 = x.detach().clone().requires_grad_(True)
    s2 = torch.tensor([step], requires_grad=True)
    out = lsq.lsq_quantize(x2, s2, 8, 7, lsq.lsq_grad_scale(200, 7))
    torch.testing.assert_close(out, fq(x.detach()))
    out.backward(upstream)
    torch.testing.assert_close(x2.grad, grad_x)
    assert float(s2.grad) == pytest.approx(grad_s, rel=1e-4)


def test_per_channel_and_per_example_steps() -> None:
    torch.manual_seed(0)
    w = torch.randn(4, 30) * torch.tensor([0.1, 1.0, 3.0, 0.5]).reshape(-1, 1)
    fq = lsq.LsqFakeQuantize(bits=3, signed=True, channels=4, restricted=True)
    assert (fq.qn, fq.qp) == (3, 3)
    out = fq(w.requires_grad_(True))
    upstream = torch.randn(4, 30)
    out.backward(upstream)
    for c in range(4):  # each channel's step gets its own gradient, with N = 30 values
        _, grad_s = _paper_grads(w.detach()[c], float(fq.step.detach()[c]), 3, 3, upstream[c], 30)
        assert float(fq.step.grad[c]) == pytest.approx(grad_s, rel=1e-4)
    acts = torch.relu(torch.randn(8, 5))
    fa = lsq.LsqFakeQuantize(bits=4, signed=False, per_example=True)
    fa(acts)
    step = float(fa.step.detach())
    acts.requires_grad_(True)
    fa(acts).backward(torch.ones(8, 5))
    _, grad_s = _paper_grads(acts.detach(), step, 0, 15, torch.ones(8, 5), 5)  # N_F = 5 features
    assert float(fa.step.grad) == pytest.approx(grad_s, rel=1e-4)


def test_against_torch_learnable_fake_quantize() -> None:
    torch.manual_seed(0)
    x = torch.randn(300) * 2
    upstream = torch.randn(300)
    ours = lsq.LsqFakeQuantize(bits=8, signed=True)
    ours(x)
    theirs = _LearnableFakeQuantize(MovingAverageMinMaxObserver, quant_min=-128, quant_max=127,
                                    scale=float(ours.step.detach()), zero_point=0.0,
                                    use_grad_scaling=True, dtype=torch.qint8,
                                    qscheme=torch.per_tensor_symmetric)
    theirs.enable_param_learning()
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    a, b = ours(x1), theirs(x2)
    torch.testing.assert_close(a, b)
    a.backward(upstream)
    b.backward(upstream)
    torch.testing.assert_close(x1.grad, x2.grad)
    assert float(ours.step.grad) == pytest.approx(float(theirs.scale.grad), rel=1e-4)


@pytest.mark.parametrize("init", ["paper", "mse"])
def test_prepare_wraps_every_layer_and_trains(init: str) -> None:
    torch.manual_seed(0)
    folded = quant_sim.fold_batch_norm(models.build_torch_model("ds_cnn", blocks=1, width=8).eval())
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    model = lsq.prepare(folded, x, bits=4, init=init)
    wrapped = [m for m in model.modules() if isinstance(m, lsq.LsqLayer)]
    assert len(wrapped) == len(quant_sim.weight_layers(folded))
    assert wrapped[0].act_quant.signed and not wrapped[1].act_quant.signed  # image vs after ReLU6
    before = lsq.steps(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    assert any(abs(lsq.steps(model)[k] - before[k]) > 1e-4 for k in before)
    with pytest.raises(ValueError, match="init"):
        lsq.prepare(folded, x, 4, init="random")
