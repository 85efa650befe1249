"""Per-tensor, per-channel and per-group quantization of weights, and what the scales cost; lesson 03.

One scale for a whole tensor is cheap but lets the channel with the widest range set the step
for every channel. One scale per output channel (per-channel) or per run of ``group_size``
consecutive input weights (per-group) follows the data more closely, at the price of storing
more scales. Everything reuses :mod:`helpers.quant`, so each scale is bit-identical to PyTorch's.
"""

from __future__ import annotations

import numpy as np

from helpers import quant

SCHEMES = ("per_tensor", "per_channel", "per_group")


def _as_matrix(w) -> np.ndarray:
    """Weights as (C_out, K): one row per output channel (conv kernels flattened)."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim < 2:
        raise ValueError(f"expected weights with an output-channel axis first, shape (C_out, ...), "
                         f"got shape {w.shape}")
    w = quant._check_values(w)
    return w.reshape(w.shape[0], -1)


def per_channel_qparams(w, bits: int = 8, symmetric: bool = True,
                        restricted: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One (scale, zero_point) per output channel (axis 0), as PyTorch's per-channel observer; lesson 03.

    ``restricted`` uses the signed range without its most negative value ([-127, 127] at 8 bits),
    as TFLite's int8 weights do. An all-zero channel gets the smallest scale, float32 eps.
    """
    m = _as_matrix(w)
    pairs = [quant.qparams(lo, hi, bits, symmetric, restricted=restricted)
             for lo, hi in zip(m.min(1), m.max(1), strict=True)]
    scales = np.array([p[0] for p in pairs], dtype=np.float32)
    zero_points = np.array([p[1] for p in pairs], dtype=np.int64)
    return scales, zero_points


def _groups(m: np.ndarray, group_size: int) -> np.ndarray:
    """(C, K) to (C, G, group_size), the last group padded by repeating its own last value."""
    if not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    c, k = m.shape
    n_groups = -(-k // group_size)
    pad = n_groups * group_size - k
    # Padding with an existing value never widens a group's range.
    padded = np.concatenate([m, np.repeat(m[:, -1:], pad, axis=1)], axis=1) if pad else m
    return padded.reshape(c, n_groups, group_size)


def per_group_qparams(w, group_size: int, bits: int = 4,
                      symmetric: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(scale, zero_point) per group of ``group_size`` consecutive inputs of each row; lesson 03."""
    g = _groups(_as_matrix(w), group_size)
    lo, hi = g.min(2), g.max(2)
    pairs = [quant.qparams(a, b, bits, symmetric) for a, b in zip(lo.ravel(), hi.ravel(), strict=True)]
    scales = np.array([p[0] for p in pairs], dtype=np.float32).reshape(lo.shape)
    zero_points = np.array([p[1] for p in pairs], dtype=np.int64).reshape(lo.shape)
    return scales, zero_points


def fake_quantize(w, scheme: str, bits: int = 8, symmetric: bool = True,
                  group_size: int | None = None) -> np.ndarray:
    """Quantize and dequantize weights with one of :data:`SCHEMES`; same shape out; lesson 03."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {SCHEMES}")
    m = _as_matrix(w)
    qmin, qmax = quant.integer_range(bits, signed=symmetric)
    if scheme == "per_tensor":
        scale, zp = quant.qparams(m.min(), m.max(), bits, symmetric)
        out = quant.dequantize(quant.quantize(m, scale, zp, qmin, qmax), scale, zp)
    elif scheme == "per_channel":
        scales, zps = per_channel_qparams(m, bits, symmetric)
        s, z = scales[:, None], zps[:, None]
        out = quant.dequantize(quant.quantize(m, s, z, qmin, qmax), s, z)
    else:
        if group_size is None:
            raise ValueError("per_group needs a group_size (e.g. 32, 64 or 128)")
        g = _groups(m, group_size)
        scales, zps = per_group_qparams(m, group_size, bits, symmetric)
        s, z = scales[:, :, None], zps[:, :, None]
        out = quant.dequantize(quant.quantize(g, s, z, qmin, qmax), s, z)
        out = out.reshape(m.shape[0], -1)[:, : m.shape[1]]
    return out.reshape(np.shape(w)).astype(np.float32)


def n_scales(shape: tuple[int, ...], scheme: str, group_size: int | None = None) -> int:
    """How many (scale, zero_point) pairs a weight tensor of this shape needs; lesson 03."""
    if len(shape) < 2 or min(shape) < 1:
        raise ValueError(f"expected a weight shape (C_out, ...) with no empty axis, got {shape}")
    c, k = shape[0], int(np.prod(shape[1:]))
    if scheme == "per_tensor":
        return 1
    if scheme == "per_channel":
        return c
    if scheme == "per_group":
        if not group_size or group_size < 1:
            raise ValueError("per_group needs a positive group_size")
        return c * -(-k // group_size)
    raise ValueError(f"unknown scheme {scheme!r}; choose one of {SCHEMES}")


def overhead_bits_per_weight(shape: tuple[int, ...], scheme: str, group_size: int | None = None,
                             scale_bits: int = 32, zero_point_bits: int = 0) -> float:
    """Extra bits each weight carries for its share of scales (and zero points); lesson 03."""
    if scale_bits < 1 or zero_point_bits < 0:
        raise ValueError("scale_bits must be >= 1 and zero_point_bits >= 0")
    total = n_scales(shape, scheme, group_size) * (scale_bits + zero_point_bits)
    return total / int(np.prod(shape))


def compare_schemes(w, bits: int = 8, group_sizes: tuple[int, ...] = (32, 64, 128),
                    symmetric: bool = True, scale_bits: int = 32) -> list[dict]:
    """MSE, SQNR and scale overhead of per-tensor, per-channel and each per-group size; lesson 03."""
    w = np.asarray(w, dtype=np.float32)
    configs = [("per_tensor", None), ("per_channel", None)] + [("per_group", g) for g in group_sizes]
    rows = []
    for scheme, g in configs:
        w_hat = fake_quantize(w, scheme, bits, symmetric, g)
        name = scheme if g is None else f"per_group_{g}"
        rows.append({
            "scheme": name, "bits": bits, "mse": quant.mse(w, w_hat),
            "sqnr_db": quant.sqnr_db(w, w_hat), "n_scales": n_scales(w.shape, scheme, g),
            "overhead_bits_per_weight": overhead_bits_per_weight(w.shape, scheme, g, scale_bits),
        })
    return rows


def _folded_copy(model, fuse: list[list[str]] | None):
    """An eval-mode copy of a PyTorch model with the named groups fused (BN folded)."""
    import copy

    import torch.ao.quantization as tq

    working = copy.deepcopy(model).eval()
    return tq.fuse_modules(working, [list(group) for group in fuse]) if fuse else working


def inference_copy(model, fuse: list[list[str]] | None = None):
    """An eval-mode copy with BN folded (``fuse`` groups) in channels-last memory; lesson 03.

    The same function as ``model`` up to float rounding, computed faster by CPU convolution
    kernels, for evaluating many quantized variants on the 10,000 test images. Submodules
    keep their names, so forward hooks attach as on the original.
    """
    import torch

    return _folded_copy(model, fuse).to(memory_format=torch.channels_last)


def weight_quantized_copy(model, scheme: str, bits: int = 8, fuse: list[list[str]] | None = None):
    """A copy of a PyTorch model with BN folded and every conv/linear weight fake-quantized
    per tensor or per channel (activations stay float); lesson 03."""
    import torch

    if scheme not in ("per_tensor", "per_channel"):
        raise ValueError(f"scheme must be 'per_tensor' or 'per_channel', got {scheme!r}")
    working = _folded_copy(model, fuse)
    with torch.no_grad():
        for module in working.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                w = module.weight.detach().numpy()
                w_hat = fake_quantize(w, scheme, bits=bits, symmetric=True)
                module.weight.copy_(torch.from_numpy(np.asarray(w_hat, dtype=np.float32)))
    return working


def channel_range_spread(model, fuse: list[list[str]] | None = None) -> dict[str, float]:
    """Per conv layer (BN folded): widest channel range / narrowest non-zero one; lesson 03."""
    import torch

    spread = {}
    for name, module in _folded_copy(model, fuse).named_modules():
        if isinstance(module, torch.nn.Conv2d):
            ranges = module.weight.detach().abs().flatten(1).amax(1)
            ranges = ranges[ranges > 0]
            spread[name] = float(ranges.max() / ranges.min())
    return spread
