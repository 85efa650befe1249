"""Tests for helpers.gptq (lesson 15): the OBQ reference, compensation, damping, shared Hessians."""

from __future__ import annotations

import pytest
import torch
from llm_tiny import tiny_llama as make_tiny_llama

from helpers import gptq, llm_model
from helpers import llm_quant as lq


@pytest.fixture(scope="module")
def tiny_llama():
    return make_tiny_llama()


def correlated_inputs(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """Activations with strongly correlated channels and a few outlier channels."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d // 4, generator=g, dtype=torch.float64)
    x = base @ torch.randn(d // 4, d, generator=g, dtype=torch.float64) + 0.1 * torch.randn(
        n, d, generator=g, dtype=torch.float64)
    x[:, :3] *= 10
    return x


def obq_reference(w: torch.Tensor, h: torch.Tensor, damp: float = 0.01) -> torch.Tensor:
    """Plain sequential OBQ update with explicit inverses of the remaining columns' Hessian."""
    w = w.clone()
    h = h + damp * torch.mean(torch.diag(h)) * torch.eye(h.shape[0], dtype=h.dtype)
    scale, zero = lq.group_params(w)  # no grouping: one scale per row from the original row
    q = torch.zeros_like(w)
    for i in range(w.shape[1]):
        rest = list(range(i, w.shape[1]))
        hinv = torch.linalg.inv(h[rest][:, rest])
        q[:, i] = lq.fake_quant(w[:, i], scale, zero)
        delta = (w[:, i] - q[:, i]) / hinv[0, 0]
        w[:, rest] -= delta[:, None] * hinv[0][None, :]  # the OBS optimal update of the rest
    return q


def test_gptq_matches_sequential_obq_on_a_tiny_case():
    x = correlated_inputs(64, 8)[:, :6] + torch.randn(64, 6, dtype=torch.float64) * 0.3
    w = torch.randn(3, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h = gptq.hessian(x)
    assert torch.allclose(gptq.gptq(w, h, group_size=None, block_size=4), obq_reference(w, h), atol=1e-12)


def test_gptq_of_one_column_matches_the_least_squares_update():
    """Quantize column 0, then solve min ||X (w - w')|| over the other columns directly."""
    x = correlated_inputs(200, 8)
    w = torch.randn(1, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    hinv, _ = gptq.inverse_hessian_factor(gptq.hessian(x), damp=0.0)
    q0 = torch.round(w[:, 0] * 3) / 3
    got = gptq.column_update(w, hinv, 0, q0)
    target = x @ w.T - x[:, :1] * q0  # what the remaining columns must produce
    direct = torch.linalg.lstsq(x[:, 1:], target).solution.T
    assert torch.allclose(got[:, 1:], direct, atol=1e-8) and torch.equal(got[:, 0], q0)


@pytest.mark.parametrize("group", [None, 32, 128])
def test_gptq_beats_rtn_on_correlated_inputs(group):
    x = correlated_inputs(512, 256)
    w = torch.randn(32, 256, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    err_rtn = lq.layer_error(x, w, lq.rtn(w, group))
    err_gptq = lq.layer_error(x, w, gptq.gptq(w, gptq.hessian(x), group, block_size=64))
    assert err_gptq < 0.7 * err_rtn


def test_gptq_output_lies_on_the_group_grid():
    x = correlated_inputs(256, 64)
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    q = gptq.gptq(w, gptq.hessian(x), group_size=32, bits=3)
    for row in q.reshape(16, 32):
        assert len(torch.unique(row)) <= 8  # at most 2**3 levels per group


def test_dead_inputs_and_a_bad_hessian():
    x = correlated_inputs(128, 16)
    x[:, 5] = 0.0  # a channel that never fires
    w = torch.randn(4, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    q = gptq.gptq(w, gptq.hessian(x), group_size=None)
    assert torch.all(q[:, 5] == 0) and torch.isfinite(q).all()
    with pytest.raises(ValueError, match="H must be"):
        gptq.gptq(w, torch.eye(8, dtype=torch.float64))
    with pytest.raises(ValueError, match="damp"):
        gptq.inverse_hessian_factor(torch.eye(4), damp=1.5)


def test_gptq_weights_stacks_groups_exactly(tiny_llama):
    model, run = tiny_llama
    groups = llm_model.input_groups(model)[:4]
    stats = llm_model.calibration_stats(model, run, groups)
    got, seconds = gptq.gptq_weights(model, groups, stats, group_size=16, progress=False)
    mods = dict(model.named_modules())
    qkv = groups[0]
    alone = gptq.gptq(mods[qkv.linears[1]].weight.detach(), stats[qkv.name].hessian, 16)
    assert torch.allclose(got[qkv.linears[1]], alone, atol=1e-6) and seconds >= 0
    assert set(got) == set(llm_model.linears_of(groups))
