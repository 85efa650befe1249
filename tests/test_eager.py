"""Tests for helpers.eager (eager-mode static PTQ) and helpers.plot.eager; lesson 06."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn
from torch.ao import quantization as tq

from helpers import data, eager, env, measure, models
from helpers.plot import eager as eager_plot

matplotlib.use("Agg")
ENGINE = env.default_engine()
# torch.ao.quantization's deprecation notices are explained in lesson 06; here they are noise.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def small_split(n: int = 64, seed: int = 0) -> data.Split:
    rng = np.random.default_rng(seed)
    return data.Split(rng.random((n, 28, 28), dtype=np.float32), rng.integers(0, 10, n))


def fixed_mlp() -> models.MLP:
    torch.manual_seed(0)
    return models.MLP(hidden=16).eval()


def test_check_engine_accepts_the_default_and_rejects_unknown_names() -> None:
    assert eager.check_engine(ENGINE) == ENGINE
    with pytest.raises(ValueError, match="unknown quantized engine 'tpu'"):
        eager.check_engine("tpu")
    with pytest.raises(ValueError, match="unknown quantized engine"):
        eager.check_engine(None)  # type: ignore[arg-type]


def test_check_engine_reports_engines_missing_from_this_build(monkeypatch) -> None:
    monkeypatch.setattr(eager, "available_engines", lambda: ["qnnpack"])
    with pytest.raises(ValueError, match="has no 'x86' engine"):
        eager.check_engine("x86")


@pytest.mark.skipif("x86" not in torch.backends.quantized.supported_engines,
                    reason="x86 engine not in this build")
def test_qconfig_for_matches_the_engine_granularity() -> None:
    assert eager.qconfig_for("x86").weight.p.keywords["qscheme"] == torch.per_channel_symmetric
    assert eager.qconfig_for("qnnpack").weight.p.keywords["qscheme"] == torch.per_tensor_symmetric


def test_prepare_refuses_a_model_without_quant_stub() -> None:
    body = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(ValueError, match="no QuantStub"):
        eager.prepare(body, ENGINE)


def test_prepare_leaves_the_original_untouched_and_inserts_observers() -> None:
    model = fixed_mlp()
    prepared = eager.prepare(model, ENGINE)
    assert not hasattr(model.fc1, "activation_post_process")
    ranges = eager.observer_ranges(prepared)
    assert set(ranges) == {"quant", "fc1", "fc2"}
    assert ranges["quant"] == (math.inf, -math.inf)  # nothing observed yet


def test_convert_refuses_an_unprepared_model() -> None:
    with pytest.raises(ValueError, match="no observers"):
        eager.convert(fixed_mlp())


def test_uncalibrated_convert_falls_back_to_scale_one() -> None:
    int8 = eager.quantize_static(fixed_mlp(), ENGINE, calib=None)
    assert float(int8.quant.scale) == 1.0 and int(int8.quant.zero_point) == 0
    assert int8.fc1.scale == 1.0


def test_calibrate_loader_counts_images_and_stops() -> None:
    prepared = eager.prepare(fixed_mlp(), ENGINE)
    loader = data.torch_loader(small_split(40), batch_size=8)
    assert eager.calibrate_loader(prepared, loader, 3) == 24
    low, high = eager.observer_ranges(prepared)["quant"]
    assert low < 0 < high


def test_calibrate_loader_rejects_bad_input() -> None:
    prepared = eager.prepare(fixed_mlp(), ENGINE)
    with pytest.raises(ValueError, match="max_batches must be >= 1"):
        eager.calibrate_loader(prepared, [], 0)
    with pytest.raises(ValueError, match="no batches"):
        eager.calibrate_loader(prepared, [], 2)


@pytest.mark.skipif("x86" not in torch.backends.quantized.supported_engines,
                    reason="per-channel x86 engine not in this build")
def test_quantized_layers_and_dequantize_at_agree_with_pytorch() -> None:
    int8 = eager.quantize_static(fixed_mlp(), "x86", small_split(), batches=2)
    rows = {r["module"]: r for r in eager.quantized_layers(int8)}
    assert rows["fc1"]["qscheme"] == "per_channel_affine" and rows["fc1"]["axis"] == 0
    assert rows["fc1"]["n_scales"] == 16 and rows["fc1"]["element_size"] == 1
    assert rows["quant"]["out_scale"] > 0
    weight = int8.fc1.weight()
    for index in [(0, 0), (5, 100), (15, 783)]:
        assert eager.dequantize_at(weight, index) == pytest.approx(
            weight.dequantize()[index].item(), abs=1e-7)


def test_weight_qparams_per_tensor_and_bad_input() -> None:
    q = torch.quantize_per_tensor(torch.tensor([[0.5, -1.0]]), 0.01, 2, torch.qint8)
    info = eager.weight_qparams(q)
    assert info == {"dtype": "qint8", "qscheme": "per_tensor_affine", "element_size": 1,
                    "axis": None, "scale": 0.01, "zero_point": 2}
    assert eager.dequantize_at(q, (0, 1)) == pytest.approx(-1.0)
    with pytest.raises(TypeError, match="expected a quantized tensor"):
        eager.weight_qparams(torch.zeros(2))


def test_calibration_curve_points_and_bad_checkpoints() -> None:
    prepared = eager.prepare(fixed_mlp(), ENGINE)
    split = small_split(40)
    curve = eager.calibration_curve(prepared, split, [2, 1], lambda m: 0.5, batch_size=8)
    assert [(p["batches"], p["images"], p["accuracy"]) for p in curve] == [(1, 8, 0.5),
                                                                           (2, 16, 0.5)]
    with pytest.raises(ValueError, match="only 5 batches"):
        eager.calibration_curve(prepared, split, [6], lambda m: 0.5, batch_size=8)
    with pytest.raises(ValueError, match="checkpoints must be batch counts"):
        eager.calibration_curve(prepared, split, [], lambda m: 0.5)
    empty = data.Split(np.zeros((0, 28, 28), np.float32), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="calibration split is empty"):
        eager.calibration_curve(prepared, empty, [1], lambda m: 0.5)


def test_fusion_of_tiny_conv_net_keeps_float_outputs() -> None:
    net = eager.tiny_conv_net()
    fused = tq.fuse_modules(eager.tiny_conv_net(), [["conv1", "bn1", "relu1"],
                                                    ["conv2", "bn2", "relu2"], ["conv3", "bn3"]])
    assert eager.count_modules(fused, ["BatchNorm2d", "ConvReLU2d"]) == {"BatchNorm2d": 0,
                                                                        "ConvReLU2d": 2}
    x = torch.linspace(-1, 1, 784).reshape(1, 1, 28, 28)
    with torch.inference_mode():
        assert torch.allclose(fused(x), net(x), atol=1e-5)


def test_module_kind_distinguishes_quantized_modules() -> None:
    int8 = eager.quantize_static(fixed_mlp(), ENGINE, small_split(), batches=1)
    assert eager.module_kind(int8.fc1) == "quantized.Linear"
    assert eager.module_kind(nn.Linear(2, 2)) == "Linear"


def test_sqnr_db_known_values_and_shape_error() -> None:
    x = torch.ones(100)
    assert eager.sqnr_db(x, x) == math.inf
    assert eager.sqnr_db(x, x * 1.1) == pytest.approx(20.0, abs=1e-4)
    with pytest.raises(ValueError, match="shapes differ"):
        eager.sqnr_db(x, torch.ones(3))


def test_benchmark_returns_measurements_and_rejects_tiny_test_split() -> None:
    result = eager.benchmark(fixed_mlp(), small_split(16), repeats=2, big_batch=8, big_repeats=1)
    assert 0 <= result["accuracy"] <= 1 and result["size_bytes"] > 0
    assert isinstance(result["timing"], measure.Timing) and result["timing"].threads == 1
    split = small_split(16)
    assert result["pred"].shape == (16,)
    assert result["accuracy"] == pytest.approx(float((result["pred"].numpy() == split.y).mean()))
    with pytest.raises(ValueError, match="fewer than big_batch"):
        eager.benchmark(fixed_mlp(), small_split(4), big_batch=8)


def test_plots_return_figures_and_reject_empty_input() -> None:
    curve = [{"images": 4, "accuracy": 0.9, "sqnr_db": 20.0},
             {"images": 8, "accuracy": 0.95, "sqnr_db": 25.0}]
    assert eager_plot.calibration_curve({"a": curve}, 0.95) is not None
    assert eager_plot.input_quantization({"x": torch.zeros(784)}) is not None
    timing = measure.Timing(1.0, 0.1, 0.9, 1.2, 10, 1)
    assert eager_plot.latency_bars({"fp32": timing}) is not None
    with pytest.raises(ValueError, match="at least one non-empty curve"):
        eager_plot.calibration_curve({}, 0.9)
    with pytest.raises(ValueError, match="at least one panel"):
        eager_plot.input_quantization({})
    with pytest.raises(ValueError, match="at least one"):
        eager_plot.latency_bars({})


def test_skip_net_cannot_run_in_int8_as_written_but_its_float_function_is_fixed() -> None:
    net = eager.skip_net()
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert net(x).shape == (3, 10)
        assert torch.equal(net(x), eager.skip_net()(x))
    assert not any(isinstance(m, tq.QuantStub) for m in net.modules())
    running = [m.running_mean for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(r.abs().sum() > 0 for r in running)


@pytest.mark.skipif("x86" not in torch.backends.quantized.supported_engines,
                    reason="x86 engine not in this build")
def test_bias_paths_float_bias_reproduces_the_x86_kernel() -> None:
    env.select_engine("x86")
    int8 = eager.quantize_static(fixed_mlp(), "x86", small_split(64), batches=2)
    x_q = int8.quant(data.torch_tensors(small_split(64, seed=3))[0].reshape(64, -1))
    paths = eager.bias_paths(int8.fc1, x_q)
    assert paths["outputs"] == 64 * 16
    assert paths["float_bias_mismatches"] == 0
    assert paths["int32_bias_mismatches"] >= 0
    with pytest.raises(TypeError, match="quantized 2-D input"):
        eager.bias_paths(int8.fc1, torch.zeros(2, 784))
