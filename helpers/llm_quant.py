"""Weight quantization methods for transformer Linear layers, from scratch in torch: lesson 15.

Int4 per-group grids (symmetric and asymmetric) with two-per-byte packing; round-to-nearest
(RTN); GPTQ (Frantar et al. 2022); AWQ (Lin et al. 2023); SmoothQuant scales for W8A8 (Xiao
et al. 2022). Weights are ``(out_features, in_features)`` as in ``torch.nn.Linear``; calibration
activations ``X`` are ``(tokens, in_features)``. Every function returns dequantized floats
(fake quantization), so the result drops into a Linear layer unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

EPS = 1e-12


def int_range(bits: int = 4, symmetric: bool = True) -> tuple[int, int]:
    """(qmin, qmax): symmetric int4 is (-8, 7), asymmetric uint4 (0, 15); lesson 15."""
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2**bits - 1)


def group_params(w: torch.Tensor, bits: int = 4, symmetric: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row scale and zero point for a block of columns ``w`` (rows, g); lesson 15."""
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


def quantize_groupwise(w: torch.Tensor, group_size: int | None = 128, bits: int = 4, symmetric: bool = True,
                       return_codes: bool = False):
    """Round-to-nearest (RTN) per-group quantization of a weight; group_size None = per row; lesson 15.

    Returns the dequantized weight, or (codes, scales, zeros) with ``return_codes``.
    """
    rows, cols = w.shape
    g = cols if group_size is None else group_size
    pad = -cols % g  # a shorter last group: zero padding changes neither max|w| nor [min, max] with 0
    padded = torch.nn.functional.pad(w, (0, pad))
    blocks = padded.reshape(rows * ((cols + pad) // g), g)
    scale, zero = group_params(blocks, bits, symmetric)
    if return_codes:
        codes = quantize_codes(blocks, scale, zero, bits, symmetric).reshape(rows, -1)[:, :cols]
        return codes.to(torch.int8), scale.reshape(rows, -1), zero.reshape(rows, -1)
    return fake_quant(blocks, scale, zero, bits, symmetric).reshape(rows, -1)[:, :cols]


rtn = quantize_groupwise


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Pack int4 codes (-8..7 or 0..15) two per byte, low nibble first; lesson 15."""
    flat = codes.flatten().to(torch.int16) & 0xF
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    return (flat[0::2] | (flat[1::2] << 4)).to(torch.uint8)


def unpack_int4(packed: torch.Tensor, count: int, signed: bool = True) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: the first ``count`` codes as int8; lesson 15."""
    p = packed.to(torch.int16)
    flat = torch.stack([p & 0xF, (p >> 4) & 0xF], dim=1).flatten()[:count]
    if signed:
        flat = torch.where(flat >= 8, flat - 16, flat)
    return flat.to(torch.int8)


def bits_per_weight(group_size: int, bits: int = 4, scale_bits: int = 16, zero_bits: int = 0) -> float:
    """Storage per weight including per-group overhead: 4 + 16/128 = 4.125 for W4 g128; lesson 15."""
    return bits + (scale_bits + zero_bits) / group_size


# --------------------------------------------------------------------------------------- GPTQ

def hessian(x: torch.Tensor) -> torch.Tensor:
    """GPTQ's layer Hessian H = 2 X^T X / n for activations (tokens, in_features); lesson 15."""
    x = x.reshape(-1, x.shape[-1]).to(torch.float64)
    return 2.0 * x.T @ x / x.shape[0]


def gptq(w: torch.Tensor, h: torch.Tensor, group_size: int | None = 128, bits: int = 4,
         symmetric: bool = True, damp: float = 0.01, block_size: int = 128) -> torch.Tensor:
    """GPTQ: column-by-column quantization with error compensation via chol(H^-1); lesson 15.

    Damping adds ``damp * mean(diag H)``; lazy batches of ``block_size`` columns; a group's
    scale is computed from the (already error-updated) weights when the group starts.
    """
    dtype = w.dtype
    W = w.detach().to(torch.float64).clone()
    H = h.detach().to(torch.float64).clone()
    rows, cols = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=H.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    if group_size is None:
        scale, zero = group_params(W, bits, symmetric)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        W1, err1, hinv1 = W[:, i1:i2].clone(), torch.zeros(rows, i2 - i1, dtype=W.dtype), hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            if group_size is not None and (i1 + i) % group_size == 0:
                ahead = torch.cat([W1[:, i:], W[:, i2:]], dim=1)[:, :group_size]
                scale, zero = group_params(ahead, bits, symmetric)
            col = W1[:, i]
            q = fake_quant(col, scale, zero, bits, symmetric)
            Q[:, i1 + i] = q
            e = (col - q) / hinv1[i, i]
            W1[:, i:] -= e[:, None] * hinv1[i, i:][None, :]
            err1[:, i] = e
        W[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return Q.to(dtype)


# ---------------------------------------------------------------------------------------- AWQ

@dataclass
class AWQResult:
    """The chosen α, the per-input-channel scales s and the grid-search errors; lesson 15."""
    alpha: float
    scales: torch.Tensor
    errors: dict[float, float] = field(default_factory=dict)


def layer_error(x: torch.Tensor, w: torch.Tensor, w_hat: torch.Tensor) -> float:
    """Mean squared output error ||X W^T - X W_hat^T||^2 / n of a Linear layer; lesson 15."""
    return float(((x @ (w - w_hat).T) ** 2).mean())


def awq_search(w: torch.Tensor, x: torch.Tensor, group_size: int | None = 128, bits: int = 4,
               symmetric: bool = True, grid: int = 20) -> AWQResult:
    """AWQ: grid-search α in [0, 1] for s = mean|x|^α minimizing the layer output error; lesson 15."""
    x = x.reshape(-1, x.shape[-1]).to(w.dtype)
    x_mean = x.abs().mean(dim=0).clamp_min(1e-8)
    best, errors = None, {}
    for k in range(grid + 1):
        alpha = k / grid
        s = x_mean**alpha
        s = s / torch.sqrt(s.max() * s.min())
        w_hat = quantize_groupwise(w * s, group_size, bits, symmetric) / s
        errors[alpha] = layer_error(x, w, w_hat)
        if best is None or errors[alpha] < errors[best[0]]:
            best = (alpha, s)
    return AWQResult(best[0], best[1], errors)


def awq(w: torch.Tensor, x: torch.Tensor, group_size: int | None = 128, bits: int = 4,
        symmetric: bool = True, grid: int = 20) -> tuple[torch.Tensor, AWQResult]:
    """AWQ weight Q(W·s)/s: the 1/s folded into the input is equivalent to dividing here; lesson 15."""
    result = awq_search(w, x, group_size, bits, symmetric, grid)
    s = result.scales
    return quantize_groupwise(w * s, group_size, bits, symmetric) / s, result


# -------------------------------------------------------------------------------- SmoothQuant

def smoothquant_scales(x_absmax: torch.Tensor, w: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """SmoothQuant s_j = max|X_j|^α / max|W_j|^(1-α) per input channel j; lesson 15."""
    w_absmax = w.abs().amax(dim=0).clamp_min(1e-8)
    return (x_absmax.clamp_min(1e-8) ** alpha / w_absmax ** (1 - alpha)).clamp_min(1e-8)


def smooth(x: torch.Tensor, w: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Migrate difficulty: (X / s, W * s), so (X / s) @ (W * s)^T = X @ W^T; lesson 15."""
    return x / s, w * s


def fake_quant_per_tensor(t: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Naive symmetric per-tensor fake quantization (int8 by default); lesson 15."""
    qmax = 2 ** (bits - 1) - 1
    scale = t.abs().max().clamp_min(EPS) / qmax
    return torch.clamp(torch.round(t / scale), -qmax - 1, qmax) * scale


def w8a8_linear(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None,
                s: torch.Tensor | None = None) -> torch.Tensor:
    """A Linear layer with per-tensor int8 weights and activations, optionally smoothed by s; lesson 15."""
    if s is not None:
        x, w = smooth(x, w, s)
    y = fake_quant_per_tensor(x) @ fake_quant_per_tensor(w).T
    return y if bias is None else y + bias
