"""Tests for helpers.llm_formats (lesson 15): E2M1, MXFP4 (against gguf's own), NVFP4."""

from __future__ import annotations

import pytest
import torch

from helpers import llm_formats as fmt


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


def test_mxfp4_equals_the_gguf_library_off_ties_and_handles_zeros():
    x = torch.randn(16, 256, generator=torch.Generator().manual_seed(1)) * 0.05
    assert torch.equal(fmt.mxfp4(x), fmt.gguf_mxfp4_roundtrip(x))
    assert torch.equal(fmt.mxfp4(torch.zeros(2, 32)), torch.zeros(2, 32))


def test_nvfp4_uses_e4m3_block_scales():
    x = torch.randn(2, 64, generator=torch.Generator().manual_seed(7))
    out, block_scale, tensor_scale = fmt.nvfp4(x, return_scales=True)
    assert block_scale.shape == (2, 4)
    assert torch.equal(block_scale.to(torch.float8_e4m3fn).float(), block_scale)
    codes = out.reshape(2, 4, 16) / (block_scale[..., None] * tensor_scale)
    assert torch.allclose(codes.abs(), fmt.round_to_e2m1(codes).abs(), atol=1e-5)
    assert (out - x).norm() / x.norm() < 0.15


def test_block_sizes_and_storage():
    with pytest.raises(ValueError, match="multiple"):
        fmt.mxfp4(torch.randn(2, 40))
    assert fmt.fp4_bits_per_weight("mxfp4") == 4.25 and fmt.fp4_bits_per_weight("nvfp4") == 4.5
    model = torch.nn.Sequential(torch.nn.Linear(32, 4))
    assert torch.equal(fmt.fp4_weights(model, ["0"], "mxfp4")["0"], fmt.mxfp4(model[0].weight.detach()))
    with pytest.raises(ValueError, match="fmt"):
        fmt.fp4_weights(model, ["0"], "fp4")


def test_differences_from_gguf_are_only_ties():
    x = torch.tensor([[0.75, 1.75, 2.5, 5.0, 0.25, 0.3] + [0.1] * 25 + [4.0]])
    differ, ties = fmt.mxfp4_differences(x, fmt.gguf_mxfp4_roundtrip(x))
    assert differ == ties == 2  # 0.75 and 1.75: even codes 1.0 and 2.0 here, 0.5 and 1.5 in gguf
