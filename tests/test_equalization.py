"""Tests for helpers.equalization (lesson 14): CLE, the ReLU6 report, empirical bias correction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import equalization as eq
from helpers import models, quant_sim

# Tiny layers: one thread is several times faster than many on a shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


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
    r1, r2 = eq.out_ranges(first), eq.in_ranges(second)
    scales = _check_exact(first, second, torch.randn(32, 6))
    torch.testing.assert_close(scales, torch.sqrt(r1 / r2))
    torch.testing.assert_close(eq.out_ranges(first), eq.in_ranges(second))
    torch.testing.assert_close(eq.out_ranges(first), torch.sqrt(r1 * r2))


def test_cle_conv_and_depthwise_exact() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 3, 8, 8)
    _check_exact(_scaled_conv(3, 8), nn.Conv2d(8, 4, 3, padding=1), x)
    dw_in = torch.randn(4, 8, 8, 8)
    _check_exact(_scaled_conv(8, 8, groups=8), nn.Conv2d(8, 6, 1), dw_in)
    first, dw = _scaled_conv(3, 8), nn.Conv2d(8, 8, 3, padding=1, groups=8)
    _check_exact(first, dw, x)
    torch.testing.assert_close(eq.out_ranges(first), eq.in_ranges(dw))


def test_dead_channel_keeps_scale_one() -> None:
    first, second = nn.Linear(3, 4), nn.Linear(4, 2)
    with torch.no_grad():
        first.weight[1] = 0.0
    scales = eq.equalization_scales(first, second)
    assert float(scales[1]) == 1.0 and bool(torch.isfinite(scales).all())


def test_cle_chain_exact() -> None:
    torch.manual_seed(0)
    layers = [_scaled_conv(3, 8), _scaled_conv(8, 8, groups=8), nn.Conv2d(8, 4, 1)]
    model = nn.Sequential(layers[0], nn.ReLU(), layers[1], nn.ReLU(), layers[2])
    x = torch.randn(2, 3, 8, 8)
    before = model(x).detach()
    eq.equalize_chain(layers)
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(eq.out_ranges(layers[1]), eq.in_ranges(layers[2]), rtol=1e-4, atol=0)


def _trained_looking(model: nn.Module) -> nn.Module:
    torch.manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_var.uniform_(0.05, 4.0)
            module.weight.data.uniform_(0.05, 3.0)
            module.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.mark.parametrize("name", ["ds_cnn", "small_cnn"])
def test_equalize_course_models_is_invariant(name: str) -> None:
    model = _trained_looking(models.build_torch_model(name, **({"blocks": 2} if name == "ds_cnn" else {})))
    folded = eq.relu6_to_relu(quant_sim.fold_batch_norm(model))
    equalized, scales = eq.equalize(folded)
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(equalized(x), folded(x), atol=1e-5, rtol=1e-5)
    first_chain = eq.chains(model)[0]
    assert set(scales) >= set(first_chain[:-1])
    before = eq.out_ranges(folded.get_submodule(first_chain[0]))
    after = eq.out_ranges(equalized.get_submodule(first_chain[0]))
    assert float(after.max() / after.min()) < float(before.max() / before.min())


def test_equalize_refuses_relu6_and_batch_norm() -> None:
    model = _trained_looking(models.build_torch_model("ds_cnn", blocks=1))
    with pytest.raises(ValueError, match="ReLU6"):
        eq.equalize(quant_sim.fold_batch_norm(model))
    with pytest.raises(ValueError, match="fold batch norm"):
        eq.equalize(eq.relu6_to_relu(model))
    with pytest.raises(TypeError, match="no CLE chains"):
        eq.chains(nn.Sequential())


def test_relu6_report() -> None:
    y = torch.tensor([[1.0, 7.0], [5.0, 2.0]])
    report = eq.relu6_report(y, torch.tensor([0.5, 2.0]))
    # kept: column 0 clips at 3 (5 -> 3 changes), column 1 at 12 (7 stays 7, original 6): 2 of 4
    assert report.changed_if_kept == 0.5
    assert report.changed_if_relu == 0.25 and not report.safe_to_replace
    assert eq.relu6_report(y.clamp(max=6), torch.tensor([0.5, 2.0])).safe_to_replace
    assert "ReLU6" in str(report)


def test_bias_correction_on_a_linear_toy_with_a_known_answer() -> None:
    # y = W x + b with x ~ mean (1, 2, 3); rounding adds delta to W, so the mean output moves
    # by delta @ E[x]: (0.1 - 0.6, 0.6) = (-0.5, 0.6), and the correction removes exactly that.
    torch.manual_seed(0)
    layer = nn.Linear(3, 2)
    delta = torch.tensor([[0.1, 0.0, -0.2], [0.0, 0.3, 0.0]])
    x = torch.randn(20_000, 3) + torch.tensor([1.0, 2.0, 3.0])
    with torch.no_grad():
        float_out = layer(x)
        quant_out = float_out + x @ delta.T
    correction = eq.bias_correction(float_out, quant_out)
    torch.testing.assert_close(correction, delta @ x.mean(0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(correction, torch.tensor([-0.5, 0.6]), atol=0.03, rtol=0)
    corrected_mean = (quant_out - correction).mean(0)
    torch.testing.assert_close(corrected_mean, float_out.mean(0), atol=1e-4, rtol=0)
    conv_error = torch.zeros(4, 3, 5, 5) + torch.tensor([1.0, -2.0, 0.5]).reshape(1, 3, 1, 1)
    torch.testing.assert_close(eq.bias_correction(torch.zeros_like(conv_error), conv_error),
                               torch.tensor([1.0, -2.0, 0.5]))
    with pytest.raises(ValueError, match="differ in shape"):
        eq.bias_correction(float_out, quant_out[:, :1])


def test_correct_biases_zeroes_the_mean_error_of_the_first_layer() -> None:
    model = _trained_looking(models.build_torch_model("ds_cnn", blocks=1))
    folded = quant_sim.fold_batch_norm(model)
    x = torch.randn(64, 1, 28, 28)
    quantized = quant_sim.quantize(folded, x, quant_sim.QuantConfig(3, None, per_channel=False))
    corrections = eq.correct_biases(folded, quantized, x)
    assert set(corrections) == set(quant_sim.weight_layers(folded))
    error = quant_sim.layer_outputs(quantized, x)["stem.0"] - quant_sim.layer_outputs(folded, x)["stem.0"]
    torch.testing.assert_close(error.mean(dim=(0, 2, 3)), torch.zeros(32), atol=1e-5, rtol=0)
