"""Tests for helpers.awq (lesson 15): the α search, shared scales, groups without a fold, folding."""

from __future__ import annotations

import pytest
import torch
from llm_tiny import tiny_llama as make_tiny_llama

from helpers import awq, llm_model
from helpers import llm_quant as lq


def salient_inputs(n: int = 256, d: int = 128, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    x[:, [2, 9, 50]] *= 20
    return x


def test_search_is_no_worse_than_rtn_and_alpha_zero_is_rtn():
    x = salient_inputs()
    w = torch.randn(16, 128, generator=torch.Generator().manual_seed(4))
    w_hat, result = awq.awq(w, x, group_size=64)
    assert 0.0 <= result.alpha <= 1.0 and len(result.errors) == 21
    assert result.errors[result.alpha] <= result.errors[0.0]
    assert result.errors[0.0] == pytest.approx(lq.layer_error(x, w, lq.rtn(w, 64)), rel=1e-5)
    assert lq.layer_error(x, w, w_hat) == pytest.approx(result.errors[result.alpha], rel=1e-5)


def test_salient_channels_get_scaled_up():
    x = salient_inputs()
    w = torch.randn(16, 128, generator=torch.Generator().manual_seed(5))
    result = awq.awq_search(w, x, group_size=32)
    assert result.alpha > 0
    assert result.scales[[2, 9, 50]].min() > result.scales.median()
    s = result.scales
    assert float(s.max() * s.min()) == pytest.approx(1.0, rel=1e-5)


def test_shared_input_group_uses_one_scale_and_sums_errors():
    x = salient_inputs()
    w1, w2 = torch.randn(8, 128), torch.randn(4, 128)
    result = awq.awq_search([w1, w2], x, group_size=32)
    stacked = torch.cat([w1, w2])
    for alpha, err in result.errors.items():
        s = awq.awq_scales(x.abs().mean(0), alpha)
        assert err == pytest.approx(lq.layer_error(x, stacked, awq.scaled_quantize(stacked, s, 32)), rel=1e-5)
    with pytest.raises(ValueError, match="channels"):
        awq.awq_search(w1, x[:, :64])


def test_fold_into_norm_is_exact():
    norm_w = torch.rand(32) + 0.5
    ws = [torch.randn(8, 32), torch.randn(4, 32)]
    s = torch.rand(32) + 0.5
    h = torch.randn(10, 32)
    new_norm, new_ws = awq.fold_into_norm(norm_w, ws, s)
    for w, nw in zip(ws, new_ws, strict=True):
        assert torch.allclose((h * norm_w) @ w.T, (h * new_norm) @ nw.T, atol=1e-5)


def test_awq_weights_on_a_tiny_llama_leave_unfoldable_groups_as_rtn():
    model, run = make_tiny_llama()
    groups = llm_model.input_groups(model)[:4]
    stats = llm_model.calibration_stats(model, run, groups)
    weights, results, _ = awq.awq_weights(model, groups, stats, group_size=16, progress=False)
    o_group = next(g for g in groups if g.fold_into is None)  # o_proj under grouped-query attention
    o = dict(model.named_modules())[o_group.linears[0]].weight
    assert o_group.name not in results
    assert torch.equal(weights[o_group.linears[0]], lq.rtn(o.detach(), 16))
    assert set(results) == {g.name for g in groups if g.fold_into is not None}


def test_clip_search_keeps_outputs_better_than_no_clipping_and_helps_heavy_tails():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(300, 200, generator=g)  # 200 columns: the last group of 64 is short
    w = torch.randn(24, 200, generator=g)
    w[torch.rand(w.shape, generator=g) < 0.01] *= 12  # a few outliers stretch their groups' grids
    clipped = awq.clip_search(w, x, group_size=64, bits=4, tokens=300)
    assert clipped.shape == w.shape and bool((clipped.abs() <= w.abs() + 1e-7).all())
    plain = lq.layer_error(x, w, lq.rtn(w, 64))
    with_clip = lq.layer_error(x, w, lq.rtn(clipped, 64))
    assert with_clip < 0.95 * plain
    # i = 0 (no clipping) is always tried: a weight without outliers loses nothing
    smooth = torch.randn(8, 128, generator=g)
    assert lq.layer_error(x[:, :128], smooth, lq.rtn(awq.clip_search(smooth, x[:, :128], 64), 64)) <= (
        lq.layer_error(x[:, :128], smooth, lq.rtn(smooth, 64)) * (1 + 1e-6))
    with pytest.raises(ValueError, match="channels"):
        awq.clip_search(w, x[:, :100], 64)


def test_awq_weights_clip_all_but_queries_and_keys():
    model, run = make_tiny_llama()
    groups = llm_model.input_groups(model)[:4]
    stats = llm_model.calibration_stats(model, run, groups)
    clipped, _, _ = awq.awq_weights(model, groups, stats, group_size=16, progress=False)
    plain, _, _ = awq.awq_weights(model, groups, stats, group_size=16, clip=False, progress=False)
    for name in clipped:
        if name.endswith(("q_proj", "k_proj")):
            assert torch.equal(clipped[name], plain[name])
    assert any(not torch.equal(clipped[n], plain[n]) for n in clipped if n.endswith("up_proj"))
