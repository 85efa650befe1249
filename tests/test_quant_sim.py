"""Tests for helpers.quant_sim (lesson 14): BN folding, the simulated quantized model, SQNR."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from helpers import models, quant_sim, range_search

# Tiny layers: one thread is several times faster than many on a shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trained_looking(model: nn.Module) -> nn.Module:
    """Random batch-norm statistics, so folding has something to fold."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.2, 3.0)
            module.weight.data.uniform_(0.1, 2.0)
            module.bias.data.uniform_(-0.3, 0.3)
    return model.eval()


@pytest.mark.parametrize("name", ["ds_cnn", "small_cnn"])
def test_fold_batch_norm_keeps_the_function(name: str) -> None:
    kwargs = {"blocks": 2} if name == "ds_cnn" else {}
    model = _trained_looking(models.build_torch_model(name, **kwargs))
    folded = quant_sim.fold_batch_norm(model)
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched
    with pytest.raises(TypeError, match="fusion_groups"):
        quant_sim.fold_batch_norm(nn.Sequential(nn.Linear(2, 2)))


def _folded_ds(blocks: int = 2) -> nn.Module:
    return quant_sim.fold_batch_norm(_trained_looking(models.build_torch_model("ds_cnn", blocks=blocks)))


def test_quantize_layers_bits_and_errors() -> None:
    folded = _folded_ds()
    calib = torch.randn(32, 1, 28, 28)
    names = list(quant_sim.weight_layers(folded))
    assert names[0] == "stem.0" and names[-1] == "fc"
    config = quant_sim.QuantConfig(4, 8, per_channel=True, layer_bits={"fc": 8})
    q = quant_sim.quantize(folded, calib, config)
    layers = quant_sim.weight_layers(q)
    assert list(layers) == names
    # 4-bit per-channel weights: at most 16 distinct values per output channel
    w = layers["features.1.0"].weight
    assert max(len(torch.unique(row)) for row in w) <= 16
    assert len(torch.unique(layers["fc"].weight)) > 16
    assert "weights 8-bit" in repr(q.get_submodule("fc"))
    with pytest.raises(KeyError, match="no conv/linear layers named"):
        quant_sim.quantize(folded, calib, quant_sim.QuantConfig(layer_bits={"nope": 4}))
    with pytest.raises(ValueError, match="batch norm"):
        quant_sim.quantize(models.build_torch_model("ds_cnn", blocks=1), calib, config)


def test_activation_fast_path_matches_the_reference_fake_quant() -> None:
    layer = nn.Linear(5, 3)
    fq = quant_sim.FakeQuantLayer(layer, (-0.7, 2.3), 4, 8)
    x = torch.linspace(-1.5, 3.0, 200).reshape(40, 5)
    reference = layer(range_search.fake_quant(x, torch.tensor(-0.7), torch.tensor(2.3), 4, False))
    torch.testing.assert_close(fq(x), reference, atol=1e-5, rtol=1e-5)
    assert torch.equal(quant_sim.FakeQuantLayer(layer, None, None, 8)(x), layer(x))


def test_more_bits_give_higher_sqnr_and_same_predictions_at_16() -> None:
    folded = _folded_ds()
    x = torch.randn(64, 1, 28, 28)
    sqnr = {bits: quant_sim.layer_sqnr_db(folded, quant_sim.quantize(
        folded, x, quant_sim.QuantConfig(bits, bits, per_channel=True)), x) for bits in (4, 8, 16)}
    assert all(sqnr[4][n] < sqnr[8][n] < sqnr[16][n] for n in sqnr[4])
    q16 = quant_sim.quantize(folded, x, quant_sim.QuantConfig(16, 16))
    assert bool((quant_sim.predict(q16, x, batch_size=20) == quant_sim.predict(folded, x)).all())


def test_layer_inputs_are_what_each_layer_reads() -> None:
    folded = _folded_ds(1)
    x = torch.randn(10, 1, 28, 28)
    inputs = quant_sim.layer_inputs(folded, x, batch_size=4)
    assert torch.equal(inputs["stem.0"], x)
    assert inputs["fc"].shape == (10, 32)
    assert float(inputs["features.0.0"].min()) >= 0  # after ReLU6
