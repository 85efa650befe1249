"""KV-cache quantization: per-token and per-channel (KIVI, Liu et al. 2024), emulated: lesson 15.

While a model generates, it keeps every past token's keys and values (the KV cache); for a
long context that cache outgrows the weights. Keys have fixed outlier *channels*, so KIVI
quantizes keys per channel (over a group of tokens) and values per token. The emulation
fake-quantizes the keys and values that an attention call receives (after RoPE, exactly
what the cache stores) through transformers' attention interface.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from helpers import llm_quant as lq

ATTENTION_NAME = "course_kv_quantized"
AXES = ("token", "channel")


def _grouped(x: torch.Tensor, axis: str, group: int | None) -> tuple[torch.Tensor, int]:
    """View x (..., tokens, dim) so the values sharing one scale lie along the last axis."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
    if axis == "token":
        return x, -1
    t = x.transpose(-1, -2)  # (..., dim, tokens): one row per channel
    tokens = t.shape[-1]
    g = tokens if group is None else group
    pad = -tokens % g
    if pad:  # repeat the last token so padding widens no range
        t = torch.cat([t, t[..., -1:].expand(*t.shape[:-1], pad)], dim=-1)
    return t.reshape(*t.shape[:-1], -1, g), tokens


def quantize_kv(x: torch.Tensor, bits: int = 8, axis: str = "token", group: int | None = 32
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Asymmetric codes (uint8), scale and minimum (fp16) of a K or V tensor (..., tokens, dim); lesson 15.

    ``axis="token"``: one (scale, minimum) per token vector; ``"channel"``: one per channel
    over each group of ``group`` tokens (None: all tokens).
    """
    t, _ = _grouped(x.float(), axis, group)
    lo = t.amin(dim=-1, keepdim=True).half().float()  # stored in fp16, so quantize against it
    hi = t.amax(dim=-1, keepdim=True)
    qmax = 2**bits - 1
    scale = ((hi - lo) / qmax).clamp_min(1e-8).half().float()
    q = torch.clamp(torch.round((t - lo) / scale), 0, qmax).to(torch.uint8)
    return q, scale.half(), lo.half()


def dequantize_kv(q: torch.Tensor, scale: torch.Tensor, lo: torch.Tensor, shape: torch.Size,
                  axis: str = "token") -> torch.Tensor:
    """Inverse of :func:`quantize_kv` back to (..., tokens, dim) floats; lesson 15."""
    t = q.float() * scale.float() + lo.float()
    if axis == "token":
        return t.reshape(shape)
    t = t.reshape(*t.shape[:-2], -1)[..., :shape[-2]]  # (..., dim, tokens)
    return t.transpose(-1, -2).reshape(shape)


def fake_quant_kv(x: torch.Tensor, bits: int = 8, axis: str = "token",
                  group: int | None = 32) -> torch.Tensor:
    """Quantize then dequantize a K or V tensor (..., tokens, head_dim); lesson 15."""
    q, scale, lo = quantize_kv(x, bits, axis, group)
    return dequantize_kv(q, scale, lo, x.shape, axis).to(x.dtype)


def kv_quant_error(x: torch.Tensor, bits: int = 8, axis: str = "token", group: int | None = 32) -> float:
    """Relative error ||x - Q(x)|| / ||x|| of :func:`fake_quant_kv`; lesson 15."""
    return float((x - fake_quant_kv(x, bits, axis, group)).norm() / x.norm().clamp_min(1e-12))


def pack_bits(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack unsigned codes of 2, 4 or 8 bits into bytes, lowest bits first; lesson 15."""
    if bits == 8:
        return codes.flatten().to(torch.uint8)
    if bits == 4:
        return lq.pack_int4(codes.to(torch.int16))
    if bits != 2:
        raise ValueError(f"pack_bits handles 2, 4 or 8 bits, got {bits}")
    flat = codes.flatten().to(torch.int16)
    flat = torch.cat([flat, flat.new_zeros(-flat.numel() % 4)]).reshape(-1, 4)
    return (flat[:, 0] | flat[:, 1] << 2 | flat[:, 2] << 4 | flat[:, 3] << 6).to(torch.uint8)


def stored_bytes(x: torch.Tensor, bits: int = 8, axis: str = "token", group: int | None = 32) -> int:
    """Measured bytes of x as packed codes plus fp16 scales and minima; lesson 15."""
    q, scale, lo = quantize_kv(x, bits, axis, group)
    return pack_bits(q, bits).numel() + scale.numel() * scale.element_size() + lo.numel() * lo.element_size()


def cache_tensors(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(keys, values) per layer of a transformers cache object; lesson 15."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def cache_bytes(cache, bits: int | None = None, key_axis: str = "token", value_axis: str = "token",
                group: int | None = 32) -> int:
    """Bytes of a real KV cache as stored now (bits None) or quantized and packed; lesson 15."""
    total = 0
    for k, v in cache_tensors(cache):
        if bits is None:
            total += k.numel() * k.element_size() + v.numel() * v.element_size()
        else:
            total += stored_bytes(k, bits, key_axis, group) + stored_bytes(v, bits, value_axis, group)
    return total


def kv_bytes_per_token(config, bits: float = 16) -> float:
    """Arithmetic: layers x 2 (K and V) x kv_heads x head_dim x bits / 8; lesson 15."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return config.num_hidden_layers * 2 * config.num_key_value_heads * head_dim * bits / 8


@contextmanager
def kv_quantization(model, bits: int | None, key_axis: str = "token", value_axis: str = "token",
                    group: int | None = 32) -> Iterator[None]:
    """Run the model with keys and values fake-quantized inside every attention call; lesson 15.

    ``bits=None`` runs the same code path without quantizing (to prove the path is exact).
    """
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import sdpa_mask

    for axis in (key_axis, value_axis):
        if axis not in AXES:
            raise ValueError(f"axes must be one of {AXES}, got {axis!r}")

    def attention(module, query, key, value, attention_mask, **kwargs):
        if bits is not None:
            key = fake_quant_kv(key, bits, key_axis, group)
            value = fake_quant_kv(value, bits, value_axis, group)
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register(ATTENTION_NAME, attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    before = model.config._attn_implementation
    model.set_attn_implementation(ATTENTION_NAME)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def bits_per_value(bits: int, axis: str, head_dim: int = 64, group: int = 32) -> float:
    """Code bits plus the fp16 scale and minimum shared by each token vector or token group; lesson 15."""
    shared = head_dim if axis == "token" else group
    return bits + 32 / shared


def mib(n_bytes: float) -> float:
    """Bytes to MiB (2**20 bytes); lesson 15."""
    return n_bytes / 2**20 if math.isfinite(n_bytes) else n_bytes
