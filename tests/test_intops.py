"""Tests for helpers.intops: integer-only inference (lesson 04)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import intops


def test_integer_matmul_matches_direct_product():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (4, 50)), rng.integers(-128, 128, (3, 50))
    acc = intops.integer_matmul(a, 120, b, np.array([0, -2, 5]))
    assert acc.dtype == np.int32
    np.testing.assert_array_equal(acc, (a - 120) @ (b - np.array([0, -2, 5])[:, None]).T)


def test_integer_matmul_bad_input():
    with pytest.raises(ValueError, match="same K"):
        intops.integer_matmul(np.zeros((2, 3), int), 0, np.zeros((2, 4), int))
    with pytest.raises(TypeError, match="integers"):
        intops.integer_matmul(np.zeros((2, 3)), 0, np.zeros((2, 3), int))
    with pytest.raises(ValueError, match="empty"):
        intops.integer_matmul(np.zeros((0, 3), int), 0, np.zeros((2, 3), int))


@pytest.mark.parametrize("m, expected", [(0.5, (2**30, 0)), (0.75, (1610612736, 0)),
                                         (1 / 3, (1431655765, -1)), (1.0, (2**30, 1)),
                                         (0.0, (0, 0)), (1 - 2**-33, (2**30, 1))])
def test_quantize_multiplier_known_values(m, expected):
    assert intops.quantize_multiplier(m) == expected


@pytest.mark.parametrize("m", [-0.1, float("nan"), float("inf")])
def test_quantize_multiplier_bad_input(m):
    with pytest.raises(ValueError, match="finite and >= 0"):
        intops.quantize_multiplier(m)


def test_quantize_multiplier_is_accurate():
    for m in np.geomspace(1e-6, 0.99, 50):
        m0, shift = intops.quantize_multiplier(m)
        assert 2**30 <= m0 < 2**31
        assert abs(m0 * 2.0 ** (shift - 31) - m) / m < 2**-30


def test_srdhm_rounds_ties_up_and_saturates():
    assert intops.saturating_rounding_doubling_high_mul(3, 2**30) == 2  # 1.5 -> 2
    assert intops.saturating_rounding_doubling_high_mul(-3, 2**30) == -1  # -1.5 -> -1 (gemmlowp's nudge)
    assert intops.saturating_rounding_doubling_high_mul(-2**31, -2**31) == 2**31 - 1


def test_rounding_divide_by_pot():
    got = intops.rounding_divide_by_pot(np.array([-6, -5, -3, 3, 5, 6]), 1)
    np.testing.assert_array_equal(got, [-3, -3, -2, 2, 3, 3])
    with pytest.raises(ValueError, match="0..31"):
        intops.rounding_divide_by_pot(5, 32)


def test_requantize_close_to_real_multiplication():
    rng = np.random.default_rng(1)
    acc = rng.integers(-2**20, 2**20, 1000)
    m0, shift = intops.quantize_multiplier(0.0123)
    got = intops.requantize(acc, m0, shift, 3, -100_000, 100_000)
    # Two roundings: the first (in SRDHM) adds up to 2^shift of an LSB to the final half LSB.
    assert np.max(np.abs(got - (acc * 0.0123 + 3))) <= 0.5 + 2.0**shift + 1e-9
    with pytest.raises(ValueError, match="greater than qmax"):
        intops.requantize(acc, m0, shift, 0, 5, 4)


def test_requantize_float_matches_fixed_within_one_lsb():
    rng = np.random.default_rng(2)
    acc = rng.integers(-2**18, 2**18, (500, 4))
    scale_w = np.array([0.01, 0.02, 0.005, 0.03], np.float32)
    pairs = [intops.quantize_multiplier(np.float64(np.float32(0.1)) * s / np.float64(np.float32(0.7)))
             for s in scale_w.astype(np.float64)]
    fixed = intops.requantize(acc, [p[0] for p in pairs], [p[1] for p in pairs], 0, -128, 127)
    floating = intops.requantize_float(acc, None, 0.1, scale_w, 0.7, 0, -128, 127)
    assert np.abs(fixed - floating).max() <= 1


def test_quantize_bias_rounds_half_away():
    np.testing.assert_array_equal(intops.quantize_bias([0.25, -0.25, 1.0], 0.5, 1.0), [1, -1, 2])
    with pytest.raises(ValueError, match="NaN or inf"):
        intops.quantize_bias([np.nan], 1.0, 1.0)


def test_quantized_linear_against_pytorch():
    torch.backends.quantized.engine = "x86" if "x86" in torch.backends.quantized.supported_engines \
        else "qnnpack"
    rng = np.random.default_rng(3)
    # 7-bit activations, as the x86 qconfig's reduce_range makes them: on CPUs without VNNI,
    # FBGEMM's AVX2 path multiplies u8 x s8 pairs into saturating int16, which full 8-bit
    # inputs overflow (lesson 04, "One more difference between machines").
    q_x = rng.integers(0, 128, (16, 40))
    q_w = rng.integers(-127, 128, (8, 40))
    s_x, s_w, s_out, zp_x, zp_out = 0.02, 0.01, 0.5, 60, 60
    from torch.ao.nn.quantized import Linear
    layer = Linear(40, 8)
    layer.set_weight_bias(torch.quantize_per_tensor(torch.tensor(q_w * s_w, dtype=torch.float32),
                                                    s_w, 0, torch.qint8), None)
    layer.scale, layer.zero_point = s_out, zp_out
    x = torch._make_per_tensor_quantized_tensor(torch.tensor(q_x, dtype=torch.uint8), s_x, zp_x)
    expected = layer(x).int_repr().numpy()
    m0, shift = intops.quantize_multiplier(np.float32(s_x) * np.float64(np.float32(s_w)) / np.float32(s_out))
    got = intops.quantized_linear(q_x, zp_x, q_w, None, m0, shift, zp_out, 0, 255)
    assert np.abs(got - expected).max() <= 1


def test_im2col_and_conv_match_torch():
    rng = np.random.default_rng(4)
    x = rng.integers(0, 10, (2, 3, 6, 6))
    w = rng.integers(-3, 4, (4, 3, 3, 3))
    cols = intops.im2col(x, 3, stride=1, padding=1, pad_value=0)
    assert cols.shape == (2 * 36, 27)
    expected = torch.nn.functional.conv2d(torch.tensor(x, dtype=torch.float64),
                                          torch.tensor(w, dtype=torch.float64), padding=1)
    got = (cols @ w.reshape(4, -1).T).reshape(2, 6, 6, 4).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(got, expected.numpy())
    with pytest.raises(ValueError, match="N, C, H, W"):
        intops.im2col(np.zeros((3, 6, 6)), 3)
    with pytest.raises(ValueError, match="larger than the padded input"):
        intops.im2col(np.zeros((1, 1, 2, 2)), 3)


def test_fold_batch_norm_matches_torch():
    torch.manual_seed(0)
    conv, bn = torch.nn.Conv2d(3, 5, 3, bias=True), torch.nn.BatchNorm2d(5)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 2)
    bn.eval()
    w, b = intops.fold_batch_norm(conv.weight.detach().numpy(), conv.bias.detach().numpy(),
                                  bn.weight.detach().numpy(), bn.bias.detach().numpy(),
                                  bn.running_mean.numpy(), bn.running_var.numpy(), bn.eps)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        folded = torch.nn.functional.conv2d(x, torch.from_numpy(w), torch.from_numpy(b))
        np.testing.assert_allclose(folded.numpy(), bn(conv(x)).numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="one per output"):
        intops.fold_batch_norm(np.zeros((5, 3, 3, 3)), None, np.ones(4), np.zeros(5), np.zeros(5),
                               np.ones(5))


def test_lsb_difference():
    d = intops.lsb_difference(np.array([1, 2, 3, 4]), np.array([1, 3, 3, 2]))
    assert d == {"mismatch_fraction": 0.5, "max_lsb": 2, "n_outputs": 4}
    with pytest.raises(ValueError, match="shapes differ"):
        intops.lsb_difference(np.zeros(3, int), np.zeros(4, int))


def test_quantize_multipliers_per_channel():
    m0, shift = intops.quantize_multipliers(0.5, [0.25, 0.5], 0.25)
    np.testing.assert_array_equal(m0, [2**30, 2**30])
    np.testing.assert_array_equal(shift, [0, 1])
    with pytest.raises(ValueError, match="positive"):
        intops.quantize_multipliers(0.5, [0.0], 1.0)


def test_single_rounding_is_within_one_lsb_of_double_rounding():
    rng = np.random.default_rng(6)
    acc = rng.integers(-2**22, 2**22, 5000)
    m0, shift = intops.quantize_multiplier(0.00731)
    single = intops.requantize_single_rounding(acc, m0, shift, 0, -10**6, 10**6)
    double = intops.requantize(acc, m0, shift, 0, -10**6, 10**6)
    assert np.abs(single - double).max() <= 1
    assert np.abs(single - acc * 0.00731).max() <= 0.5 + 1e-6
    with pytest.raises(OverflowError, match="int32"):
        intops.requantize_single_rounding(np.array([2**40]), m0, shift, 0, -128, 127)


def test_linear_params_call_and_clamp():
    rng = np.random.default_rng(7)
    q_w = rng.integers(-127, 128, (3, 10))
    layer = intops.LinearParams(q_w=q_w, q_bias=np.array([5, -5, 0]), m0=np.full(3, 2**30),
                                shift=np.array([-6, -6, -6]), zp_x=-128, zp_out=-20, relu=True)
    assert layer.clamp() == (-20, 127)
    q_x = rng.integers(-128, 128, (4, 10))
    expected = intops.quantized_linear(q_x, -128, q_w, layer.q_bias, layer.m0, layer.shift, -20,
                                       -20, 127)
    np.testing.assert_array_equal(layer(q_x), expected)


def test_int16_pair_matmul_saturates_only_large_pairs():
    q_w = np.array([[127, 127, 1, 1], [-128, -128, 0, 0]])
    q_x = np.array([[255, 255, 3, 4], [100, 100, 0, 0]])
    got = intops.int16_pair_matmul(q_x, q_w)
    # 255·127 + 255·127 = 64,770 sticks at 32,767; 100·127 + 100·127 = 25,400 fits.
    np.testing.assert_array_equal(got, [[32767 + 7, -32768], [25400, -25600]])
    exact = intops.integer_matmul(np.array([[1, 2, 3]]), 0, np.array([[4, 5, 6]]))
    np.testing.assert_array_equal(intops.int16_pair_matmul(np.array([[1, 2, 3]]),
                                                           np.array([[4, 5, 6]])), exact)
    with pytest.raises(ValueError, match="uint8"):
        intops.int16_pair_matmul(np.array([[-1, 2]]), np.array([[1, 1]]))
