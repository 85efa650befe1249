"""Tests for helpers.llm_quant (lesson 15): int4 grids, Q4_1's grid, packing, bits per weight."""

from __future__ import annotations

import pytest
import torch

from helpers import llm_quant as lq


@pytest.mark.parametrize("signed", [True, False])
def test_pack_unpack_round_trip(signed):
    lo, hi = (-8, 7) if signed else (0, 15)
    codes = torch.randint(lo, hi + 1, (7, 33), generator=torch.Generator().manual_seed(1)).to(torch.int8)
    packed = lq.pack_int4(codes)
    assert packed.dtype == torch.uint8 and packed.numel() == (codes.numel() + 1) // 2
    assert torch.equal(lq.unpack_int4(packed, codes.numel(), signed).reshape(codes.shape), codes)


def test_pack_layout_is_low_nibble_first_twos_complement():
    assert lq.pack_int4(torch.tensor([1, -2, -1, 7, -8])).tolist() == [0xE1, 0x7F, 0x08]


def test_pack_and_unpack_refuse_bad_input():
    with pytest.raises(ValueError, match="-8..7"):
        lq.pack_int4(torch.tensor([16]))
    with pytest.raises(TypeError, match="uint8"):
        lq.unpack_int4(torch.tensor([1, 2]), 2)
    with pytest.raises(ValueError, match="at most 4"):
        lq.unpack_int4(torch.tensor([1, 2], dtype=torch.uint8), 5)


def test_bits_per_weight_and_packed_bytes():
    assert lq.bits_per_weight(128) == 4.125
    assert lq.bits_per_weight(32, zero_bits=16) == 5.0  # the GGUF Q4_1 layout
    assert lq.bits_per_weight(128, bits=3) == 3.125
    # A 576-wide row (SmolLM2's hidden size) needs five scales at g128, the last for 64 weights.
    assert lq.bits_per_weight(128, in_features=576) == 4 + 5 * 16 / 576
    assert lq.bits_per_weight(128, in_features=1536) == 4.125
    weights = {"up": torch.zeros(1536, 576), "down": torch.zeros(576, 1536)}
    mixed = lq.weights_bits_per_weight(weights, 128)
    assert mixed == (4 + 5 * 16 / 576 + 4.125) / 2
    with pytest.raises(ValueError, match="at least one weight"):
        lq.weights_bits_per_weight({}, 128)
    codes, scales, zeros = lq.quantize_groupwise(torch.randn(8, 256), 128, return_codes=True)
    assert lq.packed_bytes(codes, scales) == 8 * 256 // 2 + 8 * 2 * 2
    assert lq.packed_bytes(codes, scales, zeros) == 8 * 256 // 2 + 8 * 2 * 4


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


def test_smaller_groups_give_smaller_error():
    w = torch.randn(64, 512, generator=torch.Generator().manual_seed(3)) * torch.linspace(0.1, 3, 512)
    errors = [float((w - lq.rtn(w, g)).norm()) for g in (32, 64, 128, 256, None)]
    assert errors == sorted(errors)


def test_rtn_ragged_last_group_equals_quantizing_it_alone():
    w = torch.randn(4, 576, generator=torch.Generator().manual_seed(9))  # SmolLM2's width, 4.5 groups of 128
    got = lq.rtn(w, 128, symmetric=False)
    assert torch.allclose(got[:, 512:], lq.rtn(w[:, 512:], None, symmetric=False))
    assert torch.allclose(got[:, :512], lq.rtn(w[:, :512], 128, symmetric=False))


def test_min_scale_grid_reproduces_a_q4_1_tensor_but_an_integer_zero_point_does_not():
    from gguf import GGMLQuantizationType, quants

    w = torch.randn(16, 128, generator=torch.Generator().manual_seed(4)).numpy()
    q4_1 = torch.from_numpy(quants.dequantize(quants.quantize(w, GGMLQuantizationType.Q4_1),
                                              GGMLQuantizationType.Q4_1))
    assert torch.allclose(lq.rtn_min_scale(q4_1, 32), q4_1, atol=1e-6, rtol=0)
    assert (lq.rtn(q4_1, 32, symmetric=False) - q4_1).abs().max() > 1e-3
    with pytest.raises(ValueError, match="multiple"):
        lq.rtn_min_scale(q4_1[:, :100], 32)


def test_rtn_refuses_non_matrices_and_bad_bits():
    with pytest.raises(ValueError, match="2-D"):
        lq.rtn(torch.randn(8))
    with pytest.raises(ValueError, match="bits"):
        lq.int_range(1)


def test_rtn_weights_cover_the_named_layers():
    model = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.Linear(8, 4))
    got = lq.rtn_weights(model, ["0"], 32, 4)
    assert set(got) == {"0"} and torch.allclose(got["0"], lq.rtn(model[0].weight, 32))
