"""Tests for helpers.llm_quant and helpers.llm_formats (lesson 15): small random layers only."""

from __future__ import annotations

import pytest
import torch

from helpers import llm_formats as fmt
from helpers import llm_quant as lq


def correlated_inputs(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """Activations with strongly correlated channels and a few outlier channels."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, d // 4, generator=g, dtype=torch.float64)
    x = base @ torch.randn(d // 4, d, generator=g, dtype=torch.float64) + 0.1 * torch.randn(
        n, d, generator=g, dtype=torch.float64)
    x[:, :3] *= 10
    return x


@pytest.mark.parametrize("signed", [True, False])
def test_pack_unpack_round_trip(signed):
    lo, hi = (-8, 7) if signed else (0, 15)
    codes = torch.randint(lo, hi + 1, (7, 33), generator=torch.Generator().manual_seed(1)).to(torch.int8)
    packed = lq.pack_int4(codes)
    assert packed.dtype == torch.uint8 and packed.numel() == (codes.numel() + 1) // 2
    assert torch.equal(lq.unpack_int4(packed, codes.numel(), signed).reshape(codes.shape), codes)


def test_bits_per_weight():
    assert lq.bits_per_weight(128) == 4.125
    assert lq.bits_per_weight(32, zero_bits=16) == 5.0  # the GGUF Q4_1 layout
    assert fmt.fp4_bits_per_weight("mxfp4") == 4.25 and fmt.fp4_bits_per_weight("nvfp4") == 4.5


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("group", [32, 64, 128, 256])
def test_rtn_codes_and_grid(symmetric, group):
    w = torch.randn(8, 256, generator=torch.Generator().manual_seed(2))
    codes, scale, zero = lq.quantize_groupwise(w, group, symmetric=symmetric, return_codes=True)
    lo, hi = lq.int_range(4, symmetric)
    assert codes.min() >= lo and codes.max() <= hi and scale.shape == (8, 256 // group)
    deq = (codes.float().reshape(8, -1, group) - zero[..., None]) * scale[..., None]
    assert torch.allclose(deq.reshape(8, 256), lq.quantize_groupwise(w, group, symmetric=symmetric))
    assert (w - deq.reshape(8, 256)).abs().max() <= scale.max() * (0.5 if symmetric else 1.0) + 1e-6


def test_rtn_ragged_last_group_equals_quantizing_it_alone():
    w = torch.randn(4, 576, generator=torch.Generator().manual_seed(9))  # SmolLM2's width, 4.5 groups of 128
    got = lq.rtn(w, 128, symmetric=False)
    assert torch.allclose(got[:, 512:], lq.rtn(w[:, 512:], None, symmetric=False))
    assert torch.allclose(got[:, :512], lq.rtn(w[:, :512], 128, symmetric=False))


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
    x = correlated_inputs(64, 4)[:, :4] + torch.randn(64, 4, dtype=torch.float64) * 0.3
    w = torch.tensor([[0.9, -0.35, 0.2, 0.61]], dtype=torch.float64)
    h = lq.hessian(x)
    assert torch.allclose(lq.gptq(w, h, group_size=None), obq_reference(w, h), atol=1e-12)


@pytest.mark.parametrize("group", [None, 32, 128])
def test_gptq_beats_rtn_on_correlated_inputs(group):
    x = correlated_inputs(512, 256)
    w = torch.randn(32, 256, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    err_rtn = lq.layer_error(x, w, lq.rtn(w, group))
    err_gptq = lq.layer_error(x, w, lq.gptq(w, lq.hessian(x), group, block_size=64))
    assert err_gptq < 0.7 * err_rtn


def test_awq_search_is_no_worse_than_alpha_zero():
    x = correlated_inputs(256, 128).float()
    w = torch.randn(16, 128, generator=torch.Generator().manual_seed(4))
    w_hat, result = lq.awq(w, x, group_size=64)
    assert 0.0 <= result.alpha <= 1.0 and len(result.errors) == 21
    assert result.errors[result.alpha] <= result.errors[0.0]
    assert torch.allclose(torch.tensor(result.errors[0.0]), torch.tensor(lq.layer_error(x, w, lq.rtn(w, 64))))
    assert lq.layer_error(x, w, w_hat) == pytest.approx(result.errors[result.alpha])


def test_smoothquant_preserves_the_product_and_helps_w8a8():
    x = correlated_inputs(128, 64)
    w = torch.randn(16, 64, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    s = lq.smoothquant_scales(x.abs().amax(dim=0), w, alpha=0.5)
    xs, ws = lq.smooth(x, w, s)
    assert torch.allclose(xs @ ws.T, x @ w.T, rtol=1e-12, atol=1e-10)
    ref = x @ w.T
    naive = (lq.w8a8_linear(x, w) - ref).norm()
    smoothed = (lq.w8a8_linear(x, w, s=s) - ref).norm()
    assert smoothed < naive


def test_e2m1_value_set_is_exact():
    x = torch.linspace(-7, 7, 2801)
    values = set(fmt.round_to_e2m1(x).abs().tolist())
    assert values == set(fmt.E2M1_VALUES)
    assert fmt.round_to_e2m1(torch.tensor([0.25, 0.75, 1.25, 2.5, 5.0])).tolist() == [0.0, 1.0, 1.0, 2.0, 4.0]


def test_mxfp4_scales_are_powers_of_two_and_values_on_grid():
    x = torch.randn(4, 128, generator=torch.Generator().manual_seed(6)) * 3
    out, scale = fmt.mxfp4(x, return_scales=True)
    assert scale.shape == (4, 4)
    assert torch.equal(torch.exp2(torch.log2(scale).round()), scale)
    codes = out.reshape(4, 4, 32) / scale[..., None]
    assert set(codes.abs().flatten().tolist()) <= set(fmt.E2M1_VALUES)
    amax = x.reshape(4, 4, 32).abs().amax(-1)
    assert torch.all(amax / scale < 8) and torch.all(amax / scale >= 4)


def test_nvfp4_uses_e4m3_block_scales():
    x = torch.randn(2, 64, generator=torch.Generator().manual_seed(7))
    out, block_scale, tensor_scale = fmt.nvfp4(x, return_scales=True)
    assert block_scale.shape == (2, 4)
    assert torch.equal(block_scale.to(torch.float8_e4m3fn).float(), block_scale)
    codes = out.reshape(2, 4, 16) / (block_scale[..., None] * tensor_scale)
    assert torch.allclose(codes.abs(), fmt.round_to_e2m1(codes).abs(), atol=1e-5)
    assert (out - x).norm() / x.norm() < 0.15


def test_kv_cache_per_channel_handles_outlier_channels():
    k = torch.randn(2, 64, 32, generator=torch.Generator().manual_seed(8))
    k[..., 5] += 20  # keys have fixed outlier channels
    assert fmt.kv_quant_error(k, 8, "token") < 0.01
    assert fmt.kv_quant_error(k, 4, "channel") < fmt.kv_quant_error(k, 4, "token")
    assert fmt.fake_quant_kv(k, 4, "channel").shape == k.shape
