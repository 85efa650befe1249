"""A tiny random Llama (2 blocks, grouped-query attention) for the lesson-15 helper tests."""

from __future__ import annotations

import torch


def tiny_llama(seed: int = 0):
    """(model, run): a 2-block random LlamaForCausalLM and a callable that runs it on 3 windows."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                         max_position_embeddings=128, tie_word_embeddings=True)
    model = LlamaForCausalLM(config).eval()
    windows = [torch.randint(0, 96, (1, 24), generator=torch.Generator().manual_seed(s)) for s in range(3)]

    def run():
        with torch.no_grad():
            for w in windows:
                model(w)

    return model, run


class CharTokenizer:
    """Characters to ids below 96, enough for perplexity on the tiny model."""

    def __call__(self, text, return_tensors="pt"):
        return type("Enc", (), {"input_ids": torch.tensor([[ord(c) % 96 for c in text]])})()
