"""Tests for helpers.llm_speed (lesson 15): counting bytes, ceilings, decoding on a tiny model."""

from __future__ import annotations

import pytest
import torch
from llm_tiny import tiny_llama as make_tiny_llama

from helpers import llm_speed as ls


def test_counts_and_formats_on_a_tiny_llama():
    model, _ = make_tiny_llama()
    n = ls.weights_read_per_token(model)
    decoder = 2 * (64 * 64 + 2 * 32 * 64 + 64 * 64 + 3 * 64 * 128)
    assert n == decoder + 96 * 64  # the tied lm_head counted once
    assert ls.format_bytes(model, "fp32") == 4 * n == ls.linear_bytes(model)
    assert ls.format_bytes(model, "bf16") == 2 * n
    assert n / 2 < ls.format_bytes(model, "int4-g32") < n / 2 * 1.2
    with pytest.raises(ValueError, match="fmt"):
        ls.format_bytes(model, "int3")
    assert ls.ceiling_tokens_per_s(1e9, 10.0) == 10.0


def test_decode_speed_and_quantized_copies():
    model, _ = make_tiny_llama()
    prompt = torch.randint(0, 96, (1, 5))
    speed = ls.decode_speed(model, prompt, new_tokens=3, repeats=2)
    assert speed.tokens_per_s > 0 and speed.new_tokens == 3 and speed.repeats == 2
    with pytest.raises(ValueError, match="prompt_ids"):
        ls.decode_speed(model, prompt[0])
    dyn = ls.quantized_copy(model, "dynamic-int8")
    assert ls.linear_bytes(dyn) < ls.linear_bytes(model) / 3
    ao = ls.quantized_copy(model, "int4-weight-only")
    assert ls.linear_bytes(ao) < ls.linear_bytes(model) / 3  # int4 stored one per int8 byte here
    assert isinstance(model.lm_head.weight, torch.nn.Parameter)  # the original is untouched
    with pytest.raises(ValueError, match="unknown torchao config"):
        ls.torchao_config("int2")


def test_read_bandwidth_is_positive():
    assert ls.read_bandwidth(megabytes=16, repeats=3) > 0


def test_regional_compilation_wraps_mlps_and_the_other_linears():
    model, _ = make_tiny_llama()
    assert ls.compile_linear_regions(model) == 2 * (1 + 4) + 1  # per block: the MLP, q/k/v/o; lm_head
    assert model.model.layers[0].mlp._compiled_call_impl is not None
    assert getattr(model.model.layers[0].mlp.up_proj, "_compiled_call_impl", None) is None
