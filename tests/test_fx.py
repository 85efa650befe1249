"""Tests for helpers.fx (lesson 07): mappings, quantize, save/load, sensitivity, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.ao.quantization import HistogramObserver, MinMaxObserver

from helpers import data, fx, models

pytestmark = pytest.mark.usefixtures("quiet_engine")


@pytest.fixture()
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return models.SmallCNN(width=8, eager=False).eval()


@pytest.fixture()
def calib() -> torch.Tensor:
    return torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_qconfig_mapping_swaps_only_the_activation_observer() -> None:
    default = fx.qconfig_mapping().global_qconfig
    minmax = fx.qconfig_mapping(activation="minmax").global_qconfig
    histogram = fx.qconfig_mapping(activation="histogram").global_qconfig
    assert minmax.activation.p.func is MinMaxObserver
    assert histogram.activation.p.func is HistogramObserver
    assert minmax.activation.p.keywords == default.activation.p.keywords
    assert minmax.weight is default.weight


def test_qconfig_mapping_rejects_unknown_observer() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        fx.qconfig_mapping(activation="percentile")


def test_weighted_layers_of_small_cnn(model) -> None:
    assert fx.weighted_layers(model) == ["stem.0", "block1.0", "res_a.0", "res_b.0", "fc"]


def test_skip_layers_sets_none_and_rejects_unknown_names(model) -> None:
    mapping = fx.skip_layers(model, "fc")
    assert mapping.module_name_qconfigs["fc"] is None
    assert mapping.global_qconfig is not None
    with pytest.raises(ValueError, match="no module named"):
        fx.skip_layers(model, ["fc2"])


def test_quantize_converts_and_skipped_layer_stays_float(model, calib) -> None:
    quantized = fx.quantize(model, fx.skip_layers(model, ["fc"]), calib[:1], calib)
    kinds = {name: type(m).__module__ for name, m in quantized.named_modules()}
    assert "quantized" in kinds["stem.0"]
    assert kinds["fc"] == "torch.nn.modules.linear"
    out = quantized(calib)
    assert out.shape == (16, 10) and out.dtype == torch.float32


def test_quantize_rejects_bad_calibration_input(model) -> None:
    with pytest.raises(TypeError, match="calib must be"):
        fx.quantize(model, fx.qconfig_mapping(), torch.rand(1, 1, 28, 28), calib=[1, 2])
    with pytest.raises(TypeError, match="example_inputs must be"):
        fx.quantize(model, fx.qconfig_mapping(), [torch.rand(1, 1, 28, 28)], calib=None)
    with pytest.raises(ValueError, match="at least one input"):
        fx.calibrate_tensors(fx.prepare(model, fx.qconfig_mapping(), torch.rand(1, 1, 28, 28)),
                             torch.empty(0, 1, 28, 28))


def test_save_and_load_give_identical_outputs(model, calib, tmp_path) -> None:
    mapping = fx.qconfig_mapping()
    quantized = fx.quantize(model, mapping, calib[:1], calib)
    n_bytes = fx.save_int8(quantized, tmp_path / "int8.pt")
    assert n_bytes == (tmp_path / "int8.pt").stat().st_size
    loaded = fx.load_int8(model, tmp_path / "int8.pt", mapping, calib[:1])
    assert torch.equal(loaded(calib), quantized(calib))


def test_load_with_another_mapping_or_missing_file_fails_clearly(model, calib, tmp_path) -> None:
    quantized = fx.quantize(model, fx.skip_layers(model, ["fc"]), calib[:1], calib)
    fx.save_int8(quantized, tmp_path / "mixed.pt")
    with pytest.raises(RuntimeError, match="same QConfigMapping"):
        fx.load_int8(model, tmp_path / "mixed.pt", fx.qconfig_mapping(), calib[:1])
    with pytest.raises(FileNotFoundError, match="save_int8"):
        fx.load_int8(model, tmp_path / "absent.pt", fx.qconfig_mapping(), calib[:1])


def test_sqnr_db_known_values() -> None:
    x = torch.tensor([3.0, 4.0])
    assert fx.sqnr_db(x, x) == float("inf")
    assert fx.sqnr_db(x, torch.tensor([3.0, 4.5])) == pytest.approx(10 * torch.log10(
        torch.tensor(25 / 0.25)).item())
    with pytest.raises(ValueError, match="shapes differ"):
        fx.sqnr_db(x, torch.zeros(3))


def test_layer_sensitivity_and_most_sensitive(model, calib) -> None:
    images = calib[:, 0].numpy() * data.MNIST_STD + data.MNIST_MEAN
    val = data.Split(images, np.zeros(len(images), dtype=np.int64), "val")
    rows = fx.layer_sensitivity(model, calib, val, layers=["stem.0", "fc"])
    assert [r["layer"] for r in rows] == ["stem.0", "fc"]
    assert {r["selected_on"] for r in rows} == {"val"}
    with pytest.raises(data.SelectionOnTestError, match="mnist.val"):
        fx.layer_sensitivity(model, calib, data.Split(images, val.y, "test"), layers=["fc"])
    assert all(r["sqnr_db"] > 0 and 0 <= r["top1_agreement"] <= 1 for r in rows)
    assert fx.most_sensitive(rows) == min(rows, key=lambda r: r["sqnr_db"])["layer"]
    with pytest.raises(ValueError, match="no sensitivity rows"):
        fx.most_sensitive([])


def test_state_dict_breakdown_counts_int8_and_float(model, calib) -> None:
    quantized = fx.quantize(model, fx.qconfig_mapping(), calib[:1], calib)
    kinds = fx.state_dict_breakdown(quantized.state_dict())
    n_weights = sum(p.numel() for n, p in model.named_parameters()
                    if n.endswith("weight") and p.ndim > 1)
    assert kinds["int8 values"] == n_weights
    # 8+16+8+8 conv output channels and 10 linear outputs, 16 bytes each.
    assert kinds["per-channel scales and zero points"] == 16 * (4 + 8 + 8 + 8 + 10)
    assert fx.state_dict_breakdown({"a": torch.zeros(2), "b": 3}) == {
        "int8 values": 0, "per-channel scales and zero points": 0, "float values": 8, "other": 0}


def test_compare_observers_sorts_by_sqnr_and_refuses_test(model, calib) -> None:
    images = calib[:, 0].numpy() * data.MNIST_STD + data.MNIST_MEAN
    val = data.Split(images, np.zeros(len(images), dtype=np.int64), "val")
    rows = fx.compare_observers(model, calib[:1], val, val, batches=1)
    assert [r["observer"] for r in rows] != [] and {r["observer"] for r in rows} == {
        "minmax", "histogram"}
    assert rows[0]["sqnr_db"] >= rows[1]["sqnr_db"]
    assert all(r["selected_on"] == "val" for r in rows)
    with pytest.raises(data.SelectionOnTestError):
        fx.compare_observers(model, calib[:1], val, data.Split(images, val.y, "test"))


def test_fx_plots_return_figures_and_reject_empty_input() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from helpers.plot import fx as fx_plot

    counts = {"exported": {"conv2d": 4, "batch_norm": 4},
              "converted": {"conv2d": 4, "quantize_per_tensor": 7}}
    assert fx_plot.graph_stages(counts) is not None
    assert fx_plot.sensitivity([{"layer": "fc", "sqnr_db": 30.0}]) is not None
    assert fx_plot.fp32_vs_int8({"1 thread": {"fp32": 2.0, "int8": 1.0}},
                                {"fp32": 4, "int8": 1}) is not None
    with pytest.raises(ValueError, match="graph_stages"):
        fx_plot.graph_stages({})
    with pytest.raises(ValueError, match="no sensitivity rows"):
        fx_plot.sensitivity([])
