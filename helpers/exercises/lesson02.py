"""Exercise checks of lesson 02 (affine quantization), matched against PyTorch bit for bit."""

from __future__ import annotations

import numpy as np
import torch
from torch.ao.quantization.observer import MinMaxObserver

from helpers import checks, quant


def _observer_qparams(t: np.ndarray, bits: int, symmetric: bool) -> tuple[float, int]:
    qmin, qmax = quant.integer_range(bits, signed=symmetric)
    observer = MinMaxObserver(dtype=torch.qint8 if symmetric else torch.quint8,
                              qscheme=torch.per_tensor_symmetric if symmetric
                              else torch.per_tensor_affine, quant_min=qmin, quant_max=qmax)
    observer(torch.tensor(t, dtype=torch.float32))
    scale, zero_point = (v.item() for v in observer.calculate_qparams())
    return scale, zero_point


def check_qparams(student) -> None:
    """qparams against PyTorch's MinMaxObserver: five tensors, 8 and 4 bits, both schemes."""
    rng = np.random.default_rng(0)
    skewed = np.concatenate([[-0.6, 1.0], rng.uniform(-0.6, 1.0, 498)])  # zero point at a .6 fraction
    tensors = {"normal": rng.normal(0.1, 1, 500), "post-ReLU": np.maximum(rng.normal(0, 1, 500), 0),
               "all negative": -rng.uniform(0.5, 3, 500), "all zero": np.zeros(500), "skewed": skewed}
    n_cases, exact = 4 * len(tensors), 0
    for (name, t), bits, symmetric in [(c, b, s) for c in tensors.items() for b in (8, 4)
                                        for s in (False, True)]:
        scale, zero_point = _observer_qparams(t, bits, symmetric)
        got = checks.attempt(student, float(t.min()), float(t.max()), bits, symmetric)
        what = f"qparams for a {name} tensor, {bits} bits, symmetric={symmetric}"
        if not isinstance(got, tuple) or len(got) != 2:
            checks.fail(what, "(scale, zero_point)", got, "return a tuple of two numbers")
        if got[1] != zero_point or not np.isclose(got[0], scale, rtol=1e-6, atol=0):
            checks.fail(what + " vs MinMaxObserver", (scale, zero_point), got,
                        "the range must contain 0; asymmetric uses the unsigned integers and "
                        "rounds the zero point to the nearest integer; symmetric fixes the zero "
                        "point at 0 and spreads max(-lo, hi) over half of the qmax - qmin "
                        "steps (not qmax of them); the scale is never below quant.EPS")
        exact += float(np.float32(got[0])) == scale
    note = ("bit for bit" if exact == n_cases else
            f"{exact}/{n_cases} bit for bit, the rest within float32 rounding (use np.float32 to match)")
    checks.passed(f"qparams agrees with PyTorch's MinMaxObserver on {n_cases} cases, {note}.")


def check_quantize(student) -> None:
    """quantize against torch.quantize_per_tensor, exact ties and clamped values included."""
    rng = np.random.default_rng(1)
    ties = np.arange(-6, 7, dtype=np.float32) * 0.125 + 0.0625  # exactly between levels
    cases = [(rng.normal(0, 1, 1000).astype(np.float32), 0.02, 128, torch.quint8),
             (ties, 0.125, 0, torch.qint8), (ties, 0.125, 3, torch.quint8),
             (rng.uniform(-5, 5, 200).astype(np.float32), 0.01, -10, torch.qint8)]
    for x, scale, zero_point, dtype in cases:
        qmin, qmax = (0, 255) if dtype == torch.quint8 else (-128, 127)
        expected = torch.quantize_per_tensor(torch.from_numpy(x), scale, zero_point,
                                             dtype).int_repr().numpy()
        got = np.asarray(checks.attempt(student, x, scale, zero_point, qmin, qmax))
        if got.shape != expected.shape or not np.array_equal(got, expected):
            checks.fail(f"quantize vs torch.quantize_per_tensor ({dtype}, scale {scale}, "
                        f"zero_point {zero_point})", expected, got,
                        "round half to even (NumPy's round does; adding 0.5 and flooring does "
                        "not), add the integer zero point only after rounding, then clamp to "
                        "[qmin, qmax]")
    checks.passed("quantize matches torch.quantize_per_tensor bit for bit, ties and clamping included.")


def check_dequantize(student) -> None:
    """dequantize of uint8 and int8 codes (as int_repr gives them) against PyTorch's dequantize()."""
    x = torch.from_numpy(np.random.default_rng(2).normal(0, 1, 1000).astype(np.float32))
    for scale, zero_point, dtype in [(0.02, 128, torch.quint8), (0.013, 0, torch.qint8),
                                     (0.011, 120, torch.quint8)]:
        qx = torch.quantize_per_tensor(x, scale, zero_point, dtype)
        got = checks.attempt(student, qx.int_repr().numpy(), scale, zero_point)
        expected = qx.dequantize().numpy()
        if np.asarray(got).shape != expected.shape or not np.array_equal(got, expected):
            checks.fail(f"dequantize of {dtype} codes (a {qx.int_repr().numpy().dtype} array) vs "
                        "torch's dequantize()", expected, got,
                        "codes arrive as 8-bit integers: in their own dtype, q - zero_point "
                        "wraps around below 0, so widen them first; subtract the zero point, "
                        "then multiply by the scale, in float32")
    checks.passed("dequantize matches PyTorch's dequantize() bit for bit.")
