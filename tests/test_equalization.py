"""Tests for helpers.equalization (lesson 14): CLE, ReLU6 report, bias correction, range search."""

from __future__ import annotations

import torch
from torch import nn

from helpers import equalization as eq


def _scaled_conv(c_in: int, c_out: int, groups: int = 1, k: int = 3) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups)
    with torch.no_grad():  # very different channel ranges, as after batch-norm folding
        conv.weight.mul_(torch.logspace(-2, 1, c_out).reshape(-1, 1, 1, 1))
    return conv


def _check_exact(first: nn.Module, second: nn.Module, x: torch.Tensor) -> torch.Tensor:
    model = nn.Sequential(first, nn.ReLU(), second)
    before = model(x).detach()
    scales = eq.equalize_pair(first, second)
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)
    return scales


def test_cle_linear_exact_and_balanced() -> None:
    torch.manual_seed(0)
    first, second = nn.Linear(6, 5), nn.Linear(5, 4)
    with torch.no_grad():
        first.weight.mul_(torch.logspace(-2, 1, 5).reshape(-1, 1))
    _check_exact(first, second, torch.randn(32, 6))
    torch.testing.assert_close(eq._out_ranges(first), eq._in_ranges(second))


def test_cle_conv_and_depthwise_exact() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    _check_exact(_scaled_conv(3, 8), nn.Conv2d(8, 4, 3, padding=1), x)
    dw_in = torch.randn(4, 8, 8, 8)
    _check_exact(_scaled_conv(8, 8, groups=8), nn.Conv2d(8, 6, 1), dw_in)
    first, dw = _scaled_conv(3, 8), nn.Conv2d(8, 8, 3, padding=1, groups=8)
    _check_exact(first, dw, x)
    torch.testing.assert_close(eq._out_ranges(first), eq._in_ranges(dw))


def test_cle_chain_exact() -> None:
    torch.manual_seed(0)
    layers = [_scaled_conv(3, 8), _scaled_conv(8, 8, groups=8), nn.Conv2d(8, 4, 1)]
    model = nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2])
    x = torch.randn(2, 3, 8, 8)
    before = model(x).detach()
    eq.equalize_chain(layers)
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eq._out_ranges(layers[1]), eq._in_ranges(layers[2]), rtol=1e-4, atol=0)


def test_relu6_report() -> None:
    y = torch.tensor([[1.0, 7.0], [5.0, 2.0]])
    report = eq.relu6_report(y, torch.tensor([0.5, 2.0]))
    # kept: column 0 clips at 3 (5 -> 3 changes), column 1 at 12 (7 stays 7, original 6): 2 of 4
    assert report.changed_if_kept == 0.5
    assert report.changed_if_relu == 0.25 and not report.safe_to_replace
    assert eq.relu6_report(y.clamp(max=6), torch.tensor([0.5, 2.0])).safe_to_replace
    assert "ReLU6" in str(report)


def test_bias_correction_known_answer() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    weight_q = layer.weight.detach() + torch.tensor([[0.1, 0.0, -0.2], [0.0, 0.3, 0.0]])
    x = torch.randn(1000, 3) + torch.tensor([1.0, 2.0, 3.0])
    bias = layer.bias.detach().clone()
    correction = eq.empirical_bias_correction(layer, weight_q, x)
    delta = torch.tensor([[0.1, 0.0, -0.2], [0.0, 0.3, 0.0]])
    expected = delta @ torch.tensor([1.0, 2.0, 3.0])  # E[x] is (1, 2, 3): (0.1-0.6, 0.6)
    torch.testing.assert_close(correction, delta @ x.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(correction, expected, atol=0.15, rtol=0)
    torch.testing.assert_close(layer.bias.detach(), bias - correction)
    # the corrected layer's mean output equals the float layer's
    float_mean = (x @ (weight_q - delta).T + bias).mean(0)
    torch.testing.assert_close(layer(x).mean(0), float_mean, atol=1e-4, rtol=0)


def test_mse_search_beats_minmax_on_outliers() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 2000)
    x[:, :5] *= 30  # outliers
    for bits in (4, 8):
        lo, hi = eq.search_clip(x, bits)
        assert eq.quant_mse(x, lo, hi, bits) <= eq.quant_mse(x, *eq.minmax_range(x), bits)
        lo_c, hi_c = eq.search_clip(x, bits, axis=0)
        assert lo_c.shape == (4, 1)
        assert eq.quant_mse(x, lo_c, hi_c, bits) <= eq.quant_mse(x, *eq.minmax_range(x, 0), bits)
    acts = x.abs()
    lo, hi = eq.search_clip(acts, 4, symmetric=False)
    p_lo, p_hi = eq.percentile_range(acts, 99.9)
    assert eq.quant_mse(acts, lo, hi, 4, False) < eq.quant_mse(acts, *eq.minmax_range(acts), 4, False)
    assert float(p_hi) < float(acts.max())
