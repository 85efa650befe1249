"""Exercise checks of lesson 01 (number formats)."""

from __future__ import annotations

import numpy as np

from helpers import checks, formats

DECODE_VALUES = (0.1, -2.5, 1.0, 300.0, 1e-7, -1e-7, 0.0031, -0.0031)


def check_decode_float(student) -> None:
    """decode_float against the value PyTorch stores, normal numbers and subnormals."""
    cases = [(x, fmt) for x in DECODE_VALUES for fmt in formats.FLOAT_FORMATS]
    for x, fmt in cases:
        f = formats.float_fields(x, fmt)
        got = checks.attempt(student, f.sign, f.exponent, f.mantissa, f.exponent_bits,
                             f.mantissa_bits)
        if got != f.value:
            kind = "a subnormal (exponent field 0)" if f.exponent == 0 else "a normal number"
            checks.fail(f"decode_float for {x} stored in {fmt}, {f.bit_string}", f.value, got,
                        f"this is {kind}; the bias is 2**(exponent_bits - 1) - 1, only normal "
                        "numbers have the hidden leading 1, and subnormals keep the smallest "
                        "normal exponent (1 - bias)")
    subnormals = sum(formats.float_fields(x, fmt).exponent == 0 for x, fmt in cases)
    checks.passed(f"decode_float reproduces what PyTorch stores for {len(cases)} numbers in "
                  f"five float formats, {subnormals} of them subnormal or zero.")


def check_ulp(student) -> None:
    """ulp against np.spacing (fp32, fp16) and the bf16 reference, across powers of two."""
    x = np.array([1.0, 0.1, 3.0, 1000.0, -0.37, 2.0**-10, 65000.0, 1.999, 0.75])
    cases = {"fp32 (23 bits)": (23, np.spacing(x.astype(np.float32)).astype(np.float64)),
             "fp16 (10 bits)": (10, np.spacing(x.astype(np.float16)).astype(np.float64)),
             "bf16 (7 bits)": (7, formats.spacing(x, "bf16"))}
    for name, (bits, expected) in cases.items():
        got = np.abs(np.asarray(checks.attempt(student, x, bits), dtype=np.float64))
        if got.shape != expected.shape or not np.allclose(got, np.abs(expected), rtol=1e-12):
            checks.fail(f"ulp for {name} at x = {x.tolist()}", np.abs(expected), got,
                        "the gap is a power of two that depends only on which binade |x| is in "
                        "(it doubles at every power of two, and is the same for 1.0 and 1.999); "
                        "work element-wise on arrays")
    checks.passed("ulp matches np.spacing for fp32 and fp16 and the bf16 reference.")


def check_intensity(student) -> None:
    """intensity against formats.arithmetic_intensity on layers from GEMV to conv-as-GEMM."""
    cases = [(1, 4096, 4096, 4), (1, 4096, 4096, 0.5), (64, 384, 1536, 1), (3136, 576, 64, 4),
             (256, 1024, 10, 2)]
    for args in cases:
        expected = formats.arithmetic_intensity(*args)
        got = checks.attempt(student, *args)
        if not isinstance(got, (int, float, np.floating)) or not np.isclose(got, expected,
                                                                             rtol=1e-9):
            checks.fail(f"intensity{args}", expected, got,
                        "one multiply-add is two FLOPs; the bytes moved are the weight "
                        "(n·k values at weight_bytes each) plus the input and the output "
                        "activations (at act_bytes each)")
    checks.passed("intensity is right, from batch-1 GEMV to conv-as-GEMM, int4 weights included.")
