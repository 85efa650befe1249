"""Tests for helpers.range_search (lesson 14): fake quantization, min-max, percentile, MSE search."""

from __future__ import annotations

import pytest
import torch

from helpers import range_search as rs


def test_fake_quant_symmetric_and_asymmetric_by_hand() -> None:
    x = torch.tensor([-1.0, -0.26, 0.0, 0.24, 0.9, 2.0])
    # symmetric 3 bits on [-1, 1]: scale 1/3, grid -4..3 -> -4/3 .. 1
    torch.testing.assert_close(rs.fake_quant(x, -1.0, 1.0, 3),
                               torch.tensor([-1.0, -1 / 3, 0.0, 1 / 3, 1.0, 1.0]))
    # asymmetric 2 bits on [0, 3]: scale 1, levels 0..3; negatives clip to 0
    torch.testing.assert_close(rs.fake_quant(x * 2, 0.0, 3.0, 2, symmetric=False),
                               torch.tensor([0.0, 0.0, 0.0, 0.0, 2.0, 3.0]))
    # an asymmetric range that excludes 0 is widened to include it (zero stays exact)
    assert float(rs.fake_quant(torch.tensor([0.0]), 1.0, 3.0, 4, symmetric=False)) == 0.0


def test_per_channel_ranges_broadcast() -> None:
    x = torch.tensor([[1.0, -3.0], [0.5, 0.25]])
    lo, hi = rs.minmax_range(x, axis=0)
    assert lo.shape == (2, 1)
    torch.testing.assert_close(hi.flatten(), torch.tensor([1.0, 0.5]))
    torch.testing.assert_close(lo.flatten(), torch.tensor([-3.0, 0.25]))


def test_mse_search_beats_minmax_on_outliers() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 2000)
    x[:, :5] *= 30  # outliers
    for bits in (4, 8):
        lo, hi = rs.search_clip(x, bits)
        assert rs.quant_mse(x, lo, hi, bits) <= rs.quant_mse(x, *rs.minmax_range(x), bits)
        lo_c, hi_c = rs.search_clip(x, bits, axis=0)
        assert lo_c.shape == (4, 1)
        assert rs.quant_mse(x, lo_c, hi_c, bits) <= rs.quant_mse(x, *rs.minmax_range(x, 0), bits)
    acts = x.abs()
    lo, hi = rs.search_clip(acts, 4, symmetric=False)
    assert rs.quant_mse(acts, lo, hi, 4, False) < 0.9 * rs.quant_mse(acts, *rs.minmax_range(acts), 4, False)
    p_lo, p_hi = rs.percentile_range(acts, 99.9)
    assert float(p_hi) < float(acts.max())


def test_choose_range_names_and_errors() -> None:
    x = torch.linspace(-1, 1, 101)
    for method in rs.RANGE_METHODS:
        lo, hi = rs.choose_range(x, method, bits=4)
        assert float(lo) <= 0 <= float(hi)
    with pytest.raises(ValueError, match="unknown range method"):
        rs.choose_range(x, "entropy", 4)
    with pytest.raises(ValueError, match="percent"):
        rs.percentile_range(x, 20)


def test_sample_values_is_fixed_and_only_for_large_tensors() -> None:
    small = torch.arange(10.0)
    assert rs.sample_values(small) is small
    big = torch.randn(300_000)
    a, b = rs.sample_values(big), rs.sample_values(big)
    assert a.numel() == rs.MAX_SEARCH_VALUES
    torch.testing.assert_close(a, b)
