"""Checks for the exercises of lesson 15 (transformers and LLMs).

Every check runs on small synthetic tensors chosen so that the usual mistakes show: all sixteen
int4 codes and an odd count for unpacking; a Hessian with a non-unit diagonal and strongly
correlated inputs for the GPTQ step (and the whole GPTQ loop built from it); outlier channels
for AWQ, where scaling without the inverse picks s = 1; non-square weights and α away from 0.5
for SmoothQuant; an all-zero block, a saturating block and negative values for MXFP4; real
Q4_1 blocks written by the gguf library for the GGUF exercise.
"""

from __future__ import annotations

import numpy as np
import torch

from helpers import awq, checks, gptq, llm_formats, llm_quant, smoothquant


def _tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        checks.fail(f"{name} must return a tensor", "a torch.Tensor", type(value).__name__,
                    "build the result with torch operations and return it")
    return value


def _close_or_fail(what: str, got, expected, atol: float, rtol: float, hint: str) -> None:
    """Fail like checks.check_close, but print nothing on success (one line per check in all)."""
    result = checks.compare(got, expected, atol=atol, rtol=rtol)
    if not result["shape_ok"]:
        checks.fail(f"{what}: the shape is wrong", f"shape {tuple(np.shape(expected))}",
                    f"shape {tuple(np.shape(got))}", hint)
    if not result["approx"]:
        checks.fail(f"{what}: values differ (max difference {result['max_diff']:.3g})", expected, got, hint)


# ------------------------------------------------------------------------ Exercise 1: unpacking

def check_unpack_int4(unpack_int4) -> None:
    """Exercise 1: two signed int4 codes per byte, low nibble first, back to int8 codes."""
    hint = ("byte k holds code 2k in its low 4 bits and code 2k + 1 in its high 4 bits; a 4-bit "
            "pattern of 8 or more is a negative number in two's complement (subtract 16)")
    known = torch.tensor([0xE1, 0x7F, 0x08], dtype=torch.uint8)  # codes 1, -2, -1, 7, -8, 0
    got = _tensor(checks.attempt(unpack_int4, known, 6), "unpack_int4")
    if got.shape != (6,) or not torch.equal(got.to(torch.int64), torch.tensor([1, -2, -1, 7, -8, 0])):
        checks.fail("unpack_int4 on the bytes E1 7F 08", [1, -2, -1, 7, -8, 0], got, hint)
    codes = torch.tensor(list(range(-8, 8)) * 2 + [5], dtype=torch.int8)  # 33 codes: odd count
    got = _tensor(checks.attempt(unpack_int4, llm_quant.pack_int4(codes), codes.numel()), "unpack_int4")
    if got.shape != codes.shape:
        checks.fail("unpack_int4 returns the wrong number of codes", f"shape {tuple(codes.shape)}",
                    f"shape {tuple(got.shape)}",
                    "return exactly `count` codes: an odd count leaves the last high nibble unused")
    checks.check_equal("unpack_int4 of all sixteen codes, odd count", got.to(torch.int64),
                       codes.to(torch.int64), hint=hint)


# ---------------------------------------------------------------------- Exercise 2: GPTQ step

def _gptq_case():
    g = torch.Generator().manual_seed(15)
    base = torch.randn(96, 3, generator=g, dtype=torch.float64)
    x = base @ torch.randn(3, 6, generator=g, dtype=torch.float64) + 0.2 * torch.randn(
        96, 6, generator=g, dtype=torch.float64)
    x[:, 0] *= 4  # a non-unit, uneven Hessian diagonal
    w = torch.randn(5, 6, generator=g, dtype=torch.float64)
    hinv, _ = gptq.inverse_hessian_factor(gptq.hessian(x), damp=0.01)
    return x, w, hinv


def check_gptq_column_update(gptq_column_update) -> None:
    """Exercise 2: one GPTQ step, then the whole per-column loop built from it."""
    _, w, hinv = _gptq_case()
    i = 2
    q = torch.round(w[:, i] * 2) / 2
    expected = gptq.column_update(w, hinv, i, q)
    got = _tensor(checks.attempt(gptq_column_update, w.clone(), hinv, i, q), "gptq_column_update")
    hint = ("the error of column i is (w_i - q) divided by Hinv[i, i]; subtract error x Hinv[i, i:] "
            "from columns i onwards, so column i lands exactly on q and later columns compensate")
    if got.shape != w.shape:
        checks.fail("gptq_column_update returns the wrong shape", f"shape {tuple(w.shape)}",
                    f"shape {tuple(got.shape)}", "return the whole updated weight matrix")
    _close_or_fail("columns before i are left alone", got[:, :i], w[:, :i], atol=1e-12, rtol=0,
                   hint="GPTQ never revisits columns it has already quantized")
    _close_or_fail("column i becomes the quantized column q", got[:, i], q, atol=1e-9, rtol=0, hint=hint)
    _close_or_fail("the later columns absorb the error", got, expected, atol=1e-9, rtol=1e-9, hint=hint)
    # The whole loop, column after column, must be GPTQ itself (per-row grid, no groups).
    scale, zero = llm_quant.group_params(w)
    loop = w.clone()
    for j in range(w.shape[1]):
        loop = checks.attempt(gptq_column_update, loop, hinv, j,
                              llm_quant.fake_quant(loop[:, j], scale, zero))
    reference = gptq.gptq(w, gptq.hessian(_gptq_case()[0]), group_size=None)
    checks.check_close("your step, applied to every column in turn, is GPTQ", loop, reference,
                       atol=1e-9, rtol=1e-9, hint=hint)


# ------------------------------------------------------------------------- Exercise 3: AWQ

def _awq_case():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(256, 64, generator=g)
    x[:, [3, 17, 40, 41]] *= 25  # salient input channels, as in a real LLM layer
    w = torch.randn(24, 64, generator=g) * 0.05
    return w, x


def check_awq_search_scales(awq_search_scales) -> None:
    """Exercise 3: AWQ's grid search over α for s = mean|x|^α on one layer."""
    w, x = _awq_case()

    def quantize(weight):
        return llm_quant.quantize_groupwise(weight, 32, 4, True)

    reference = awq.awq_search(w, x, group_size=32, grid=20)
    assert reference.alpha > 0, "the check's data must make AWQ scale (lesson15 check data)"
    got = _tensor(checks.attempt(awq_search_scales, w, x, quantize, 20), "awq_search_scales")
    if got.shape != (w.shape[1],):
        checks.fail("awq_search_scales returns one scale per input channel", f"shape ({w.shape[1]},)",
                    f"shape {tuple(got.shape)}", "s has one entry per column of W (input channel)")
    hint = ("for each α, s = (mean |x| per input channel)^α; quantize W·s and divide the result by s "
            "(the 1/s goes into the input), then score the layer *output* error X W^T vs X W_hat^T; "
            "keep the s with the smallest error")
    _close_or_fail("your scales (up to a constant factor)", got / got.mean(),
                   reference.scales / reference.scales.mean(), atol=1e-4, rtol=1e-4, hint=hint)
    err = llm_quant.layer_error(x, w, awq.scaled_quantize(w, got, 32))
    rtn = llm_quant.layer_error(x, w, quantize(w))
    checks.check_true(err < rtn, "AWQ's output error is below round-to-nearest's", hint=hint,
                      got=f"{err:.4g} vs RTN {rtn:.4g}", expected="smaller than RTN")


# ------------------------------------------------------------------ Exercise 4: SmoothQuant

def check_smoothing_scales(smoothing_scales) -> None:
    """Exercise 4: SmoothQuant's s_j = max|X_j|^α / max|W_j|^(1-α)."""
    g = torch.Generator().manual_seed(4)
    x_absmax = torch.rand(48, generator=g) * 2 + 0.5
    x_absmax[[5, 30]] = torch.tensor([60.0, 35.0])  # outlier channels
    w = torch.randn(20, 48, generator=g) * 0.1      # not square: the axis matters
    hint = ("one scale per input channel j: the activation's max |x| in channel j to the power α, "
            "divided by the weight's max |w| over column j (all output rows) to the power 1 - α")
    for alpha in (0.25, 0.5, 0.8):
        got = _tensor(checks.attempt(smoothing_scales, x_absmax, w, alpha), "smoothing_scales")
        _close_or_fail(f"scales at alpha={alpha}", got, smoothquant.smoothquant_scales(x_absmax, w, alpha),
                       atol=1e-6, rtol=1e-5, hint=hint)
    checks.passed("smoothing_scales matches SmoothQuant's formula at alpha 0.25, 0.5 and 0.8.")


# ------------------------------------------------------------------------ Exercise 5: MXFP4

def _mxfp4_blocks() -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    blocks = torch.randn(6, 32, generator=g) * torch.tensor([[3.0], [0.01], [1.0], [200.0], [1.0], [1.0]])
    blocks[2] = 0.0                                         # all zeros: no NaN, no division by zero
    blocks[4, :3] = torch.tensor([7.3, -6.9, 6.2])          # amax/scale near 7.3: saturates at 6
    blocks[5] = -blocks[5].abs()                            # signs
    return blocks


def check_mxfp4_block(mxfp4_block) -> None:
    """Exercise 5: MXFP4 quantize-dequantize of one block of 32 values."""
    hint = ("the shared scale is 2^(floor(log2(max|x|)) - 2), a power of two (E8M0); divide by it, round "
            "each value to the nearest of ±{0, 0.5, 1, 1.5, 2, 3, 4, 6} (clamp at 6), multiply back")
    for k, block in enumerate(_mxfp4_blocks()):
        got = _tensor(checks.attempt(mxfp4_block, block.clone()), "mxfp4_block")
        kind = "all zeros" if not block.any() else f"max |x| {float(block.abs().max()):.3g}"
        _close_or_fail(f"block {k} ({kind})", got, llm_formats.mxfp4(block), atol=1e-7, rtol=1e-6, hint=hint)
    checks.passed("mxfp4_block matches the MXFP4 reference on six blocks "
                  "(zeros, saturation and signs included).")


# ------------------------------------------------------------------- Exercise 6: one Q4_1 block

def _q4_1_blocks() -> list[tuple[bytes, np.ndarray]]:
    from gguf import GGMLQuantizationType, quants

    rng = np.random.default_rng(6)
    data = (rng.standard_normal((4, 32)) * [[0.02], [1.0], [5.0], [0.3]]).astype(np.float32)
    data[3] += 1.0  # a block that is all positive: the minimum matters
    raw = quants.quantize(data, GGMLQuantizationType.Q4_1)
    ref = quants.dequantize(raw, GGMLQuantizationType.Q4_1)
    return [(raw[k].tobytes(), ref[k]) for k in range(len(data))]


def check_dequantize_q4_1(dequantize_q4_1) -> None:
    """Exercise 6: 32 weights from the 20 raw bytes of one GGUF Q4_1 block."""
    hint = ("bytes 0-1 are the fp16 scale d, bytes 2-3 the fp16 minimum m, then 16 bytes of codes: "
            "weights 0-15 are the low nibbles in order, weights 16-31 the high nibbles; w = d * q + m")
    for k, (raw, expected) in enumerate(_q4_1_blocks()):
        got = checks.attempt(dequantize_q4_1, raw)
        got = np.asarray(got.detach() if isinstance(got, torch.Tensor) else got, dtype=np.float64)
        _close_or_fail(f"block {k}", got, expected, atol=1e-6, rtol=1e-6, hint=hint)
    checks.passed("dequantize_q4_1 matches the gguf library on four Q4_1 blocks.")
