"""Block floating-point formats (MXFP4, NVFP4), emulated: lesson 15.

Emulated quantize-dequantize in torch. E2M1 (FP4) holds the magnitudes
{0, 0.5, 1, 1.5, 2, 3, 4, 6} with a sign. MXFP4 (OCP Microscaling) shares one power-of-two
E8M0 scale per 32 values; NVFP4 shares an FP8 E4M3 scale per 16 values and adds one fp32
scale per tensor.
"""

from __future__ import annotations

import torch

E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
E2M1_MAX = 6.0
E4M3_MAX = 448.0


def round_to_e2m1(x: torch.Tensor) -> torch.Tensor:
    """Round each value to the nearest signed E2M1 value, saturating at ±6 (ties to even code); lesson 15."""
    grid = torch.tensor(E2M1_VALUES, dtype=x.dtype, device=x.device)
    mag = x.abs().clamp(max=E2M1_MAX)
    mids = (grid[1:] + grid[:-1]) / 2
    idx = torch.bucketize(mag, mids)  # mag == mid goes to the lower index
    tie = (idx < len(E2M1_VALUES) - 1) & (mag == mids[idx.clamp(max=len(mids) - 1)])
    idx = torch.where(tie & (idx % 2 == 1), idx + 1, idx)  # ties to the even code, as RNE does
    return torch.sign(x) * grid[idx]


def _blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    if x.shape[-1] % block:
        raise ValueError(f"last dimension {x.shape[-1]} is not a multiple of the block size {block}")
    return x.reshape(*x.shape[:-1], x.shape[-1] // block, block)


def mxfp4(x: torch.Tensor, block: int = 32, return_scales: bool = False):
    """MXFP4 quantize-dequantize: E2M1 values times a shared 2^(floor(log2 amax) - 2) per 32; lesson 15."""
    b = _blocks(x.float(), block)
    amax = b.abs().amax(dim=-1, keepdim=True)
    exponent = torch.floor(torch.log2(amax.clamp_min(2.0**-126))) - 2  # emax of E2M1 is 2
    scale = torch.exp2(exponent.clamp(-127, 127))
    out = (round_to_e2m1(b / scale) * scale).reshape(x.shape).to(x.dtype)
    return (out, scale.squeeze(-1)) if return_scales else out


def nvfp4(x: torch.Tensor, block: int = 16, return_scales: bool = False):
    """NVFP4 quantize-dequantize: E2M1 values, an E4M3 scale per 16 and an fp32 tensor scale; lesson 15."""
    b = _blocks(x.float(), block)
    tensor_scale = (b.abs().max() / (E2M1_MAX * E4M3_MAX)).clamp_min(1e-30)
    block_scale = (b.abs().amax(dim=-1, keepdim=True) / E2M1_MAX / tensor_scale).clamp(max=E4M3_MAX)
    block_scale = block_scale.to(torch.float8_e4m3fn).float()
    scale = (block_scale * tensor_scale).clamp_min(1e-30)
    out = (round_to_e2m1(b / scale) * scale).reshape(x.shape).to(x.dtype)
    return (out, block_scale.squeeze(-1), tensor_scale) if return_scales else out


def fp4_bits_per_weight(fmt: str) -> float:
    """Storage per value: MXFP4 4 + 8/32 = 4.25, NVFP4 4 + 8/16 = 4.5 (tensor scale ignored); lesson 15."""
    return {"mxfp4": 4 + 8 / 32, "nvfp4": 4 + 8 / 16}[fmt]


def e2m1_ties(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Where |x| / scale lies exactly halfway between two E2M1 values (rounding rules differ); lesson 15."""
    mag = x.abs() / scale
    mids = [(a + b) / 2 for a, b in zip(E2M1_VALUES[:-1], E2M1_VALUES[1:], strict=True)]
    return torch.stack([mag == m for m in mids]).any(dim=0)


def mxfp4_differences(x: torch.Tensor, other: torch.Tensor, block: int = 32) -> tuple[int, int]:
    """(values that differ from ``other``, how many are exact E2M1 ties) for MXFP4 of x; lesson 15."""
    ours, scale = mxfp4(x, block, return_scales=True)
    differ = ours != other
    ties = e2m1_ties(_blocks(x.float(), block), scale[..., None]).reshape(x.shape)
    return int(differ.sum()), int((differ & ties).sum())


def fp4_weights(model, names: list[str], fmt: str) -> dict[str, torch.Tensor]:
    """MXFP4- or NVFP4-quantized (dequantized) copies of the named Linear weights; lesson 15."""
    quantize = {"mxfp4": mxfp4, "nvfp4": nvfp4}.get(fmt)
    if quantize is None:
        raise ValueError(f"fmt must be 'mxfp4' or 'nvfp4', got {fmt!r}")
    found = dict(model.named_modules())
    return {n: quantize(found[n].weight.detach()) for n in names}


def gguf_mxfp4_roundtrip(x: torch.Tensor) -> torch.Tensor:
    """The gguf package's own MXFP4 quantize-then-dequantize, as a reference; lesson 15."""
    import numpy as np
    from gguf import GGMLQuantizationType, quants

    data = x.detach().float().numpy().astype(np.float32)
    packed = quants.quantize(data, GGMLQuantizationType.MXFP4)
    return torch.from_numpy(quants.dequantize(packed, GGMLQuantizationType.MXFP4).reshape(data.shape))
