"""Tests for helpers.quant (lessons 02-04): reference implementations against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.ao.quantization.observer import MinMaxObserver

from helpers import quant

# torch.quantize_per_tensor's deprecation warning is explained in lesson 02; here it is noise.
pytestmark = pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions")

RNG = np.random.default_rng(0)
TENSORS = {
    "normal": RNG.normal(0.1, 1.0, 2000).astype(np.float32),
    "post-relu": np.maximum(RNG.normal(0, 1, 2000), 0).astype(np.float32),
    "negative": -RNG.uniform(0.5, 3, 2000).astype(np.float32),
    "outlier": np.append(RNG.normal(0, 0.05, 1999), 4.0).astype(np.float32),
    "zeros": np.zeros(100, dtype=np.float32),
}


def observer_qparams(x: np.ndarray, bits: int, symmetric: bool) -> tuple[float, int]:
    qmin, qmax = quant.integer_range(bits, signed=symmetric)
    observer = MinMaxObserver(
        dtype=torch.qint8 if symmetric else torch.quint8,
        qscheme=torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine,
        quant_min=qmin, quant_max=qmax)
    observer(torch.from_numpy(x))
    scale, zero_point = observer.calculate_qparams()
    return scale.item(), int(zero_point.item())


def test_integer_range() -> None:
    assert quant.integer_range(8) == (-128, 127)
    assert quant.integer_range(8, signed=False) == (0, 255)
    assert quant.integer_range(8, restricted=True) == (-127, 127)
    assert quant.integer_range(4) == (-8, 7)
    assert quant.integer_range(16, signed=False) == (0, 65535)


@pytest.mark.parametrize("bits", [1, 17, 0, -8])
def test_bits_outside_2_to_16_are_refused(bits: int) -> None:
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 16"):
        quant.integer_range(bits)
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 16"):
        quant.qparams(-1.0, 1.0, bits)


def test_bits_must_be_an_integer_and_restricted_needs_signed() -> None:
    with pytest.raises(ValueError, match="bits must be an integer"):
        quant.integer_range(8.0)
    with pytest.raises(ValueError, match="signed integers only"):
        quant.integer_range(8, signed=False, restricted=True)


@pytest.mark.parametrize("name", list(TENSORS))
@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
def test_qparams_bit_for_bit_with_minmax_observer(name: str, bits: int, symmetric: bool) -> None:
    x = TENSORS[name]
    ours = quant.qparams(float(x.min()), float(x.max()), bits, symmetric)
    assert ours == observer_qparams(x, bits, symmetric)


def test_qparams_known_values() -> None:
    scale, zero_point = quant.qparams(-1.0, 2.0, 8)
    assert scale == float(np.float32(3.0) / np.float32(255)) and zero_point == 85
    assert quant.qparams(0.0, 0.0, 8) == (quant.EPS, 0)  # scale never 0
    assert quant.qparams(1.0, 3.0, 8)[1] == 0  # range widened to include 0
    assert quant.qparams(-2.0, 1.0, 8, symmetric=True) == (float(np.float32(2.0) / np.float32(127.5)), 0)


def test_qparams_bad_ranges() -> None:
    with pytest.raises(ValueError, match=r"x_min \(1.0\) is greater than x_max \(-1.0\)"):
        quant.qparams(1.0, -1.0)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="the range must be finite"):
            quant.qparams(bad, 1.0)


@pytest.mark.parametrize("name", list(TENSORS))
@pytest.mark.parametrize("symmetric", [False, True])
def test_quantize_dequantize_bit_for_bit_with_torch(name: str, symmetric: bool) -> None:
    x = TENSORS[name]
    scale, zero_point = quant.qparams(float(x.min()), float(x.max()), 8, symmetric)
    qmin, qmax = quant.integer_range(8, signed=symmetric)
    dtype = torch.qint8 if symmetric else torch.quint8
    qx = torch.quantize_per_tensor(torch.from_numpy(x), scale, zero_point, dtype)
    q = quant.quantize(x, scale, zero_point, qmin, qmax)
    np.testing.assert_array_equal(q, qx.int_repr().numpy())
    np.testing.assert_array_equal(quant.dequantize(q, scale, zero_point), qx.dequantize().numpy())
    assert q.dtype == np.int64 and quant.dequantize(q, scale, zero_point).dtype == np.float32


def test_quantize_rounds_half_to_even_and_clamps() -> None:
    q = quant.quantize(np.array([0.5, 1.5, 2.5, -0.5, -1.5, 500.0, -500.0]), 1.0, 0, -128, 127)
    assert q.tolist() == [0, 2, 2, 0, -2, 127, -128]


def test_quantize_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        quant.quantize(np.array([]), 0.1, 0, -128, 127)
    with pytest.raises(ValueError, match="NaN or inf"):
        quant.quantize(np.array([1.0, np.nan]), 0.1, 0, -128, 127)
    with pytest.raises(ValueError, match="NaN or inf"):
        quant.quantize(np.array([np.inf]), 0.1, 0, -128, 127)
    with pytest.raises(ValueError, match="scale must be positive"):
        quant.quantize(np.array([1.0]), 0.0, 0, -128, 127)


def test_fake_quantize_matches_torch() -> None:
    x = TENSORS["normal"]
    scale, zero_point = quant.qparams(float(x.min()), float(x.max()), 8)
    expected = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), scale, zero_point, 0, 255)
    np.testing.assert_array_equal(quant.fake_quantize(x, bits=8), expected.numpy())
    with pytest.raises(ValueError, match="empty"):
        quant.fake_quantize(np.array([], dtype=np.float32))
    with pytest.raises(ValueError, match="NaN or inf"):
        quant.fake_quantize(np.array([np.nan, 1.0], dtype=np.float32))


def test_sqnr_and_mse() -> None:
    assert quant.sqnr_db([1.0, 1.0], [1.0, 0.0]) == pytest.approx(10 * np.log10(2))
    assert quant.sqnr_db([1.0, 2.0], [1.0, 2.0]) == float("inf")
    assert quant.mse([1.0, 2.0], [1.0, 0.0]) == 2.0
    with pytest.raises(ValueError, match="shapes differ"):
        quant.sqnr_db([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="shapes differ"):
        quant.mse([1.0], [1.0, 2.0])


def test_six_db_per_bit_on_uniform_data() -> None:
    x = np.random.default_rng(1).uniform(-1, 1, 100_000).astype(np.float32)
    sqnr = [quant.sqnr_db(x, quant.fake_quantize(x, bits=b, symmetric=True)) for b in (6, 7, 8)]
    assert np.diff(sqnr) == pytest.approx([6.02, 6.02], abs=0.3)


def test_error_split_adds_up_to_the_mse() -> None:
    x = TENSORS["outlier"]
    qmin, qmax = quant.integer_range(4)
    scale, zero_point = quant.qparams(float(x.min()), float(x.max()), 4, symmetric=True)
    rounding, clipping = quant.error_split(x, scale, zero_point, qmin, qmax)
    assert clipping == 0.0
    assert rounding == pytest.approx(quant.mse(x, quant.fake_quantize(x, 4, True)), rel=1e-9)
    scale, zero_point = quant.qparams(-0.2, 0.2, 4, symmetric=True)  # clips the outlier
    rounding, clipping = quant.error_split(x, scale, zero_point, qmin, qmax)
    x_hat = quant.dequantize(quant.quantize(x, scale, zero_point, qmin, qmax), scale, zero_point)
    assert clipping > rounding > 0
    assert rounding + clipping == pytest.approx(quant.mse(x, x_hat), rel=1e-9)
    with pytest.raises(ValueError, match="empty"):
        quant.error_split(np.array([]), 0.1, 0, qmin, qmax)
