"""Tests for helpers.smoothquant (lesson 15): the scales, the invariance, W8A8 forwards."""

from __future__ import annotations

import pytest
import torch
from llm_tiny import CharTokenizer
from llm_tiny import tiny_llama as make_tiny_llama

from helpers import llm, llm_model
from helpers import smoothquant as sq


def outlier_inputs(n: int = 128, d: int = 64) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[:, [1, 7]] *= 40
    return x


def test_scales_formula_and_alpha_extremes():
    x_absmax = torch.tensor([1.0, 4.0, 100.0])
    w = torch.tensor([[0.5, -2.0, 0.1], [1.0, 0.2, -0.4]])
    s = sq.smoothquant_scales(x_absmax, w, 0.5)
    assert torch.allclose(s, torch.sqrt(x_absmax) / torch.sqrt(torch.tensor([1.0, 2.0, 0.4])))
    assert torch.allclose(sq.smoothquant_scales(x_absmax, w, 1.0), x_absmax)
    assert torch.allclose(sq.smoothquant_scales(x_absmax, [w, w * 3], 0.0), 1 / torch.tensor([3.0, 6.0, 1.2]))
    with pytest.raises(ValueError, match="alpha"):
        sq.smoothquant_scales(x_absmax, w, 1.5)
    with pytest.raises(ValueError, match="columns"):
        sq.smoothquant_scales(x_absmax[:2], w)


def test_smoothquant_preserves_the_product_and_helps_w8a8():
    x = outlier_inputs()
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    s = sq.smoothquant_scales(x.abs().amax(dim=0), w, alpha=0.5)
    xs, ws = sq.smooth(x, w, s)
    assert torch.allclose(xs @ ws.T, x @ w.T, rtol=1e-12, atol=1e-10)
    ref = x @ w.T
    assert (sq.w8a8_linear(x, w, s=s) - ref).norm() < 0.5 * (sq.w8a8_linear(x, w) - ref).norm()


def test_levels_used_shows_the_per_tensor_problem():
    levels = sq.levels_used(outlier_inputs())
    assert levels[1] > 60 and levels.median() < 30


def test_w8a8_forwards_on_a_tiny_llama():
    model, _ = make_tiny_llama()
    groups = llm_model.input_groups(model)
    text = "def f(x):\n    return x * 2\n" * 10
    base = llm.perplexity(model, CharTokenizer(), text, 32, 160)
    windows = llm.token_windows(CharTokenizer(), text, 32, 160)
    stats = llm_model.calibration_stats(model, lambda: [model(w) for w in windows], groups, hessians=False)
    for forwards in (sq.w8a8_forwards(model, groups), sq.w8a8_forwards(model, groups, stats, 0.5)):
        with torch.no_grad(), llm_model.swapped_forwards(model, forwards):
            quant = llm.perplexity(model, CharTokenizer(), text, 32, 160)
        assert abs(quant.ppl / base.ppl - 1) < 0.2  # int8 on a tiny model: close, not equal
        assert quant.ppl != base.ppl
    assert llm.perplexity(model, CharTokenizer(), text, 32, 160).ppl == base.ppl  # forwards restored
    with pytest.raises(ValueError, match="both"):
        sq.w8a8_forwards(model, groups, stats)
