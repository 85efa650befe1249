"""Tests for helpers.kv_cache (lesson 15): layouts, stored bytes, the attention path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from llm_tiny import CharTokenizer
from llm_tiny import tiny_llama as make_tiny_llama

from helpers import kv_cache as kv
from helpers import llm


def keys_with_outlier_channel() -> torch.Tensor:
    k = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(8))
    k[..., 5] += 20  # keys have fixed outlier channels
    return k


def test_per_channel_handles_outlier_channels():
    k = keys_with_outlier_channel()
    assert kv.kv_quant_error(k, 8, "token") < 0.01
    assert kv.kv_quant_error(k, 4, "channel") < 0.5 * kv.kv_quant_error(k, 4, "token")
    assert kv.fake_quant_kv(k, 4, "channel").shape == k.shape


@pytest.mark.parametrize("axis", ["token", "channel"])
@pytest.mark.parametrize("tokens", [64, 45])
def test_quantize_dequantize_round_trip_and_error_bound(axis, tokens):
    x = torch.randn(1, 2, tokens, 16, generator=torch.Generator().manual_seed(1))
    q, scale, lo = kv.quantize_kv(x, 8, axis, 32)
    back = kv.dequantize_kv(q, scale, lo, x.shape, axis)
    assert back.shape == x.shape and q.dtype == torch.uint8
    assert (back - x).abs().max() <= scale.float().max() * 0.51 + 1e-3
    assert torch.equal(kv.fake_quant_kv(x, 8, axis, 32), back)


def test_pack_bits_and_stored_bytes():
    codes = torch.tensor([0, 1, 2, 3, 3, 2])
    assert kv.pack_bits(codes, 2).tolist() == [0b11100100, 0b1011]
    assert kv.pack_bits(torch.tensor([1, 15, 7]), 4).tolist() == [0xF1, 0x07]
    with pytest.raises(ValueError, match="2, 4 or 8"):
        kv.pack_bits(codes, 3)
    x = torch.randn(1, 3, 64, 64)
    # per token: codes + one fp16 scale and minimum per (head, token)
    assert kv.stored_bytes(x, 4, "token") == 3 * 64 * 64 // 2 + 3 * 64 * 4
    # per channel in groups of 32 tokens: one pair per (head, channel, group)
    assert kv.stored_bytes(x, 2, "channel", 32) == 3 * 64 * 64 // 4 + 3 * 64 * 2 * 4
    assert kv.bits_per_value(4, "token", 64) == 4.5 and kv.bits_per_value(2, "channel", group=32) == 3.0


def test_kv_quantization_path_is_exact_without_bits_and_changes_with_them():
    model, _ = make_tiny_llama()
    text = "import numpy as np\nx = np.zeros(3)\n" * 8
    base = llm.perplexity(model, CharTokenizer(), text, 32, 192)
    with kv.kv_quantization(model, None):
        same = llm.perplexity(model, CharTokenizer(), text, 32, 192)
    assert np.array_equal(same.nll, base.nll)
    with kv.kv_quantization(model, 2, "channel"):
        low = llm.perplexity(model, CharTokenizer(), text, 32, 192)
    assert not np.array_equal(low.nll, base.nll)
    assert model.config._attn_implementation == "sdpa"  # restored
    with pytest.raises(ValueError, match="axes"):
        with kv.kv_quantization(model, 4, "row"):
            pass


def test_cache_bytes_of_a_real_cache():
    model, _ = make_tiny_llama()
    with torch.no_grad():
        out = model(torch.randint(0, 96, (1, 40)), use_cache=True)
    cache = out.past_key_values
    per_token = kv.kv_bytes_per_token(model.config, 32)
    assert kv.cache_bytes(cache) == per_token * 40
    assert kv.cache_bytes(cache, 8, "token", "token") < kv.cache_bytes(cache) / 3
