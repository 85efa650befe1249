"""Tests for helpers.formats (lesson 01): bit fields, rounding, spacing, memory, intensity."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import formats, quant


@pytest.mark.parametrize("fmt, bits", [("fp32", 32), ("fp16", 16), ("bf16", 16),
                                       ("fp8_e4m3", 8), ("fp8_e5m2", 8), ("int8", 8),
                                       ("uint8", 8), ("int4", 4)])
def test_bits_of(fmt: str, bits: int) -> None:
    assert formats.bits_of(fmt) == bits


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown format 'fp12'"):
        formats.bits_of("fp12")


def test_float_fields_of_a_tenth_in_fp32() -> None:
    f = formats.float_fields(0.1, "fp32")
    assert (f.sign, f.exponent, f.mantissa) == (0, 123, 5033165)
    assert f.value == float(np.float32(0.1))
    assert f.bit_string == "0 | 01111011 | 10011001100110011001101"
    assert f.bias == 127


def test_float_fields_of_a_negative_bf16_and_an_fp16_subnormal() -> None:
    f = formats.float_fields(-2.5, "bf16")
    assert (f.sign, f.exponent, f.mantissa, f.value) == (1, 128, 32, -2.5)
    sub = formats.float_fields(1e-7, "fp16")
    assert (sub.exponent, sub.mantissa) == (0, 2)
    assert sub.value == 2 * 2.0**-24
    assert "subnormal" in str(sub)


@pytest.mark.parametrize("fmt", list(formats.FLOAT_FORMATS))
@pytest.mark.parametrize("x", [0.1, -2.5, 1.0, 300.0, 1e-7, 0.0031, 0.0])
def test_decode_inverts_float_fields(fmt: str, x: float) -> None:
    f = formats.float_fields(x, fmt)
    assert formats.decode(f.sign, f.exponent, f.mantissa, f.exponent_bits, f.mantissa_bits) == f.value


def test_decode_refuses_fields_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        formats.decode(0, 32, 0, exponent_bits=5, mantissa_bits=10)
    with pytest.raises(ValueError, match="at least 1 exponent bit"):
        formats.decode(0, 0, 0, exponent_bits=0, mantissa_bits=3)


def test_float_fields_bad_input() -> None:
    with pytest.raises(ValueError, match="finite"):
        formats.float_fields(float("nan"), "fp16")
    with pytest.raises(ValueError, match="integer format"):
        formats.float_fields(1.0, "int8")


def test_round_to_overflow_saturation_and_precision() -> None:
    assert np.isinf(formats.round_to([70000.0], "fp16")[0])
    assert formats.round_to([1000.0], "fp8_e4m3")[0] == 448.0  # PyTorch saturates E4M3
    assert formats.round_to([1 + 2.0**-8], "bf16")[0] == 1.0  # below half a bf16 step
    assert formats.round_to([1 + 2.0**-8], "fp16")[0] == 1 + 2.0**-8
    assert formats.round_to(np.array([0.1]), "fp32").dtype == np.float32


def test_spacing_matches_numpy_for_fp32_and_fp16() -> None:
    x = np.array([1.0, 0.1, 3.0, 1000.0, -0.37, 2.0**-10])
    # np.spacing points away from zero (negative for negative x); ours is a distance
    np.testing.assert_array_equal(formats.spacing(x, "fp32"), np.abs(np.spacing(x.astype(np.float32))))
    np.testing.assert_array_equal(formats.spacing(x, "fp16"), np.abs(np.spacing(x.astype(np.float16))))


def test_spacing_subnormal_floor_overflow_and_fp8() -> None:
    assert formats.spacing([0.0, 1e-9], "fp16").tolist() == [2.0**-24, 2.0**-24]
    assert np.isnan(formats.spacing([70000.0], "fp16")[0])
    assert formats.spacing([1.0, 300.0], "fp8_e4m3").tolist() == [0.125, 32.0]
    assert formats.spacing([1.0], "fp8_e5m2").tolist() == [0.25]


def test_spacing_of_integers_is_the_scale() -> None:
    gaps = formats.spacing([0.001, 0.5, 1.0, 2.0], "int8", x_max=1.0)
    scale, _ = quant.qparams(-1.0, 1.0, 8, symmetric=True)
    assert gaps[:3].tolist() == [scale] * 3 and np.isnan(gaps[3])
    with pytest.raises(ValueError, match="pass x_max"):
        formats.spacing([1.0], "int4")


def test_format_table() -> None:
    rows = {r["format"]: r for r in formats.format_table()}
    assert rows["fp16"]["max"] == 65504.0
    assert rows["fp8_e4m3"]["max"] == 448.0 and rows["fp8_e5m2"]["max"] == 57344.0
    assert rows["bf16"]["smallest_normal"] == rows["fp32"]["smallest_normal"]
    assert rows["fp16"]["smallest_subnormal"] == 2.0**-24
    assert rows["fp8_e4m3"]["eps"] == 0.125
    assert (rows["int4"]["min"], rows["int4"]["max"], rows["int4"]["levels"]) == (-8, 7, 16)
    assert rows["uint8"]["levels"] == 256


def test_memory() -> None:
    assert formats.memory_bytes(11_689_512, "fp32") == 46_758_048
    assert formats.memory_bytes(3, "int4") == 2
    table = formats.memory_table(1000)
    assert table == {"fp32": 4000, "fp16": 2000, "bf16": 2000, "fp8_e4m3": 1000, "int8": 1000,
                     "int4": 500}
    with pytest.raises(ValueError, match="non-negative integer"):
        formats.memory_bytes(-1, "int8")
    with pytest.raises(ValueError, match="non-negative integer"):
        formats.memory_bytes(2.5, "int8")


def test_arithmetic_intensity() -> None:
    # batch 1, 4096 x 4096 fp32: 2·k·n FLOPs over (k·n + k + n)·4 bytes
    expected = 2 * 4096 * 4096 / ((4096 * 4096 + 4096 + 4096) * 4)
    assert formats.arithmetic_intensity(1, 4096, 4096, 4) == pytest.approx(expected, rel=1e-12)
    assert formats.arithmetic_intensity(1, 4096, 4096, 0.5) > 7 * expected
    with pytest.raises(ValueError, match="must be >= 1"):
        formats.arithmetic_intensity(0, 10, 10, 4)
    with pytest.raises(ValueError, match="byte sizes positive"):
        formats.arithmetic_intensity(1, 10, 10, 0)
