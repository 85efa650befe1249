"""Weight-only integer quantization of transformer Linear layers, from scratch in torch: lesson 15.

Per-group grids (symmetric, asymmetric with an integer zero point, and GGUF Q4_1's "scale and
minimum"), round-to-nearest (RTN), two int4 codes per byte, and the bits per weight that the
scales cost. Weights are ``(out_features, in_features)`` as in ``torch.nn.Linear``; groups run
along ``in_features`` (the dimension a dot product sums over). Functions that return weights
return dequantized floats (fake quantization), so the result drops into a Linear unchanged.
GPTQ, AWQ and SmoothQuant live in ``helpers.gptq``, ``helpers.awq`` and ``helpers.smoothquant``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

EPS = 1e-12


def int_range(bits: int = 4, symmetric: bool = True) -> tuple[int, int]:
    """(qmin, qmax): symmetric int4 is (-8, 7), asymmetric uint4 (0, 15); lesson 15."""
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be between 2 and 8, got {bits}")
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)


def group_params(w: torch.Tensor, bits: int = 4, symmetric: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row scale and zero point for a block of columns ``w`` (rows, g); lesson 15.

    Symmetric: scale = max|w| / qmax (so -8 is used only by rounding, as in GPTQ and torchao);
    asymmetric: [min, max] widened to include 0, an integer zero point.
    """
    qmin, qmax = int_range(bits, symmetric)
    if symmetric:
        scale = (w.abs().amax(dim=1) / qmax).clamp_min(EPS)
        return scale, torch.zeros_like(scale)
    lo, hi = w.amin(dim=1).clamp(max=0), w.amax(dim=1).clamp(min=0)
    scale = ((hi - lo) / (qmax - qmin)).clamp_min(EPS)
    zero = (qmin - torch.round(lo / scale)).clamp(qmin, qmax)
    return scale, zero


def quantize_codes(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int = 4,
                   symmetric: bool = True) -> torch.Tensor:
    """Integer codes round(w / scale) + zero, clamped to the grid (scale per row); lesson 15."""
    qmin, qmax = int_range(bits, symmetric)
    if w.dim() == 2:
        scale, zero = scale[:, None], zero[:, None]
    return torch.clamp(torch.round(w / scale) + zero, qmin, qmax)


def fake_quant(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int = 4,
               symmetric: bool = True) -> torch.Tensor:
    """Quantize then dequantize with given per-row scale and zero point; lesson 15."""
    q = quantize_codes(w, scale, zero, bits, symmetric)
    if w.dim() == 2:
        scale, zero = scale[:, None], zero[:, None]
    return (q - zero) * scale


def _groups(w: torch.Tensor, group_size: int | None) -> tuple[torch.Tensor, int]:
    if w.dim() != 2:
        raise ValueError(f"expected a 2-D weight (out_features, in_features), got shape {tuple(w.shape)}")
    rows, cols = w.shape
    g = cols if group_size is None else group_size
    if g < 1:
        raise ValueError(f"group_size must be positive or None (one group per row), got {group_size}")
    pad = -cols % g  # a shorter last group: zero padding changes neither max|w| nor [min, max] with 0
    return torch.nn.functional.pad(w, (0, pad)).reshape(-1, g), cols


def quantize_groupwise(w: torch.Tensor, group_size: int | None = 128, bits: int = 4, symmetric: bool = True,
                       return_codes: bool = False):
    """Round-to-nearest (RTN) per-group quantization of a weight; group_size None = per row; lesson 15.

    Returns the dequantized weight, or (codes, scales, zeros) with ``return_codes``.
    """
    blocks, cols = _groups(w, group_size)
    rows = w.shape[0]
    scale, zero = group_params(blocks, bits, symmetric)
    if return_codes:
        codes = quantize_codes(blocks, scale, zero, bits, symmetric).reshape(rows, -1)[:, :cols]
        return codes.to(torch.int8), scale.reshape(rows, -1), zero.reshape(rows, -1)
    return fake_quant(blocks, scale, zero, bits, symmetric).reshape(rows, -1)[:, :cols]


rtn = quantize_groupwise


def rtn_min_scale(w: torch.Tensor, group_size: int = 32, bits: int = 4) -> torch.Tensor:
    """GGUF Q4_1's grid: w_hat = minimum + d * q, d = (max - min) / 15, q in 0..15, per group; lesson 15.

    Unlike an integer zero point, the float minimum lets the grid sit anywhere.
    """
    if w.shape[1] % group_size:
        raise ValueError(f"in_features {w.shape[1]} is not a multiple of group_size {group_size}")
    blocks, _ = _groups(w, group_size)
    lo, hi = blocks.amin(1, keepdim=True), blocks.amax(1, keepdim=True)
    d = (hi - lo) / (2**bits - 1)
    q = torch.where(d > 0, torch.round((blocks - lo) / d.clamp_min(EPS)), 0.0).clamp(0, 2**bits - 1)
    return (lo + d * q).reshape(w.shape)


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Pack int4 codes (-8..7 or 0..15) two per byte, low nibble first; lesson 15."""
    flat = codes.flatten().to(torch.int16)
    if flat.numel() and (flat.min() < -8 or flat.max() > 15):
        raise ValueError(f"int4 codes must lie in -8..7 or 0..15, got {int(flat.min())}..{int(flat.max())}")
    flat = flat & 0xF  # two's complement: -1 becomes 0b1111
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return (flat[0::2] | (flat[1::2] << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor, count: int, signed: bool = True) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: the first ``count`` codes as int8; lesson 15."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed codes must be uint8, got {packed.dtype}")
    if not 0 <= count <= 2 * packed.numel():
        raise ValueError(f"{packed.numel()} bytes hold at most {2 * packed.numel()} codes, asked for {count}")
    p = packed.flatten().to(torch.int16)
    flat = torch.stack([p & 0xF, (p >> 4) & 0xF], dim=1).flatten()[:count]
    if signed:
        flat = torch.where(flat >= 8, flat - 16, flat)
    return flat.to(torch.int8)


def bits_per_weight(group_size: int, bits: int = 4, scale_bits: int = 16, zero_bits: int = 0,
                    in_features: int | None = None) -> float:
    """Storage per weight including per-group overhead: 4 + 16/128 = 4.125 for W4 g128; lesson 15.

    With ``in_features``, a row that does not split into whole groups pays for its shorter last
    group too: a 576-wide row at g128 has five scales, 4 + 5 * 16 / 576 = 4.139 bits per weight.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be positive, got {group_size}")
    if in_features is None:
        return bits + (scale_bits + zero_bits) / group_size
    if in_features < 1:
        raise ValueError(f"in_features must be positive, got {in_features}")
    groups = -(-in_features // group_size)
    return bits + groups * (scale_bits + zero_bits) / in_features


def weights_bits_per_weight(weights: Mapping[str, torch.Tensor], group_size: int, bits: int = 4,
                            scale_bits: int = 16, zero_bits: int = 0) -> float:
    """Bits per weight over a set of [out, in] weights, partial last groups counted; lesson 15."""
    if not weights:
        raise ValueError("weights_bits_per_weight() needs at least one weight")
    total_bits = sum(w.numel() * bits_per_weight(group_size, bits, scale_bits, zero_bits, w.shape[-1])
                     for w in weights.values())
    return total_bits / sum(w.numel() for w in weights.values())


def packed_bytes(codes: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor | None = None) -> int:
    """Bytes of a weight stored as packed int4 codes plus fp16 scales (and fp16 zeros); lesson 15."""
    total = pack_int4(codes).numel() + scales.to(torch.float16).numel() * 2
    return total + (0 if zeros is None else zeros.to(torch.float16).numel() * 2)


def layer_error(x: torch.Tensor, w: torch.Tensor, w_hat: torch.Tensor) -> float:
    """Mean squared output error ||X W^T - X W_hat^T||^2 / n of a Linear layer; lesson 15."""
    x = x.to(w.dtype)
    return float(((x @ (w - w_hat).T) ** 2).mean())


def rtn_weights(model, names: list[str], group_size: int | None = 128, bits: int = 4,
                symmetric: bool = True) -> dict[str, torch.Tensor]:
    """RTN-quantized copies of the named Linear weights (for ``llm_model.swapped_weights``); lesson 15."""
    found = dict(model.named_modules())
    return {n: quantize_groupwise(found[n].weight.detach(), group_size, bits, symmetric) for n in names}
