"""Tests for helpers.granularity: per-tensor / per-channel / per-group (lesson 03)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import granularity, quant


def channels_with_different_ranges() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((8, 256)) * np.geomspace(0.01, 1, 8)[:, None]).astype(np.float32)


def test_per_channel_qparams_match_pytorch():
    w = channels_with_different_ranges()
    observer = torch.ao.quantization.PerChannelMinMaxObserver(
        ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    observer(torch.from_numpy(w))
    ref_scales, ref_zps = observer.calculate_qparams()
    scales, zps = granularity.per_channel_qparams(w, 8, symmetric=True)
    np.testing.assert_array_equal(scales, ref_scales.numpy())
    np.testing.assert_array_equal(zps, ref_zps.numpy())


def test_per_channel_qparams_restricted_range_and_zero_channel_match_pytorch():
    w = channels_with_different_ranges()
    w[3] = 0.0
    observer = torch.ao.quantization.PerChannelMinMaxObserver(
        ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric, quant_min=-127,
        quant_max=127)
    observer(torch.from_numpy(w))
    ref_scales, _ = observer.calculate_qparams()
    scales, zps = granularity.per_channel_qparams(w, 8, symmetric=True, restricted=True)
    np.testing.assert_array_equal(scales, ref_scales.numpy())
    assert scales[3] > 0 and not zps.any()


def test_finer_granularity_lowers_error():
    w = channels_with_different_ranges()
    rows = {r["scheme"]: r for r in granularity.compare_schemes(w, bits=4, group_sizes=(32, 128))}
    assert rows["per_tensor"]["mse"] > rows["per_channel"]["mse"] > rows["per_group_32"]["mse"]
    assert rows["per_channel"]["mse"] >= rows["per_group_128"]["mse"] >= rows["per_group_32"]["mse"]


def test_per_group_handles_a_partial_last_group():
    w = channels_with_different_ranges()[:, :100]
    scales, _ = granularity.per_group_qparams(w, 32, bits=4)
    assert scales.shape == (8, 4)
    assert granularity.fake_quantize(w, "per_group", 4, group_size=32).shape == w.shape


def test_per_tensor_fake_quantize_matches_quant():
    w = channels_with_different_ranges()
    np.testing.assert_array_equal(granularity.fake_quantize(w, "per_tensor", 8, symmetric=False),
                                  quant.fake_quantize(w, 8, symmetric=False))


def test_scale_counts_and_overhead():
    assert granularity.n_scales((64, 3, 3, 3), "per_tensor") == 1
    assert granularity.n_scales((64, 3, 3, 3), "per_channel") == 64
    assert granularity.n_scales((10, 300), "per_group", 128) == 30
    assert granularity.overhead_bits_per_weight((4, 128), "per_group", 128, scale_bits=16) == 0.125


@pytest.mark.parametrize("bits", [1, 17])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match="bits must be an integer from 2 to 16"):
        granularity.per_channel_qparams(channels_with_different_ranges(), bits)


def test_bad_input():
    with pytest.raises(ValueError, match="output-channel axis"):
        granularity.per_channel_qparams(np.ones(5))
    with pytest.raises(ValueError, match="empty"):
        granularity.per_channel_qparams(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="NaN or inf"):
        granularity.fake_quantize(np.array([[1.0, np.nan]]), "per_channel")
    with pytest.raises(ValueError, match="unknown scheme"):
        granularity.fake_quantize(np.ones((2, 2)), "per_row")
    with pytest.raises(ValueError, match="group_size"):
        granularity.fake_quantize(np.ones((2, 2)), "per_group")
    with pytest.raises(ValueError, match="positive integer"):
        granularity.per_group_qparams(np.ones((2, 8)), 0)
    with pytest.raises(ValueError, match="no empty axis"):
        granularity.n_scales((0, 4), "per_channel")


def test_weight_quantized_copy_folds_bn_and_quantizes_weights_only():
    import torch

    from helpers import models

    torch.manual_seed(0)
    net = models.DepthwiseSeparableNet(width=8, blocks=2).eval()
    for module in net.modules():  # give batch norm non-trivial statistics to fold
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.2, 3.0)
    x = torch.randn(3, 1, 28, 28)
    eight = granularity.weight_quantized_copy(net, "per_channel", 8, net.fusion_groups())
    four = granularity.weight_quantized_copy(net, "per_tensor", 4, net.fusion_groups())
    with torch.no_grad():
        ref, out8, out4 = net(x), eight(x), four(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in eight.modules())
    err8, err4 = (ref - out8).abs().max(), (ref - out4).abs().max()
    assert 0 < err8 < 0.01 and err4 > 4 * err8
    stem = four.stem[0].weight.detach()
    assert len(torch.unique(stem)) <= 16  # one 4-bit grid for the whole tensor
    with pytest.raises(ValueError, match="per_tensor"):
        granularity.weight_quantized_copy(net, "per_group", 4)
    spread = granularity.channel_range_spread(net, net.fusion_groups())
    assert set(spread) >= {"stem.0", "features.0.0"} and all(v >= 1 for v in spread.values())


def test_inference_copy_computes_the_same_function():
    from helpers import models

    torch.manual_seed(0)
    model = models.build_torch_model("small_cnn").eval()
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    fast = granularity.inference_copy(model, model.fusion_groups())
    x = torch.rand(4, 1, 28, 28)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), model(x), atol=1e-4, rtol=1e-4)
    assert hasattr(fast, "stem") and fast is not model
