"""Tests for helpers.torchao_dynamic (lesson 05), with fixed seeds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from helpers import data, measure
from helpers import torchao_dynamic as tdyn

pytest.importorskip("torchao")


def test_make_config_names_and_bad_name():
    from torchao.quantization import (
        Int8DynamicActivationInt8WeightConfig,
        Int8DynamicActivationIntxWeightConfig,
        Int8WeightOnlyConfig,
    )

    kinds = [type(tdyn.make_config(name)) for name in tdyn.CONFIG_NAMES]
    assert kinds == [Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig,
                     Int8DynamicActivationIntxWeightConfig]
    assert tdyn.make_config("int8-dynamic-intx").weight_dtype == torch.int8
    with pytest.raises(ValueError, match="int8-dynamic"):
        tdyn.make_config("int4")


def test_quantized_copy_leaves_the_original_and_stays_close():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 8)).eval()
    x = torch.randn(4, 32)
    for name in tdyn.CONFIG_NAMES:
        quantized = tdyn.quantized_copy(model, name)
        assert type(model[0].weight.data) is torch.Tensor
        assert type(quantized[0].weight).__name__ != "Parameter" or \
            type(quantized[0].weight.data) is not torch.Tensor
        with torch.no_grad():
            assert (quantized(x) - model(x)).abs().max() < 0.05


def test_quantize_per_token_ties_clamp_and_zero_row():
    x = torch.tensor([[127.5, 0.5, 1.5, 2.5, -0.5, -2.5, -127.5, 3.5],
                      [0.0] * 8])
    q, scale = tdyn.quantize_per_token(x)
    assert scale[0, 0] == 1.0 and scale[1, 0] == tdyn.MIN_SCALE
    # Half to even, and 127.5 rounds to 128, which clamps to 127.
    assert q[0].tolist() == [127, 0, 2, 2, 0, -2, -128, 4]
    assert q[1].tolist() == [0] * 8 and q.dtype == torch.int8
    with pytest.raises(ValueError, match="2-D"):
        tdyn.quantize_per_token(torch.ones(3))


def test_per_token_int8_linear_matches_torchao_exactly():
    torch.manual_seed(0)
    linear = nn.Linear(64, 16).eval()
    layer = tdyn.quantized_copy(linear, "int8-dynamic")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 64, generator=g)
    x[1] *= 50
    x[2] = 0
    with torch.no_grad():
        got = tdyn.per_token_int8_linear(x, layer.weight.qdata, layer.weight.scale.flatten(),
                                         linear.bias)
        assert torch.equal(got, layer(x))


def test_fake_quantize_activation_granularity_and_bits():
    x = torch.tensor([[0.0, 1.0, 2.0, 4.0], [0.0, 0.01, 0.02, 0.03]])
    per_token = tdyn.fake_quantize_activation(x, per_token=True, bits=8)
    per_tensor = tdyn.fake_quantize_activation(x, per_token=False, bits=8)
    # A quiet row keeps its detail per token and is crushed per tensor (step 4/255).
    assert (per_token[1] - x[1]).abs().max() < 1e-4
    assert (per_tensor[1] - x[1]).abs().max() > 0.005
    seven = tdyn.fake_quantize_activation(x, per_token=True, bits=7)
    assert (seven - x).abs().max() > (per_token - x).abs().max()
    with pytest.raises(ValueError, match="bits must be 7"):
        tdyn.fake_quantize_activation(x, per_token=True, bits=4)


def test_simulate_dynamic_replaces_every_linear_and_matches_intx():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Sequential(nn.Linear(32, 4))).eval()
    simulated = tdyn.simulate_dynamic(model, per_token=True, bits=8)
    assert isinstance(simulated[0], tdyn.SimulatedDynamicLinear)
    assert isinstance(simulated[2][0], tdyn.SimulatedDynamicLinear)
    assert isinstance(model[0], nn.Linear)
    x = torch.randn(6, 16)
    intx = tdyn.quantized_copy(model, "int8-dynamic-intx")
    with torch.no_grad():
        assert (simulated(x) - intx(x)).abs().max() < 1e-4


def _toy_split(role: str) -> data.Split:
    rng = np.random.default_rng(0)
    return data.Split(rng.random((40, 28, 28), dtype=np.float32), rng.integers(0, 10, 40), role)


class _Constant(nn.Module):
    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, x):
        logits = torch.zeros(len(x), 10)
        logits[:, self.label] = 1.0
        return logits


def test_choose_method_picks_fastest_within_budget_and_refuses_test():
    split = _toy_split("val")
    fp32 = _Constant(int(np.bincount(split.y).argmax()))
    models = {"fp32": fp32, "same": fp32, "worse": _Constant(int(np.bincount(split.y).argmin()))}
    timing = {name: measure.Timing(ms, 0.1, ms, ms, 5, 1)
              for name, ms in (("fp32", 3.0), ("same", 2.0), ("worse", 1.0))}
    chosen, comparisons = tdyn.choose_method(models, split, timing, budget_points=0.3)
    assert chosen == "same" and comparisons["worse"].delta_points < 0
    with pytest.raises(data.SelectionOnTestError, match="val"):
        tdyn.choose_method(models, _toy_split("test"), timing)
    with pytest.raises(ValueError, match="baseline"):
        tdyn.choose_method({"same": fp32}, split, timing)


def test_matmul_kernels_reads_generated_code():
    source = """
        extern_kernels._int_mm(buf2, _frozen_param12, out=buf3)
        buf3 = torch.ops.mkl._mkl_linear.default(buf2, p, q, None, 32)
        buf4 = torch.ops.mkl._mkl_linear.default(buf3, p, q, None, 32)
        alloc_from_pool(buf0, 0)
        torch.ops.aten.relu.default(buf4)
        buf5 = torch.ops.aten.mkldnn_rnn_layer.default(buf4, p)
        assert_tensor_metadata(buf5, (32,), 'torch.ops.aten.mkldnn_rnn_layer.default')
    """
    assert tdyn.matmul_kernels([source]) == {"_int_mm": 1, "mkl._mkl_linear": 2,
                                             "aten.mkldnn_rnn_layer": 1}


def test_int8_kernels_tells_int8_from_float():
    assert tdyn.int8_kernels({"_int_mm": 3, "mkl._mkl_linear": 1}) == ["_int_mm"]
    assert tdyn.int8_kernels({"aten._weight_int8pack_mm": 2, "onednn.qlinear_pointwise": 1}) == [
        "aten._weight_int8pack_mm", "onednn.qlinear_pointwise"]
    assert tdyn.int8_kernels({"mkl._mkl_linear": 3, "bmm": 2}) == []


def test_packed_cpu_kernels_reports_a_reason_or_none():
    reason = tdyn.packed_cpu_kernels()
    assert reason is None or "USE_CPP=1" in reason


def test_int_mm_against_fp32_times_both():
    timings = tdyn.int_mm_against_fp32(rows=4, k=32, n=32, repeats=2)
    assert set(timings) == {"int_mm", "fp32_mm"}
    assert all(t.repeats == 2 and t.threads == 1 for t in timings.values())
